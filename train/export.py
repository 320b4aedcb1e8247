"""Export: a training checkpoint → an encoder folder (config.json + model.safetensors) the plugin loads.

The folder holds the head and the dataset's name statistics (``name_mean``, ``name_norm``, PCA), which the module
stored in the encoder's buffers when training started, and the name guidance δ the module calibrated at its latest
validation (``name_delta``). Checkpoints are read with ``torch.load(weights_only=True)``. The folder is written whole
(``NameEncoder.save_pretrained``): a killed export leaves no folder that loads.

The folder's ``config.json`` carries the encoder's ``record`` (``training_record``): the LaionCele directory it was
trained on (its path as given, identity counts, the SHA-256 of its ``manifest.json`` and ``identities.parquet``: small
files, no photos), the fingerprint of the text side whose names it learned (when the data set holds one), the run
(steps, epochs, the last validation's metrics) and magicnaming's version. Every checkpoint
holds it (``NameEncoderModule.on_save_checkpoint``); the model card shows it.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import lightning as L
import torch

from namespace import NameEncoder, NameEncoderConfig, __version__
from namespace.files import output_problems
from namespace.laioncele import IDENTITIES, MANIFEST, read_fingerprint
from namespace.redaction import redacted_url

RECORD_KEY = "magicnaming_record"  # the checkpoint's copy of the encoder's record


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
    encoder.record = state.get(RECORD_KEY) or checkpoint_record(state)
    folder = encoder.save_pretrained(output)
    print(f"wrote {folder} from {checkpoint.name} ({describe_delta(encoder)})")
    return folder


def training_record(trainer: L.Trainer) -> dict:
    """The encoder's record of its training, as the trainer stands: the data set, the run, magicnaming's version.

    Returns:
        Plain JSON values: ``magicnaming_version``, ``training_data`` (when the datamodule has read its LaionCele
        directory: ``path``, ``format``, ``identities``, ``train_identities``, ``photos``, ``sha256`` of the manifest
        and the identity table), ``fingerprint`` (when the data set has one: its text side's, ``namespace.fingerprint``)
        and ``training`` (``steps``, ``epochs`` as batches trained over batches per epoch, ``metrics``: the last
        validation's ``val*`` values).
    """
    record: dict = {"magicnaming_version": __version__}
    data = getattr(trainer.datamodule, "data", None)  # the LaionCele the module's setup read
    if data is not None:
        record["training_data"] = training_data_record(data.folder, data.manifest, data.identity_split)
        fingerprint = read_fingerprint(data.folder)  # the text side the names were learned from (None: none recorded)
        if fingerprint is not None:
            record["fingerprint"] = fingerprint
    run: dict = {"steps": int(trainer.global_step)}
    batches, per_epoch = trainer.fit_loop.epoch_loop.batch_progress.total.completed, trainer.num_training_batches
    if isinstance(per_epoch, int | float) and 0 < per_epoch < math.inf:
        run["epochs"] = round(batches / per_epoch, 3)
    metrics = {
        name: float(value)
        for name, value in sorted(trainer.callback_metrics.items())
        if name.startswith("val") and torch.is_tensor(value) and value.numel() == 1
    }
    if metrics:
        run["metrics"] = metrics
    record["training"] = run
    return record


def training_data_record(folder: Path, manifest: dict, identity_split: dict[int, str]) -> dict:
    """The LaionCele directory's entry in the record: what identifies it without reading its photos."""
    counts = manifest.get("counts", {})
    return {
        "path": redacted_url(str(folder)),
        "format": f"{manifest.get('format')} v{manifest.get('format_version')}",
        "identities": len(identity_split),
        "train_identities": sum(split == "train" for split in identity_split.values()),
        **({"photos": counts["images"]} if "images" in counts else {}),
        "sha256": {name: file_sha256(Path(folder) / name) for name in (MANIFEST, IDENTITIES)},
    }


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_record(state: dict) -> dict:
    """The record of a checkpoint written before checkpoints held one: the version exporting it, its steps."""
    record: dict = {"magicnaming_version": __version__}
    if "global_step" in state:
        record["training"] = {"steps": int(state["global_step"])}
    return record


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
            pl_module.encoder.record = training_record(trainer)
            folder = pl_module.encoder.save_pretrained(self.directory or Path(trainer.default_root_dir) / "encoder")
            print(f"exported the encoder to {folder} ({describe_delta(pl_module.encoder)})")
