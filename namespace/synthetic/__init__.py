"""Synthetic people and tiny seeded models: offline runtime assets (no hub, no download, about a second each).

The demo, the miniature world, the app's ``tiny`` models and the data pipeline's embedded sample draw on them; the
test kit (``namespace.testing``) builds on them.

from namespace.synthetic import tiny_sdxl_pipeline, tiny_name_encoder
pipe = tiny_sdxl_pipeline()               # real CLIP tokenizers, tiny UNet/VAE/text encoders, D = 80
encoder = tiny_name_encoder(pipe)         # tiny open_clip towers, output (8, 80), statistics fitted
"""

from .encoder import FICTIONAL_NAMES, tiny_name_encoder, tiny_name_encoder_config
from .faces import synthetic_face
from .people import cast_names
from .pipeline import (
    TINY_WIDTH,
    tiny_sd15_pipeline,
    tiny_sdxl_components,
    tiny_sdxl_controlnet_pipeline,
    tiny_sdxl_pipeline,
    tiny_sdxl_refiner_pipeline,
)
from .tokenizer import clip_tokenizer
from .towers import tiny_tower_configs

__all__ = [
    "FICTIONAL_NAMES",
    "TINY_WIDTH",
    "cast_names",
    "clip_tokenizer",
    "synthetic_face",
    "tiny_name_encoder",
    "tiny_name_encoder_config",
    "tiny_sd15_pipeline",
    "tiny_sdxl_components",
    "tiny_sdxl_controlnet_pipeline",
    "tiny_sdxl_pipeline",
    "tiny_sdxl_refiner_pipeline",
    "tiny_tower_configs",
]
