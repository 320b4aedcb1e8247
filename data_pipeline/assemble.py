"""Stage 8, assemble: the LaionCele directory the trainer reads.

Identities are split by identity (val identities are never seen in training); each train identity also gives a few
held-out photos. Written: ``train-*.tar`` (train photos) and ``val-*.tar`` (unseen identities' photos and held-out
photos, told apart by ``split`` in each ``key.json``), ``identities.parquet`` (one row per identity, row-aligned
with the targets), ``name_embeddings.safetensors`` (targets plus the statistics of the train identities' names),
``features/`` (the feature cache for the kept photos) and the two figures. ``manifest.json`` is written last by
the build: its presence marks a complete directory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors.torch import load_file, save_file

from namespace import NameSpaceStatistics

from .shards import ShardWriter, read_samples

FORMAT = "magicnaming-laioncele"
FORMAT_VERSION = 1


@dataclass
class AssembleConfig:
    """Split and shard settings.

    Attributes:
        val_identity_fraction: share of identities held out entirely (unseen in training).
        min_val_identities: at least this many val identities.
        heldout_images_per_identity: photos of each train identity held out for validation.
        samples_per_shard: photos per output shard.
        pca_rank: principal directions kept of the train names (for sampling new identities).
        seed: seeds the split.
    """

    val_identity_fraction: float = 0.1
    min_val_identities: int = 1
    heldout_images_per_identity: int = 1
    samples_per_shard: int = 1000
    pca_rank: int = 64
    seed: int = 0


def _rank(seed: int, text: str) -> str:
    return hashlib.sha1(f"{seed}:{text}".encode()).hexdigest()


def split_identities(names: dict[int, str], config: AssembleConfig) -> dict[int, str]:
    """identity_id → "train" or "val", by a seeded hash of the name (stable when identities are added)."""
    ordered = sorted(names, key=lambda identity: _rank(config.seed, names[identity]))
    count = max(config.min_val_identities, round(config.val_identity_fraction * len(ordered)))
    if count >= len(ordered):
        raise ValueError(
            f"assemble: {len(ordered)} identities cannot give {count} val identities and keep any for training"
        )
    return {identity: ("val" if rank < count else "train") for rank, identity in enumerate(ordered)}


def assemble(
    kept: pa.Table,
    download_shards: list[str],
    names: pa.Table,
    targets_file: Path,
    feature_folder: Path,
    config: AssembleConfig,
    output: Path,
) -> dict:
    """Writes the LaionCele files (all but the manifest) into ``output``; returns counts for the manifest."""
    output = Path(output)
    name_of = dict(zip(names["identity_id"].to_pylist(), names["name"].to_pylist(), strict=True))
    kept_ids = sorted(set(kept["identity_id"].to_pylist()))
    split_of = split_identities({i: name_of[i] for i in kept_ids}, config)

    # photo splits: held-out photos of train identities by a seeded hash of their keys
    rows = kept.to_pylist()
    by_identity: dict[int, list[dict]] = {}
    for row in rows:
        by_identity.setdefault(row["identity_id"], []).append(row)
    for identity, photos in by_identity.items():
        photos.sort(key=lambda row: _rank(config.seed, row["key"]))
        for position, row in enumerate(photos):
            if split_of[identity] == "val":
                row["split"] = "val"
            else:
                row["split"] = "heldout" if position < config.heldout_images_per_identity else "train"
    rows.sort(key=lambda row: row["key"])

    # shards: the downloaded JPEG bytes as they are, with their metadata
    wanted = {row["key"]: row for row in rows}
    images: dict[str, bytes] = {}
    for shard in download_shards:
        for sample in read_samples(shard, decode=False):
            if sample["key"] in wanted:
                images[sample["key"]] = sample["jpg"]
    shard_of = {}
    with (
        ShardWriter(output, "train", config.samples_per_shard) as train,
        ShardWriter(output, "val", config.samples_per_shard) as val,
    ):
        for row in rows:
            writer = train if row["split"] == "train" else val
            metadata = {"key": row["key"], "identity_id": row["identity_id"], "name": name_of[row["identity_id"]],
                        "url": row["url"], "caption": row["caption"], "split": row["split"]}  # fmt: skip
            writer.write(row["key"], images[row["key"]], metadata)
            shard_of[row["key"]] = writer.paths[-1].name
        shard_names = {"train": [p.name for p in train.paths], "val": [p.name for p in val.paths]}

    # identities and targets, row-aligned
    targets = load_file(str(targets_file))
    target_row = {int(i): r for r, i in enumerate(targets["identity_ids"].tolist())}
    embeddings = targets["name_embeddings"][[target_row[i] for i in kept_ids]]  # (M, N, D)
    counts = {i: len(by_identity[i]) for i in kept_ids}
    identities = pa.table(
        {
            "identity_id": pa.array(kept_ids, pa.int32()),
            "name": [name_of[i] for i in kept_ids],
            "num_images": pa.array([counts[i] for i in kept_ids], pa.int32()),
            "split": [split_of[i] for i in kept_ids],
            "row": pa.array(range(len(kept_ids)), pa.int32()),
        }
    )
    pq.write_table(identities, output / "identities.parquet")
    train_rows = [r for r, i in enumerate(kept_ids) if split_of[i] == "train"]
    statistics = NameSpaceStatistics.fit(embeddings[train_rows], rank=config.pca_rank)
    tensors = {
        "name_embeddings": embeddings.contiguous(),
        "name_mean": statistics.mean.contiguous(),
        "name_norm": torch.tensor(statistics.norm),
        "pca_components": statistics.components.contiguous(),
        "pca_variances": statistics.variances.contiguous(),
    }
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "statistics_from": "train identities"}
    save_file(tensors, str(output / "name_embeddings.safetensors"), metadata=metadata)

    # the feature cache, for the kept photos only, row-aligned with its keys
    features = output / "features"
    features.mkdir(exist_ok=True)
    feature_rows = [row["feature_row"] for row in rows]
    keys = pa.table(
        {
            "key": [row["key"] for row in rows],
            "identity_id": pa.array([row["identity_id"] for row in rows], pa.int32()),
            "split": [row["split"] for row in rows],
            "shard": [shard_of[row["key"]] for row in rows],
        }
    )
    pq.write_table(keys, features / "keys.parquet")
    index = 0
    while (Path(feature_folder) / f"tower_{index}.npy").exists():
        array = np.load(Path(feature_folder) / f"tower_{index}.npy", mmap_mode="r", allow_pickle=False)
        np.save(features / f"tower_{index}.npy", np.ascontiguousarray(array[feature_rows]), allow_pickle=False)
        index += 1

    split_counts = {split: sum(row["split"] == split for row in rows) for split in ("train", "heldout", "val")}
    return {
        "identities": len(kept_ids),
        "train_identities": len(train_rows),
        "val_identities": len(kept_ids) - len(train_rows),
        "images": split_counts,
        "shards": shard_names,
        "name_shape": list(embeddings.shape[1:]),
        "images_per_identity": [counts[i] for i in kept_ids],
    }
