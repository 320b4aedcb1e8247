"""Stage 8, assemble: the LaionCele directory the trainer reads.

Identities are split by identity (val identities are never seen in training); each train identity also gives a few
held-out photos. Written: ``train-*.tar`` (train photos) and ``val-*.tar`` (unseen identities' photos and held-out
photos, told apart by ``split`` in each ``key.json``), ``identities.parquet`` (one row per identity, row-aligned
with the targets), ``name_embeddings.safetensors`` (targets plus the statistics of the train identities' names),
``features/`` (the feature cache for the kept photos) and the two figures. ``manifest.json`` is written last by
the build: its presence marks a complete directory. The files' format is ``namespace/laioncele.py``'s.

Memory: the kept photos' table and a split per photo (a few strings per photo), one JPEG at a time (the download
shards are read in order, each photo written as it is read), one download shard's tar member list, and one batch of
``feature_batch`` feature rows; the targets of the kept identities ((M, N, D) float32, as the targets stage wrote
them).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from safetensors.torch import load_file

from namespace import NameSpaceStatistics
from namespace.laioncele import (
    FEATURES,
    FINGERPRINT,
    FeatureCacheWriter,
    open_feature_cache,
    read_fingerprint,
    shard_sample_metadata,
    write_feature_keys,
    write_identities,
    write_name_embeddings,
)

from .shards import ShardWriter, read_samples_by_key


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
    feature_batch: int = 65536,
) -> dict:
    """Writes the LaionCele files (all but the manifest) into ``output``; returns counts for the manifest.

    Args:
        kept: the clean stage's kept photos (key, url, identity_id, caption, shard, feature_row).
        download_shards: the downloaded shards, in order.
        names: the names table (identity_id, name).
        targets_file: the targets stage's safetensors.
        feature_folder: the build's feature cache.
        config: split and shard settings.
        output: the stage folder.
        feature_batch: feature-cache rows copied at once.
    """
    output = Path(output)
    name_of = dict(zip(names["identity_id"].to_pylist(), names["name"].to_pylist(), strict=True))
    kept_ids = sorted(set(kept["identity_id"].to_pylist()))
    split_of = split_identities({i: name_of[i] for i in kept_ids}, config)
    photo_split = _photo_splits(kept, split_of, config)
    row_of = {key: row for row, key in enumerate(kept["key"].to_pylist())}
    shards, order = _write_shards(kept, row_of, photo_split, download_shards, name_of, config, output)
    counts = Counter(kept["identity_id"].to_pylist())
    embeddings, train_rows = _write_identities_and_targets(kept_ids, name_of, split_of, counts, targets_file, config,
                                                           output)  # fmt: skip
    _write_features(kept, order, photo_split, shards["of_photo"], feature_folder, output / FEATURES, feature_batch)
    split_counts = {split: sum(s == split for s in photo_split.values()) for split in ("train", "heldout", "val")}
    return {
        "identities": len(kept_ids),
        "train_identities": len(train_rows),
        "val_identities": len(kept_ids) - len(train_rows),
        "images": split_counts,
        "shards": shards["names"],
        "name_shape": list(embeddings.shape[1:]),
        "images_per_identity": [counts[i] for i in kept_ids],
    }


def _photo_splits(kept: pa.Table, split_of: dict[int, str], config: AssembleConfig) -> dict[str, str]:
    """key → "train", "heldout" or "val": a train identity's first ``heldout_images_per_identity`` photos by a
    seeded hash of their keys are held out."""
    by_identity: dict[int, list[str]] = {}
    for key, identity in zip(kept["key"].to_pylist(), kept["identity_id"].to_pylist(), strict=True):
        by_identity.setdefault(identity, []).append(key)
    split = {}
    for identity, keys in by_identity.items():
        keys.sort(key=lambda key: _rank(config.seed, key))
        for position, key in enumerate(keys):
            if split_of[identity] == "val":
                split[key] = "val"
            else:
                split[key] = "heldout" if position < config.heldout_images_per_identity else "train"
    return split


def _write_shards(kept, row_of, photo_split, download_shards, name_of, config, output) -> tuple[dict, list[int]]:
    """Copies the kept photos' JPEG bytes as they are, with their metadata, into train/val shards: download shard by
    download shard, in key order within each (img2dataset's keys start with the shard's number, so this is key
    order overall). Returns the shards' names, each photo's output shard and the kept rows in the order written."""
    wanted: dict[str, set[str]] = {}
    for key, shard in zip(kept["key"].to_pylist(), kept["shard"].to_pylist(), strict=True):
        wanted.setdefault(shard, set()).add(key)
    urls, captions, identities = kept["url"].to_pylist(), kept["caption"].to_pylist(), kept["identity_id"].to_pylist()
    shard_of, order = {}, []
    with (
        ShardWriter(output, "train", config.samples_per_shard) as train,
        ShardWriter(output, "val", config.samples_per_shard) as val,
    ):
        for shard in download_shards:
            keys = wanted.pop(Path(shard).name, None)
            for sample in read_samples_by_key(shard, keys, decode=False) if keys else ():
                key, row = sample["key"], row_of[sample["key"]]
                writer = train if photo_split[key] == "train" else val
                metadata = shard_sample_metadata(key, identities[row], name_of[identities[row]], urls[row],
                                                 captions[row], photo_split[key])  # fmt: skip
                writer.write(key, sample["jpg"], metadata)
                shard_of[key] = writer.paths[-1].name
                order.append(row)
        names = {"train": [p.name for p in train.paths], "val": [p.name for p in val.paths]}
    if wanted or len(order) != kept.num_rows:
        missing = sorted(set(kept["key"].to_pylist()) - set(shard_of))[:5]
        raise FileNotFoundError(f"download_shards: {kept.num_rows - len(order)} kept photos are in no shard: {missing}")
    return {"names": names, "of_photo": shard_of}, order


def _write_identities_and_targets(kept_ids, name_of, split_of, counts, targets_file, config, output):
    """``identities.parquet`` and ``name_embeddings.safetensors``, row-aligned; returns the (M, N, D) targets and
    the train identities' rows."""
    targets = load_file(str(targets_file))
    target_row = {int(i): r for r, i in enumerate(targets["identity_ids"].tolist())}
    embeddings = targets["name_embeddings"][[target_row[i] for i in kept_ids]]  # (M, N, D)
    identities = pa.table(
        {
            "identity_id": pa.array(kept_ids, pa.int32()),
            "name": [name_of[i] for i in kept_ids],
            "num_images": pa.array([counts[i] for i in kept_ids], pa.int32()),
            "split": [split_of[i] for i in kept_ids],
            "row": pa.array(range(len(kept_ids)), pa.int32()),
        }
    )
    write_identities(output, identities)
    train_rows = [r for r, i in enumerate(kept_ids) if split_of[i] == "train"]
    statistics = NameSpaceStatistics.fit(embeddings[train_rows], rank=config.pca_rank)
    tensors = {
        "name_embeddings": embeddings.contiguous(),
        "name_mean": statistics.mean.contiguous(),
        "name_norm": torch.tensor(statistics.norm),
        "pca_components": statistics.components.contiguous(),
        "pca_variances": statistics.variances.contiguous(),
    }
    fingerprint = read_fingerprint(targets_file)  # the text side's, kept with the targets (None: built before them)
    recorded = {} if fingerprint is None else {FINGERPRINT: json.dumps(fingerprint)}
    write_name_embeddings(output, tensors, {"statistics_from": "train identities", **recorded})
    return embeddings, train_rows


def _write_features(kept, order, photo_split, shard_of, feature_folder, folder, batch: int) -> None:
    """The feature cache of the kept photos, row-aligned with the shards' order, ``batch`` rows at a time."""
    _, towers = open_feature_cache(feature_folder)
    feature_rows = kept["feature_row"].to_numpy()[order]
    ordered = kept.select(["key", "identity_id"]).take(pa.array(order, pa.int64()))
    key_list = ordered["key"].to_pylist()
    keys = pa.table(
        {
            "key": key_list,
            "identity_id": pa.array(ordered["identity_id"].to_pylist(), pa.int32()),
            "split": [photo_split[key] for key in key_list],
            "shard": [shard_of[key] for key in key_list],
        }
    )
    with FeatureCacheWriter(folder, len(order), [tower.shape[1] for tower in towers]) as cache:
        for start in range(0, len(order), batch):
            rows = feature_rows[start : start + batch]
            cache.write(start, [np.ascontiguousarray(tower[rows]) for tower in towers])
    write_feature_keys(folder, keys)
