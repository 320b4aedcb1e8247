"""``magicnaming encoder create|info``: make an (untrained) encoder folder from a config, or describe a folder."""

from __future__ import annotations

import json
from pathlib import Path

from ..files import check_new_output
from ..seeding import seeded
from .config import NameEncoderConfig
from .model import NameEncoder


def create(output: Path, encoder: NameEncoderConfig | None = None, seed: int = 0, overwrite: bool = False) -> Path:
    """Writes a freshly initialised encoder folder (config.json + model.safetensors) without loading the towers.

    Args:
        output: folder to write.
        encoder: the architecture (configs/encoder/*.yaml); the full-size SDXL recipe by default.
        seed: seeds the head's initial weights.
        overwrite: replace an existing --output folder (otherwise refused).
    """
    check_new_output(output, "--output", overwrite, folder=True)
    with seeded(seed):
        model = NameEncoder(encoder or NameEncoderConfig(), load_towers=False)
    folder = model.save_pretrained(output)
    print(f"wrote {folder} ({_head_parameters(model):,} head parameters)")
    return folder


def info(path: str, load_towers: bool = False) -> dict:
    """Describes an encoder folder or Hub id: towers, (N, D), head size, statistics.

    Args:
        path: encoder folder (or Hub id).
        load_towers: also build the CLIP towers and check their widths (downloads full-size weights).
    """
    model = NameEncoder.from_pretrained(path, load_towers=load_towers)
    config = model.config
    summary = {
        "towers": [f"{t.model} ({t.pretrained or 'random'}, {t.embed_dim}, {t.precision})" for t in config.towers],
        "name_shape": [config.num_tokens, config.width],
        "hidden_dims": list(config.hidden_dims),
        "head_parameters": _head_parameters(model),
        "statistics_count": int(model.statistics_count),
        "name_norm": float(model.name_norm),
        "delta": float(model.name_delta),  # default name guidance δ (eq. 4), calibrated by training
    }
    print(json.dumps(summary, indent=2))
    return summary


def _head_parameters(model: NameEncoder) -> int:
    return sum(parameter.numel() for parameter in model.head.parameters())


def main(argv: list[str], prog: str = "magicnaming encoder") -> int:
    from ..command_line import run_command

    run_command([create, info], argv, prog, description=__doc__)
    return 0


__all__ = ["create", "info", "main"]
