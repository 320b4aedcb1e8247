"""The Modular Diffusers step: on the tiny SDXL, SDXL's auto blocks with ``MagicNamingStep`` draw ``MagicNaming``'s
image for the same seed, and without an identity the plain pipeline's.

Diffusers' modular guider runs the conditional and unconditional UNet passes one after the other where the classic
pipeline batches them, which moves fp32 images by ~1e-6 even without a name. So images are compared bit for bit
with classifier-free guidance off (one UNet pass each), and with it on (guidance 7.5 both) the prompt embeddings are
compared bit for bit and the images to 1e-5, next to the plain pipelines' own difference.
"""

from __future__ import annotations

import pytest
import torch
from diffusers.guiders import ClassifierFreeGuidance
from diffusers.modular_pipelines import SequentialPipelineBlocks
from diffusers.modular_pipelines.stable_diffusion_xl.decoders import StableDiffusionXLDecodeStep

from namespace import Identity

PROMPT = "a photo of a person on a beach"


@pytest.fixture(scope="module")
def models(tiny_pipe):
    from namespace.inference import MagicNaming
    from namespace.inference.modular import magicnaming_pipeline
    from namespace.testing import tiny_name_encoder

    encoder = tiny_name_encoder(tiny_pipe)
    tiny_pipe.set_progress_bar_config(disable=True)
    modular = magicnaming_pipeline(tiny_pipe, encoder)
    modular.set_progress_bar_config(disable=True)
    alice, bob = Identity.sampled(encoder.statistics, 2, seed=0, label="alice")
    return tiny_pipe, encoder, MagicNaming(tiny_pipe, encoder), modular, alice, bob


