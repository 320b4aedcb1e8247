"""A tiny name encoder whose output fits the tiny SDXL pipeline: (N, D) = (8, 80) by default."""

from __future__ import annotations

from ..encoder import NameEncoder, NameEncoderConfig
from ..seeding import seeded
from .pipeline import TINY_WIDTH
from .towers import tiny_tower_configs

# Fictional people: names the tiny pipeline embeds to fit name-space statistics for tests and demos.
FICTIONAL_NAMES = (
    "Alma Quintrell",
    "Boris Vantanen",
    "Cleo Marchetti",
    "Dario Okonkwo",
    "Edda Lindqvist",
    "Faisal Brennan",
    "Greta Oyelaran",
    "Hugo Castellane",
    "Ines Morrowind",
    "Jonas Pelletier",
    "Kira Aldenhoven",
    "Luca Ferreira",
)


def tiny_name_encoder_config(num_tokens: int = 8, width: int = TINY_WIDTH) -> NameEncoderConfig:
    """The tiny encoder's config: tiny open_clip towers, hidden widths 64, PCA rank 8."""
    return NameEncoderConfig(
        towers=tiny_tower_configs(), num_tokens=num_tokens, width=width, hidden_dims=(64, 64), pca_rank=8
    )


def tiny_name_encoder(
    pipe: object | None = None, num_tokens: int = 8, seed: int = 0, load_towers: bool = True
) -> NameEncoder:
    """A tiny, seeded, randomly initialised name encoder.

    Args:
        pipe: an SDXL-family pipeline (e.g. ``tiny_sdxl_pipeline()``); when given, the encoder takes its width and
            gets name-space statistics fitted on the pipeline's embeddings of ``FICTIONAL_NAMES``.
        num_tokens: N.
        seed: seeds the towers and the head, without touching the caller's global RNG state.
        load_towers: False builds the head only (for training from tower features).
    """
    from ..statistics import NameSpaceStatistics
    from ..text_sides import name_embeddings, text_side

    width = TINY_WIDTH if pipe is None else text_side(pipe).width(pipe)
    with seeded(seed):
        encoder = NameEncoder(tiny_name_encoder_config(num_tokens, width), load_towers=load_towers)
    if pipe is not None:
        names = name_embeddings(pipe, list(FICTIONAL_NAMES), num_tokens=num_tokens).float().cpu()
        encoder.set_statistics(NameSpaceStatistics.fit(names, rank=encoder.config.pca_rank))
    return encoder.eval()
