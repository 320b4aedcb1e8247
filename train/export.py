"""Export: a training checkpoint → an encoder folder (config.json + model.safetensors) the plugin loads.

The folder holds the head and the dataset's name statistics (``name_mean``, ``name_norm``, PCA), which the module
stored in the encoder's buffers when training started, and the name guidance δ the module calibrated at its latest
validation (``name_delta``). Checkpoints are read with ``torch.load(weights_only=True)``. The folder is written whole
(``NameEncoder.save_pretrained``): a killed export leaves no folder that loads.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from namespace import NameEncoder, NameEncoderConfig
from namespace.files import output_problems


def export(checkpoint: Path, output: Path, overwrite: bool = False) -> Path:
    """Writes the encoder of a ``magicnaming train fit`` checkpoint to ``output``.

    Args:
        checkpoint: a Lightning checkpoint (``.ckpt``).
        output: the encoder folder to write (new, or empty).
        overwrite: replace an existing ``output`` folder whole (otherwise it is refused).
    """
    checkpoint = Path(checkpoint)
    problems = []
    if not checkpoint.is_file():
        problems.append(f"--checkpoint: {str(checkpoint)!r} does not exist")
    problems += output_problems(output, "--output", overwrite, folder=True)
    if problems:
        raise ValueError("\n".join(problems))
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if "encoder" not in state.get("hyper_parameters", {}):
        raise ValueError(f"--checkpoint: {checkpoint} was not written by magicnaming's NameEncoderModule")
    config = NameEncoderConfig.from_dict(state["hyper_parameters"]["encoder"])
    encoder = NameEncoder(config, load_towers=False)
    prefix = "encoder."
    weights = {key[len(prefix) :]: value for key, value in state["state_dict"].items() if key.startswith(prefix)}
    weights.setdefault("name_delta", torch.ones(()))  # a checkpoint from before δ was calibrated: eq. 4 stays off
    encoder.load_exported_state(weights, source=str(checkpoint))
    folder = encoder.save_pretrained(output)
    print(f"wrote {folder} from {checkpoint.name} ({describe_delta(encoder)})")
    return folder


def describe_delta(encoder: NameEncoder) -> str:
    """The encoder's default name guidance, for the export's output."""
    return f"calibrated name guidance delta = {float(encoder.name_delta):.4f}"


class ExportEncoder(L.Callback):
    """Exports the encoder folder when ``fit`` ends (from the last weights; ``magicnaming train export`` exports
    any other checkpoint).

    Args:
        directory: the encoder folder to write (default: ``encoder/`` in the trainer's ``default_root_dir``).
    """

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            folder = pl_module.encoder.save_pretrained(self.directory or Path(trainer.default_root_dir) / "encoder")
            print(f"exported the encoder to {folder} ({describe_delta(pl_module.encoder)})")
