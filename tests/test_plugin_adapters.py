"""A name together with the adapters SDXL users stack: a LoRA on the UNet and IP-Adapter image embeddings (CLIP image
embeddings, and precomputed FaceID-style ones), on the tiny pipeline. The plugin only supplies prompt embeddings,
so each adapter stays in effect: the images equal the plain pipeline's fed the plugin's embeddings and the same image
embeddings, exactly (fp32, torch.equal), and differ from the images without the adapter."""

import pytest
import torch

from namespace import Identity
from namespace.inference import MagicNaming
from namespace.seeding import seeded
from namespace.testing import synthetic_face, tiny_sdxl_pipeline
from namespace.testing.ip_adapter import RANDOM_WEIGHT_NAME

pytest.importorskip("peft", reason="diffusers loads LoRAs through peft (the dev extra)")

SMALL = {"num_inference_steps": 2, "height": 32, "width": 32, "output_type": "np"}  # fp32 images
PROMPT = "a photo of a person at the beach"


def seed(value=0):
    return torch.Generator().manual_seed(value)


def images(output) -> torch.Tensor:
    return torch.from_numpy(output.images)  # (B, H, W, 3) float32


@pytest.fixture(scope="module")
def lora(tmp_path_factory):
    """A LoRA on the tiny UNet's attention projections with random, non-zero weights, written by diffusers'
    ``save_lora_weights`` from a peft-wrapped UNet (as diffusers' LoRA training scripts write theirs)."""
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    folder = tmp_path_factory.mktemp("lora")
    unet = tiny_sdxl_pipeline().unet
    config = LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    with seeded(1):
        config.init_lora_weights = False  # random A and B: a trained LoRA's effect, not the identity
        unet.add_adapter(config)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    assert layers and all(weights.abs().sum() > 0 for weights in layers.values())
    StableDiffusionXLPipeline.save_lora_weights(folder, unet_lora_layers=layers)
    return folder


@pytest.fixture
def naming(tiny_encoder):
    """The plugin on a fresh tiny pipeline (the shared ``tiny_pipe`` stays without adapters)."""
    return MagicNaming(tiny_sdxl_pipeline(), tiny_encoder)


@pytest.fixture
def person():
    return Identity(torch.randn(8, 80, generator=seed(7)), label="person")


def load_ip_adapter(pipe, tiny_models) -> None:
    pipe.load_ip_adapter(str(tiny_models.ip_adapter), subfolder="sdxl_models", weight_name=RANDOM_WEIGHT_NAME)


def face_embeds(pipe, person: int) -> list[torch.Tensor]:
    """IP-Adapter image embeddings of a face, precomputed with the pipeline's own method: [(2, 1, 32)], negative
    half first (classifier-free guidance)."""
    return pipe.prepare_ip_adapter_image_embeds(
        ip_adapter_image=synthetic_face(person, 0, 32),
        ip_adapter_image_embeds=None,
        device=torch.device("cpu"),
        num_images_per_prompt=1,
        do_classifier_free_guidance=True,
    )


def faceid_embeds(value: int) -> list[torch.Tensor]:
    """FaceID-style: an embedding from outside the pipeline (a face recogniser's, here random), with a zero negative."""
    embedding = torch.randn(1, 1, 32, generator=seed(value))
    return [torch.cat([torch.zeros_like(embedding), embedding])]


def test_a_lora_stays_in_effect_with_a_name(naming, person, lora):
    pipe = naming.pipe
    without_lora = images(naming(PROMPT, person, generator=seed(), **SMALL))
    pipe.load_lora_weights(str(lora))
    adapters = pipe.get_active_adapters()
    named = images(naming(PROMPT, person, generator=seed(), **SMALL))
    plain = images(pipe(**naming.prompt_embeds(PROMPT, person), generator=seed(), **SMALL))
    assert torch.equal(named, plain)  # the LoRA'd pipeline fed the plugin's embeddings
    assert not torch.equal(named, without_lora)  # the LoRA is in effect
    assert not torch.equal(named, images(naming(PROMPT, generator=seed(), **SMALL)))  # and so is the name
    assert adapters and pipe.get_active_adapters() == adapters  # the plugin left the adapter as it found it


@pytest.mark.parametrize("embeds_kind", ["image", "faceid"])
def test_ip_adapter_image_embeddings_stay_in_effect_with_a_name(naming, person, tiny_models, embeds_kind):
    pipe = naming.pipe
    load_ip_adapter(pipe, tiny_models)
    if embeds_kind == "image":
        embeds, other = face_embeds(pipe, 1), face_embeds(pipe, 2)
    else:
        embeds, other = faceid_embeds(1), faceid_embeds(2)
    named = images(naming(PROMPT, person, ip_adapter_image_embeds=embeds, generator=seed(), **SMALL))
    plain = pipe(**naming.prompt_embeds(PROMPT, person), ip_adapter_image_embeds=embeds, generator=seed(), **SMALL)
    assert torch.equal(named, images(plain))
    with_other = images(naming(PROMPT, person, ip_adapter_image_embeds=other, generator=seed(), **SMALL))
    assert not torch.equal(named, with_other)  # the image embeddings are in effect
    pipe.unload_ip_adapter()
    assert not torch.equal(named, images(naming(PROMPT, person, generator=seed(), **SMALL)))  # without the adapter


def test_a_lora_and_ip_adapter_together_with_a_name(naming, person, lora, tiny_models):
    pipe = naming.pipe
    load_ip_adapter(pipe, tiny_models)
    embeds = faceid_embeds(1)
    ip_only = images(naming(PROMPT, person, ip_adapter_image_embeds=embeds, generator=seed(), **SMALL))
    pipe.load_lora_weights(str(lora))
    named = images(naming(PROMPT, person, ip_adapter_image_embeds=embeds, generator=seed(), **SMALL))
    plain = pipe(**naming.prompt_embeds(PROMPT, person), ip_adapter_image_embeds=embeds, generator=seed(), **SMALL)
    assert torch.equal(named, images(plain))
    assert not torch.equal(named, ip_only)  # the LoRA adds to the IP-Adapter: both in effect
