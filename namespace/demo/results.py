"""The demo's numbers, read back through the file formats: the trainer's CSV metrics and the identity files."""

from __future__ import annotations

import csv
from pathlib import Path

# metrics.json key → the trainer's CSV column (its last validation)
RETRIEVAL = {
    "retrieval_top1_heldout_images": "val_heldout/top1",
    "retrieval_top1_unseen_identities": "val_unseen/top1",
    "chance": "val/chance",
    "retrieval_top5_heldout_images": "val_heldout/top5",
    "retrieval_top5_unseen_identities": "val_unseen/top5",
    "cosine_heldout_images": "val_heldout/cosine",
    "cosine_unseen_identities": "val_unseen/cosine",
}


def metrics_csv(training: Path) -> Path:
    """The CSV metrics of the latest run under ``training`` (``logs/version_K/metrics.csv``, highest K)."""
    found = sorted(training.glob("*/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    if not found:
        raise RuntimeError(f"no CSV metrics under {training}: the demo's training logs through CSVLogger")
    return found[-1]


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The rows of a Lightning CSV log, each with only the values it holds, as floats."""
    with path.open() as file:
        return [{key: float(value) for key, value in row.items() if value != ""} for row in csv.DictReader(file)]


def final_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Retrieval and cosine at the last validation, the last training loss, and the epochs trained."""
    validations = [row for row in rows if "val_heldout/top1" in row]
    losses = [row["train/loss"] for row in rows if "train/loss" in row]
    if not validations or not losses:
        raise RuntimeError("the training log holds no validation or no training loss: did training validate?")
    last = validations[-1]
    metrics = {key: last[column] for key, column in RETRIEVAL.items() if column in last}
    metrics["chance_top5"] = top_k_chance(metrics["chance"], 5)
    metrics["final_train_loss"] = losses[-1]
    metrics["epochs"] = int(max(row["epoch"] for row in rows)) + 1
    return metrics


def top_k_chance(chance: float, k: int) -> float:
    """The chance of top-k retrieval, min(k, K) / K, from the logged top-1 chance 1 / K (K names)."""
    names = round(1 / chance)
    return min(k, names) / names


def encoder_delta(folder: Path) -> float:
    """The exported encoder's calibrated name guidance δ (eq. 4; the trainer's last ``val_heldout/delta``)."""
    from namespace import NameEncoder

    return NameEncoder.from_pretrained(folder, load_towers=False).statistics.delta


def nearest_names(laioncele: Path, identity_files: dict[int, Path]) -> dict[str, dict]:
    """For each identity file (by its person's identity id): the nearest name of the data set by cosine, as the
    trainer's retrieval measures it, and whether it is the person's own name."""
    import torch

    from namespace import Identity
    from namespace.laioncele import read_identities, read_name_embeddings

    table = read_identities(laioncele).to_pylist()
    names = read_name_embeddings(laioncele)["name_embeddings"].flatten(1)  # (M, N·D)
    names = torch.nn.functional.normalize(names.float(), dim=1)
    row_of = {row["identity_id"]: row["row"] for row in table}
    name_of = {row["row"]: row["name"] for row in table}
    found = {}
    for identity_id, path in identity_files.items():
        identity = Identity.load(path)
        scores = names @ torch.nn.functional.normalize(identity.embedding.flatten().float(), dim=0)  # (M,)
        nearest = int(scores.argmax())
        found[identity.label] = {"nearest_name": name_of[nearest], "correct": nearest == row_of[identity_id]}
    return found