def seed(value: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(value)


def modular_image(modular, guidance: float, **inputs) -> torch.Tensor:
    modular.update_components(guider=ClassifierFreeGuidance(guidance_scale=guidance))
    return modular(num_inference_steps=2, generator=seed(), output_type="pt", output="images", **inputs)


def test_the_step_sits_right_after_the_text_encoder_and_takes_the_names_inputs():
    from namespace.inference.modular import MagicNamingStep, magicnaming_blocks

    blocks = magicnaming_blocks()
    names = list(blocks.sub_blocks)
    assert names[:2] == ["text_encoder", "magicnaming"]
    assert isinstance(blocks.sub_blocks["magicnaming"], MagicNamingStep)
    inputs = {param.name: param.default for param in blocks.inputs}
    assert {"identity", "name_delta", "name_eta", "negative_name"} <= set(inputs)
    assert inputs["eta"] == 0.0  # the scheduler's η keeps its default: the name's η is name_eta
    assert "name_encoder" in blocks.component_names
    without_text_encoder = SequentialPipelineBlocks.from_blocks_dict({"decode": StableDiffusionXLDecodeStep()})
    with pytest.raises(ValueError, match=r"blocks: expected a step named 'text_encoder'.*\['decode'\]"):
        magicnaming_blocks(without_text_encoder)


def test_without_guidance_the_modular_pipeline_draws_magicnamings_image_bit_for_bit(models):
    pipe, _, naming, modular, alice, _ = models
    options = {"delta": 1.3, "eta": 0.8}
    classic = naming(
        PROMPT, alice, **options, num_inference_steps=2, guidance_scale=1.0, generator=seed(), output_type="pt"
    )
    modular_named = modular_image(modular, 1.0, prompt=PROMPT, identity=alice, name_delta=1.3, name_eta=0.8)
    assert torch.equal(modular_named, classic.images)

    plain = pipe(PROMPT, num_inference_steps=2, guidance_scale=1.0, generator=seed(), output_type="pt").images
    assert torch.equal(modular_image(modular, 1.0, prompt=PROMPT), plain)  # no identity: the plain image
    assert (modular_named - plain).abs().max() > 1e-3  # the name changed the image: the equality above says something


def test_with_guidance_the_embeddings_are_magicnamings_and_the_images_agree_to_1e_5(models):
    pipe, encoder, _, modular, alice, bob = models
    from namespace.inference import MagicNaming

    naming = MagicNaming(pipe, encoder, negative_name="mean")
    prompts = [PROMPT, "a person reading in a cafe, with many more words than the first prompt has"]
    modular.update_components(guider=ClassifierFreeGuidance(guidance_scale=7.5))
    state = modular(prompt=prompts, identity=[alice, bob], negative_name="mean", num_inference_steps=2,
                    generator=seed(), output_type="pt")  # fmt: skip
    embeds = naming.prompt_embeds(prompts, [alice, bob])
    for key in ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"):
        assert torch.equal(state.get(key), embeds[key]), key

    classic = naming(
        prompts, [alice, bob], num_inference_steps=2, guidance_scale=7.5, generator=seed(), output_type="pt"
    )
    classic = classic.images
    plain_modular = modular_image(modular, 7.5, prompt=prompts)
    plain = pipe(prompts, num_inference_steps=2, guidance_scale=7.5, generator=seed(), output_type="pt").images
    named_gap, plain_gap = (state.get("images") - classic).abs().max(), (plain_modular - plain).abs().max()
    print(f"max |Δ| fp32, guidance 7.5: named {named_gap:.2e}, plain {plain_gap:.2e}")
    assert named_gap <= 1e-5 and plain_gap <= 1e-5


def test_one_identity_per_prompt_and_none_for_a_prompt_without(models):
    _, _, naming, modular, alice, _ = models
    prompts = [PROMPT, "a landscape"]
    modular.update_components(guider=ClassifierFreeGuidance(guidance_scale=7.5))
    state = modular(prompt=prompts, identity=[alice, None], num_inference_steps=1, output="prompt_embeds")
    assert torch.equal(state, naming.prompt_embeds(prompts, [alice, None])["prompt_embeds"])


def test_bad_inputs_raise_one_error_naming_each(models):
    _, _, _, modular, alice, _ = models
    wide = Identity(torch.randn(alice.num_tokens, alice.width + 16), label="wide")
    with pytest.raises(ValueError, match=r"identity 'wide' has shape \(N, D\) = \(8, 96\), but this encoder's"):
        modular(prompt=PROMPT, identity=wide, num_inference_steps=1, output="prompt_embeds")
    with pytest.raises(ValueError) as caught:
        modular(prompt=[PROMPT, PROMPT], identity=[alice], name_delta=float("nan"), name_eta=-1.0,
                negative_name="average", num_inference_steps=1, output="prompt_embeds")  # fmt: skip
    message = str(caught.value)
    for fact in ("name_delta: expected a finite", "name_eta: expected a finite", "negative_name: expected 'none'",
                 "identity: expected one identity or 2 (one per prompt), got 1"):  # fmt: skip
        assert fact in message
    with pytest.raises(ValueError, match=r"identity\[0\]: expected a namespace.Identity, got str"):
        modular(prompt=[PROMPT], identity=["alice"], num_inference_steps=1, output="prompt_embeds")


def test_without_the_name_encoder_an_identity_is_refused_by_name(tiny_pipe):
    from namespace.inference.modular import magicnaming_blocks
    from namespace.testing import tiny_name_encoder

    modular = magicnaming_blocks().init_pipeline()
    modular.update_components(**{k: v for k, v in tiny_pipe.components.items() if k in modular.component_names})
    identity = Identity.sampled(tiny_name_encoder(tiny_pipe).statistics, 1, seed=1)[0]
    with pytest.raises(ValueError, match=r"name_encoder: the MagicNaming step needs the name encoder"):
        modular(prompt=PROMPT, identity=identity, num_inference_steps=1, output="prompt_embeds")


def test_built_offline_from_saved_folders_with_diffusers_own_loading(tiny_models, models):
    """``init_pipeline(folder)`` + ``load_components`` (the documented route) and the encoder from its folder."""
    from namespace import NameEncoder
    from namespace.inference.modular import magicnaming_blocks

    _, _, naming, _, alice, _ = models
    modular = magicnaming_blocks().init_pipeline(str(tiny_models.pipeline))
    present = [name for name in modular.pretrained_component_names if (tiny_models.pipeline / name).is_dir()]
    modular.load_components(names=present)  # the folder's parts; the optional ones it lacks stay None
    modular.update_components(name_encoder=NameEncoder.from_pretrained(tiny_models.encoder))
    modular.set_progress_bar_config(disable=True)
    embeds = modular(prompt=PROMPT, identity=alice, num_inference_steps=1, output="prompt_embeds")
    assert torch.equal(embeds, naming.prompt_embeds(PROMPT, alice)["prompt_embeds"])
