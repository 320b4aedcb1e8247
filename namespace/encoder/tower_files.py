"""Tower checkpoints inside encoder folders, so that a folder loads from anywhere (moved, copied, downloaded).

``TowerConfig.pretrained`` is an open_clip tag (``"openai"``), a local checkpoint path, or None. ``save_pretrained``
copies a local checkpoint into the folder as ``towers/<index>-<model>.safetensors`` and writes that folder-relative
path into ``config.json``; reading the config resolves it against the folder. Tags and None stay as they are.
Checkpoints are read through open_clip with ``weights_only=True`` and written as safetensors: a folder never holds
a pickle, so loading one (from a hub repository too) never unpickles.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

from safetensors.torch import save_file

from ..files import atomic_write
from .config import TowerConfig

TOWERS_DIR = "towers"
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
UNSAFE = re.compile(r"[^\w.-]")  # characters a model name may hold (``hf-hub:org/name``) but a file name should not


def bundle_tower_checkpoints(towers: list[TowerConfig], directory: Path) -> list[TowerConfig]:
    """Copies each local tower checkpoint into ``directory/towers/``.

    Returns:
        The tower configs as ``config.json`` stores them: folder-relative checkpoint paths, tags unchanged.
    """
    bundled = []
    for index, tower in enumerate(towers):
        source = _local_checkpoint(tower.pretrained, f"towers[{index}].pretrained")
        if source is None:
            bundled.append(tower)
            continue
        relative = f"{TOWERS_DIR}/{index}-{UNSAFE.sub('_', tower.model)}.safetensors"
        target = directory / relative
        if not (target.is_file() and target.resolve() == source.resolve()):  # saving a folder over itself: keep it
            from open_clip.factory import load_state_dict  # heavy: only when there is a checkpoint to copy

            state = {key: value.contiguous() for key, value in load_state_dict(str(source), weights_only=True).items()}
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, lambda path, state=state: save_file(state, str(path)))
        bundled.append(dataclasses.replace(tower, pretrained=relative))
    return bundled


def resolve_tower_checkpoints(towers: list[TowerConfig], directory: Path) -> list[TowerConfig]:
    """The tower configs of a folder's ``config.json`` with its ``towers/...`` paths made absolute."""
    return [
        dataclasses.replace(tower, pretrained=str(directory.resolve() / tower.pretrained))
        if tower.pretrained is not None and tower.pretrained.startswith(f"{TOWERS_DIR}/")
        else tower
        for tower in towers
    ]


def _local_checkpoint(pretrained: str | None, argument: str) -> Path | None:
    """The checkpoint file ``pretrained`` names, or None for a tag; warns about a path that does not exist."""
    if pretrained is None:
        return None
    path = Path(pretrained).expanduser()
    if path.is_file():
        return path
    if "/" in pretrained or "\\" in pretrained or path.suffix in CHECKPOINT_SUFFIXES:
        warnings.warn(
            f"{argument}: {pretrained!r} looks like a checkpoint path but is no file here: the encoder folder "
            "names it as it is and loads its towers only where that file exists",
            UserWarning,
            stacklevel=3,
        )
    return None
