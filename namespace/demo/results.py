"""The demo's numbers read back through their owners' readers: the trainer's final metrics (``namespace.train.results``)
and the identity files against the LaionCele names (``namespace.laioncele``)."""

from __future__ import annotations

from pathlib import Path

from namespace.train.results import final_metrics, metrics_csv, read_metrics, top_k_chance


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


__all__ = ["encoder_delta", "final_metrics", "metrics_csv", "nearest_names", "read_metrics", "top_k_chance"]
