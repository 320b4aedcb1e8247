"""``magicnaming encoder pretrain_tiny``: the tiny CLIP towers pre-trained on synthetic people (the demo's first step).

Served here, not by ``namespace.encoder.commands``: the towers learn the synthetic people, and the encoder package (a
core module) knows nothing above the core.
"""

from __future__ import annotations

from pathlib import Path


def pretrain_tiny(output: Path, steps: int = 400, seed: int = 0, overwrite: bool = False) -> list:
    """Pre-trains the tiny test towers on synthetic people, so that tiny encoders can learn identities (random tiny
    towers cannot tell people apart); writes one open_clip checkpoint per tower into ``output``.

    Args:
        output: folder for ``MagicNaming-Tiny-L.safetensors`` and ``MagicNaming-Tiny-bigG.safetensors``.
        steps: optimisation steps per tower.
        seed: seeds the weights and the batches.
        overwrite: write into a non-empty --output folder (otherwise refused).
    """
    from ..files import check_new_output
    from .tower_pretraining import pretrain_tiny_towers

    check_new_output(output, "--output", overwrite, folder=True)

    towers = pretrain_tiny_towers(output, steps=steps, seed=seed)
    for tower in towers:
        print(f"wrote {tower.pretrained} (use it as the tower's pretrained path)")
    return towers


def main(argv: list[str], prog: str = "magicnaming encoder pretrain_tiny") -> int:
    from ..command_line import run_command

    run_command(pretrain_tiny, argv, prog, description=__doc__)
    return 0


__all__ = ["main", "pretrain_tiny"]
