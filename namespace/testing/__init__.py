"""The test kit (ours and our users'): the offline, seeded, tiny models and synthetic people of
``namespace.synthetic``, plus test-only helpers (``full_size``: SDXL's real architecture with random weights for
benchmarks; ``ip_adapter``: a random IP-Adapter; ``real_faces``: real face photos). Production code never imports it.

from namespace.testing import tiny_sdxl_pipeline, tiny_name_encoder
pipe = tiny_sdxl_pipeline()               # real CLIP tokenizers, tiny UNet/VAE/text encoders, D = 80
encoder = tiny_name_encoder(pipe)         # tiny open_clip towers, output (8, 80), statistics fitted
"""

from ..synthetic.encoder import FICTIONAL_NAMES, tiny_name_encoder, tiny_name_encoder_config
from ..synthetic.faces import synthetic_face
from ..synthetic.pipeline import (
    TINY_WIDTH,
    tiny_sd15_pipeline,
    tiny_sdxl_components,
    tiny_sdxl_controlnet_pipeline,
    tiny_sdxl_pipeline,
    tiny_sdxl_refiner_pipeline,
)
from ..synthetic.tokenizer import clip_tokenizer
from ..synthetic.towers import tiny_tower_configs

__all__ = [
    "FICTIONAL_NAMES",
    "TINY_WIDTH",
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
