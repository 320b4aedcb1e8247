"""namespace.testing: the offline kit must be faithful (real CLIP tokens), seeded, and leave global RNG alone."""

import numpy as np
import pytest
import torch

from namespace.testing import (
    TINY_WIDTH,
    clip_tokenizer,
    synthetic_face,
    tiny_name_encoder,
    tiny_sdxl_components,
    tiny_sdxl_pipeline,
)

TEXTS = ["a photo of a cat", "Taylor Swift riding a horse, 35mm", "naïve café — DON'T stop!!", "   spaced\tout  "]


@pytest.mark.parametrize("text", TEXTS)
def test_tokenizer_matches_open_clip_tokenizer(text):
    from open_clip.tokenizer import SimpleTokenizer

    expected = SimpleTokenizer()(text)[0]  # (77,) zero-padded
    ids = clip_tokenizer()(text, padding="max_length", max_length=77, truncation=True).input_ids
    real = [i for i in ids if i != 49407] + [49407]  # strip end-token padding, keep one end token
    assert real == [i for i in expected.tolist() if i != 0]


def test_tokenizer_known_ids_and_sdxl_padding():
    assert clip_tokenizer()("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    padded = clip_tokenizer(pad_token="!")("a cat", padding="max_length", max_length=6).input_ids
    assert padded == [49406, 320, 2368, 49407, 0, 0]


def test_pipeline_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first, second = tiny_sdxl_components(seed=1), tiny_sdxl_components(seed=1)
    assert torch.equal(torch.random.get_rng_state(), before)
    for key in ("unet", "vae", "text_encoder", "text_encoder_2"):
        for (name, a), b in zip(first[key].state_dict().items(), second[key].state_dict().values(), strict=True):
            assert torch.equal(a, b), f"{key}.{name}"
    other = tiny_sdxl_components(seed=2)["unet"].conv_in.weight
    assert not torch.equal(first["unet"].conv_in.weight, other)


def test_pipeline_generates_and_has_sdxl_shape(tiny_pipe):
    prompt_embeds, _, pooled, _ = tiny_pipe.encode_prompt(["a cat"], do_classifier_free_guidance=True)
    assert prompt_embeds.shape == (1, 77, TINY_WIDTH) and pooled.shape == (1, 40)
    image = tiny_pipe("a cat", num_inference_steps=2, height=32, width=32, output_type="pt").images
    assert image.shape == (1, 3, 32, 32) and torch.isfinite(image).all()


def test_encoder_fits_the_pipeline_and_is_seeded():
    pipe = tiny_sdxl_pipeline()
    a, b = tiny_name_encoder(pipe, seed=5), tiny_name_encoder(pipe, seed=5)
    assert (a.config.num_tokens, a.config.width) == (8, TINY_WIDTH)
    face = synthetic_face(0, 0)
    torch.testing.assert_close(a.encode(face), b.encode(face), rtol=0, atol=0)
    assert not torch.equal(a.encode(face), tiny_name_encoder(pipe, seed=6).encode(face))
    assert a.statistics.count == 12


def test_synthetic_faces_are_consistent_per_identity():
    """Two photos of one identity are closer in pixels than photos of two identities (on average)."""

    def pixels(identity, variant):
        return torch.tensor(np.array(synthetic_face(identity, variant, 32)), dtype=torch.float32)

    same = [(pixels(i, 0) - pixels(i, 1)).abs().mean() for i in range(6)]
    other = [(pixels(i, 0) - pixels(i + 1, 1)).abs().mean() for i in range(6)]
    assert synthetic_face(3, 4).tobytes() == synthetic_face(3, 4).tobytes()
    assert sum(same) < sum(other)


def test_full_size_configs_match_sdxl_base_parameter_counts():
    """The random full-size pipeline used by GPU benchmarks has SDXL base 1.0's exact architecture."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from namespace.testing.full_size import SDXL_UNET, SDXL_VAE, _text_config

    with torch.device("meta"):  # shapes only: no memory, no time
        models = {
            "unet": UNet2DConditionModel(**SDXL_UNET),
            "vae": AutoencoderKL(**SDXL_VAE),
            "text_encoder": CLIPTextModel(_text_config(768, 12, 12, 768, "quick_gelu")),
            "text_encoder_2": CLIPTextModelWithProjection(_text_config(1280, 32, 20, 1280, "gelu")),
        }
    counts = {name: sum(p.numel() for p in model.parameters()) for name, model in models.items()}
    assert counts == {
        "unet": 2_567_463_684,
        "vae": 83_653_863,
        "text_encoder": 123_060_480,
        "text_encoder_2": 694_659_840,
    }
