"""Tiny open_clip towers standing in for ViT-L-14 and ViT-bigG-14: real open_clip VisionTransformers with random
weights, built in milliseconds. Their configs ship in ``namespace/encoder/model_configs``."""

from __future__ import annotations

from ..encoder import TowerConfig

TINY_L, TINY_BIGG = "MagicNaming-Tiny-L", "MagicNaming-Tiny-bigG"


def tiny_tower_configs() -> list[TowerConfig]:
    """Tower configs mirroring SDXL's pair (CLIP-L 32 px → 16, then bigG 48 px → 24), randomly initialised."""
    return [
        TowerConfig(model=TINY_L, pretrained=None, embed_dim=16),
        TowerConfig(model=TINY_BIGG, pretrained=None, embed_dim=24),
    ]
