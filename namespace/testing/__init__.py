"""The test kit (ours and our users'): the offline, seeded, tiny models and synthetic people of
``namespace.synthetic``, plus test-only helpers (``full_size``: SDXL's real architecture with random weights for
benchmarks; ``ip_adapter``: a random IP-Adapter; ``real_faces``: real face photos). Production code never imports it.

from namespace.testing import tiny_sdxl_pipeline, tiny_name_encoder
pipe = tiny_sdxl_pipeline()               # real CLIP tokenizers, tiny UNet/VAE/text encoders, D = 80
encoder = tiny_name_encoder(pipe)         # tiny open_clip towers, output (8, 80), statistics fitted
"""

from .. import synthetic
from ..synthetic import *  # noqa: F403 (the kit re-exports every synthetic asset by its name)

__all__ = list(synthetic.__all__)
