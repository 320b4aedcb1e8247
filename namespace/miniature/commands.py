"""``magicnaming miniature build|info``: the miniature world — a tiny SDXL that knows the cast's people by name."""

from __future__ import annotations

import json
from pathlib import Path

from .world import MiniatureWorldConfig, miniature_world


def build(world: MiniatureWorldConfig | None = None, cache_root: Path | None = None) -> Path:
    """Builds the miniature world for these settings, or finds it in the cache; prints its folder.

    Args:
        world: the world's settings; the demo's world by default.
        cache_root: where worlds are cached (default: $MAGICNAMING_CACHE/miniature or ~/.cache/magicnaming/miniature).
    """
    folder = miniature_world(world, cache_root)
    print(folder)
    return folder


def info(world: Path) -> dict:
    """Describes a world folder: its settings, its famous people and what building it took.

    Args:
        world: a folder ``build`` printed.
    """
    path = Path(world) / "world.json"
    if not path.is_file():
        raise FileNotFoundError(f"world: expected a miniature world folder (with world.json), got {world}")
    summary = json.loads(path.read_text())
    print(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str], prog: str = "magicnaming miniature") -> int:
    from ..command_line import run_command

    run_command([build, info], argv, prog, description=__doc__)
    return 0


__all__ = ["build", "info", "main"]
