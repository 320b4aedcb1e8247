"""Reading a finished training run's results: the last checkpoint and the trainer's metrics.

``magicnaming train fit`` writes Lightning's layout under its ``default_root_dir`` (``<logger>/version_K/``, with
``checkpoints/last.ckpt`` and, with a ``CSVLogger``, ``metrics.csv``) and logs its metrics under the names of
``module.py``. These readers are the one place outside the trainer that knows that layout and those names.
"""

from __future__ import annotations

import csv
from pathlib import Path

# a reader's name → the trainer's metric (its last validation)
RETRIEVAL = {
    "retrieval_top1_heldout_images": "val_heldout/top1",
    "retrieval_top1_unseen_identities": "val_unseen/top1",
    "chance": "val/chance",
    "retrieval_top5_heldout_images": "val_heldout/top5",
    "retrieval_top5_unseen_identities": "val_unseen/top5",
    "cosine_heldout_images": "val_heldout/cosine",
    "cosine_unseen_identities": "val_unseen/cosine",
}


def _version(path: Path) -> int:
    return int(path.name.split("_")[-1])


def last_checkpoint(training: Path) -> Path:
    """``last.ckpt`` of the latest run under ``training`` (``*/version_K/checkpoints/last.ckpt``, highest K)."""
    found = sorted(Path(training).glob("*/version_*/checkpoints/last.ckpt"), key=lambda p: _version(p.parents[1]))
    if not found:
        raise RuntimeError(f"no last.ckpt under {training}: the train config needs ModelCheckpoint(save_last=true)")
    return found[-1]


def metrics_csv(training: Path) -> Path:
    """The CSV metrics of the latest run under ``training`` (``*/version_K/metrics.csv``, highest K)."""
    found = sorted(Path(training).glob("*/version_*/metrics.csv"), key=lambda p: _version(p.parent))
    if not found:
        raise RuntimeError(f"no CSV metrics under {training}: log through lightning.pytorch.loggers.CSVLogger")
    return found[-1]


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The rows of a Lightning CSV log, each with only the values it holds, as floats."""
    with Path(path).open() as file:
        return [{key: float(value) for key, value in row.items() if value != ""} for row in csv.DictReader(file)]


LOSSES = {"train": "train/loss", "heldout": "val_heldout/mse", "unseen": "val_unseen/mse"}  # curve → metric
SPLITS = ("heldout", "unseen")  # held-out photos of training people; people unseen in training


def validations(rows: list[dict[str, float]]) -> list[dict[str, float]]:
    """The rows of the log written at a validation."""
    return [row for row in rows if "val_heldout/top1" in row]


def loss_curves(rows: list[dict[str, float]]) -> dict[str, list[tuple[float, float]]]:
    """(step, MSE) points per curve of ``LOSSES``: the training loss per logged step, each split's per validation
    (an empty list where the log has none)."""
    return {curve: [(row["step"], row[metric]) for row in rows if metric in row] for curve, metric in LOSSES.items()}


def retrieval_curves(rows: list[dict[str, float]]) -> tuple[list[float], dict[tuple[str, int], list[float]], float]:
    """Per validation: the epochs (counted from 1), top-k retrieval per (split, k) for ``SPLITS`` and k = 1, 5
    (NaN where not logged), and the last validation's top-1 chance 1 / K."""
    checked = validations(rows)
    keys = [(split, k) for split in SPLITS for k in (1, 5)]
    curves = {(split, k): [row.get(f"val_{split}/top{k}", float("nan")) for row in checked] for split, k in keys}
    return [row["epoch"] + 1 for row in checked], curves, checked[-1]["val/chance"]


def final_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Retrieval and cosine at the last validation (named as ``RETRIEVAL``'s keys), ``chance_top5``, the last
    training loss (``final_train_loss``) and the epochs trained (``epochs``)."""
    validated = validations(rows)
    losses = [loss for _, loss in loss_curves(rows)["train"]]
    if not validated or not losses:
        raise RuntimeError("the training log holds no validation or no training loss: did training validate?")
    last = validated[-1]
    metrics = {key: last[column] for key, column in RETRIEVAL.items() if column in last}
    metrics["chance_top5"] = top_k_chance(metrics["chance"], 5)
    metrics["final_train_loss"] = losses[-1]
    metrics["epochs"] = int(max(row["epoch"] for row in rows)) + 1
    return metrics


def top_k_chance(chance: float, k: int) -> float:
    """The chance of top-k retrieval, min(k, K) / K, from the logged top-1 chance 1 / K (K names)."""
    names = round(1 / chance)
    return min(k, names) / names


__all__ = ["RETRIEVAL", "final_metrics", "last_checkpoint", "metrics_csv", "read_metrics", "top_k_chance"]
