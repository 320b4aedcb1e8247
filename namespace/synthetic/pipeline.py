"""Tiny, seeded SDXL-family pipelines built offline, with CLIP's real tokenizer.

The component shapes follow diffusers' own SDXL pipeline tests: a two-level UNet with "text_time" added
conditioning, a two-level VAE (scale factor 2) and two small CLIP text encoders. The text encoders differ in
width (32 and 48, so D = 80) so that a mix-up of the CLIP-L and bigG parts of a name cannot go unnoticed.
"""

from __future__ import annotations

from ..seeding import seeded
from .tokenizer import CLIP_VOCAB_SIZE, clip_tokenizer

TINY_WIDTH_L, TINY_WIDTH_BIGG = 32, 48
TINY_WIDTH = TINY_WIDTH_L + TINY_WIDTH_BIGG  # D of the tiny pipeline's prompt embeddings
TINY_POOLED_WIDTH = 40
ADDITION_TIME_EMBED_DIM = 8


def _text_encoder_config(hidden_size: int, projection_dim: int):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=3,  # SDXL reads the penultimate layer: keep more than one
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=projection_dim,
        hidden_act="gelu",
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )


def tiny_unet(cross_attention_dim: int, sdxl_conditioning: bool, time_ids: int = 6):
    """A two-level UNet; SDXL's adds "text_time" conditioning: the pooled bigG embedding and ``time_ids`` micro
    conditions (size and crop: 6; the refiner's size, crop and aesthetic score: 5)."""
    from diffusers import UNet2DConditionModel

    sdxl = {
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": ADDITION_TIME_EMBED_DIM,
        "projection_class_embeddings_input_dim": time_ids * ADDITION_TIME_EMBED_DIM + TINY_POOLED_WIDTH,
    }
    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        transformer_layers_per_block=(1, 1),
        cross_attention_dim=cross_attention_dim,
        norm_num_groups=1,
        **(sdxl if sdxl_conditioning else {}),
    )


def tiny_sdxl_components(seed: int = 0) -> dict[str, object]:
    """The components of a tiny SDXL pipeline, seeded without touching the caller's global RNG state."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    with seeded(seed):
        unet = tiny_unet(cross_attention_dim=TINY_WIDTH, sdxl_conditioning=True)
        vae = AutoencoderKL(
            block_out_channels=(32, 64),
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            latent_channels=4,
            norm_num_groups=1,
            sample_size=32,
        )
        text_encoder = CLIPTextModel(_text_encoder_config(TINY_WIDTH_L, TINY_WIDTH_L))
        text_encoder_2 = CLIPTextModelWithProjection(_text_encoder_config(TINY_WIDTH_BIGG, TINY_POOLED_WIDTH))
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading"
    )
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "text_encoder_2": text_encoder_2.eval(),
        "tokenizer": clip_tokenizer(),  # SDXL's CLIP-L tokenizer pads with the end token
        "tokenizer_2": clip_tokenizer(pad_token="!"),  # its bigG tokenizer pads with "!" (id 0)
        "scheduler": scheduler,
    }


def tiny_sdxl_pipeline(pipeline_class: type | None = None, seed: int = 0):
    """A tiny SDXL pipeline (text-to-image by default; pass e.g. ``StableDiffusionXLImg2ImgPipeline``).

    Prompt embeddings are (B, 77, 80); images are 32×32 by default. The weights are random: images are noise.
    """
    from diffusers import StableDiffusionXLPipeline

    pipeline_class = pipeline_class or StableDiffusionXLPipeline
    pipe = pipeline_class(**tiny_sdxl_components(seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sd15_pipeline(seed: int = 0):
    """A tiny Stable Diffusion 1.5-shaped pipeline (one text encoder): for tests of what SDXL-only code refuses."""
    from diffusers import StableDiffusionPipeline

    components = tiny_sdxl_components(seed)
    with seeded(seed):
        unet = tiny_unet(cross_attention_dim=TINY_WIDTH_L, sdxl_conditioning=False)
    pipe = StableDiffusionPipeline(
        vae=components["vae"],
        text_encoder=components["text_encoder"],
        tokenizer=components["tokenizer"],
        unet=unet.eval(),
        scheduler=components["scheduler"],
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sdxl_refiner_pipeline(seed: int = 0):
    """A tiny SDXL refiner: img2img with only the bigG text encoder, so prompt embeddings are (B, 77, 48)."""
    from diffusers import StableDiffusionXLImg2ImgPipeline

    components = tiny_sdxl_components(seed)
    with seeded(seed):
        unet = tiny_unet(cross_attention_dim=TINY_WIDTH_BIGG, sdxl_conditioning=True, time_ids=5)
    components.update(unet=unet.eval(), text_encoder=None, tokenizer=None)
    pipe = StableDiffusionXLImg2ImgPipeline(**components, requires_aesthetics_score=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sdxl_controlnet_pipeline(seed: int = 0):
    """A tiny SDXL ControlNet pipeline; its ControlNet is made from the UNet (control images as large as images)."""
    from diffusers import ControlNetModel, StableDiffusionXLControlNetPipeline

    components = tiny_sdxl_components(seed)
    with seeded(seed):
        controlnet = ControlNetModel.from_unet(components["unet"], conditioning_embedding_out_channels=(16, 32))
    pipe = StableDiffusionXLControlNetPipeline(**components, controlnet=controlnet.eval())
    pipe.set_progress_bar_config(disable=True)
    return pipe
