"""A judging model's folder: ``config.json`` (its config, tagged with a format) and ``model.safetensors`` (its
weights). Safetensors only: loading a folder never runs code from it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..checks import check_state_fits
from ..files import atomic_write

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def write_model_folder(folder: str | os.PathLike, format: str, config: dict, module: torch.nn.Module) -> Path:
    """Writes ``config`` (tagged ``format``) and ``module``'s weights into ``folder``, each file atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in module.state_dict().items()}
    atomic_write(folder / WEIGHTS_NAME, lambda path: save_file(state, str(path), metadata={"format": format}))
    text = json.dumps({"format": format, **config}, indent=2) + "\n"
    atomic_write(folder / CONFIG_NAME, lambda path: path.write_text(text))
    return folder


def read_model_folder(folder: str | os.PathLike, format: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """The config (without its format tag) and the weights of a folder written by ``write_model_folder``.

    Raises:
        FileNotFoundError: ``folder`` or one of its two files is missing.
        ValueError: the config was written for another kind of model.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder: {str(folder)!r} is not a folder")
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"folder: {str(folder / name)!r} is missing (not a {format} folder)")
    config = json.loads((folder / CONFIG_NAME).read_text())
    found = config.pop("format", None)
    if found != format:
        raise ValueError(f"{folder / CONFIG_NAME}: expected format {format!r}, found {found!r}")
    return config, load_file(str(folder / WEIGHTS_NAME))


def load_weights(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Loads ``state`` into ``module``; every key and shape must match, or the error lists what does not."""
    check_state_fits(module.state_dict(), state, source, "the config")
    module.load_state_dict(state)
