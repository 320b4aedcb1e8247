"""Reading a LaionCele directory (written by ``magicnaming data build``) for training, with checks that fail before
training starts: name width and token count against the encoder, the feature cache's face crop, width and identities.
The format itself (files, version, alignment of the cache) is read by ``namespace.laioncele``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from namespace import NameSpaceStatistics
from namespace.laioncele import (
    FEATURE_KEYS,
    FEATURES,
    open_feature_cache,
    read_identities,
    read_manifest,
    read_name_embeddings,
    tower_file,
)


@dataclass
class LaionCele:
    """The parts of a LaionCele directory a trainer needs.

    Attributes:
        names: (M, N, D) name embeddings (targets) in the dtype they are stored in, row r for identities row r;
            users convert the rows they take (a float32 copy of all M names would double what every rank holds).
        identity_rows: identity_id → row of ``names``.
        identity_split: identity_id → "train" or "val".
        statistics: mean, mean norm and PCA of the train identities' names.
        reference_crop: how the feature cache's photos were cropped to the face (none, loose or aligned).
        manifest: ``manifest.json`` as read (format and version checked).
    """

    folder: Path
    names: torch.Tensor
    identity_rows: dict[int, int]
    identity_split: dict[int, str]
    statistics: NameSpaceStatistics
    reference_crop: str = "none"
    manifest: dict = field(default_factory=dict)

    @property
    def num_tokens(self) -> int:
        return self.names.shape[1]

    @property
    def width(self) -> int:
        return self.names.shape[2]


def read_laioncele(folder: str | Path, num_tokens: int | None = None, width: int | None = None) -> LaionCele:
    """Reads ``manifest.json``, ``identities.parquet`` and ``name_embeddings.safetensors``; checks them against the
    encoder's (N, D) when given. Holds the (M, N, D) targets as stored and one small row per identity."""
    folder = Path(folder)
    manifest = read_manifest(folder, "data_dir")
    identities = read_identities(folder).to_pylist()
    tensors = read_name_embeddings(folder)
    names = tensors["name_embeddings"]
    if names.shape[0] != len(identities):
        raise ValueError(f"{folder}: {names.shape[0]} name embeddings for {len(identities)} identities")
    found = tuple(names.shape[1:])
    if (num_tokens is not None and found[0] != num_tokens) or (width is not None and found[1] != width):
        raise ValueError(
            f"data_dir: {folder} holds names of shape (N, D) = {found}, but the encoder predicts "
            f"({num_tokens}, {width}): build the data with the encoder's pipeline, or change the encoder config"
        )
    statistics = NameSpaceStatistics(
        mean=tensors["name_mean"].float(),
        norm=float(tensors["name_norm"]),
        components=tensors["pca_components"].float(),
        variances=tensors["pca_variances"].float(),
        count=sum(row["split"] == "train" for row in identities),
    )
    return LaionCele(
        folder=folder,
        names=names,
        identity_rows={row["identity_id"]: row["row"] for row in identities},
        identity_split={row["identity_id"]: row["split"] for row in identities},
        statistics=statistics,
        reference_crop=cached_reference_crop(manifest),
        manifest=manifest,
    )


def cached_reference_crop(manifest: dict) -> str:
    """The face crop the feature cache was made with: what the features stage reports, else its config (builds from
    before the crop existed: none)."""
    stage = manifest.get("stages", {}).get("features", {})
    configured = manifest.get("config", {}).get("features", {}).get("reference_crop", "none")
    return stage.get("reference_crop", configured)


@dataclass
class FeatureCache:
    """The feature cache, memory-mapped: the towers' features stay in their files and are gathered per batch.

    Holds the keys table (key, identity_id, split, shard: tens of bytes per photo, in Arrow buffers) and each
    photo's name row (8 bytes per photo); the (n, E_i) fp16 tower files are read-only memory maps whose pages live
    in the OS page cache, shared by every process of a machine (the DDP ranks of a node, their DataLoader
    workers), so a rank's private memory does not grow with the cache. The maps are reopened, not copied, when the
    cache is pickled (into a spawned DataLoader worker).

    Attributes:
        folder: the cache folder (``<data_dir>/features``).
        keys: the keys table, row-aligned with the towers.
        name_rows: (n,) int64, each photo's row of the (M, N, D) targets.
        towers: one read-only (n, E_i) fp16 memmap per tower.
    """

    folder: Path
    keys: pa.Table
    name_rows: np.ndarray
    towers: list[np.ndarray]

    @property
    def feature_dim(self) -> int:
        return sum(tower.shape[1] for tower in self.towers)

    def rows(self, split: str) -> np.ndarray:
        """(n_split,) int64: the rows of the photos of ``split`` (train, heldout or val), in cache order."""
        return np.flatnonzero(pc.equal(self.keys["split"], split).to_numpy(zero_copy_only=False)).astype(np.int64)

    def gather(self, rows: np.ndarray) -> torch.Tensor:
        """(B,) cache rows → (B, F) float32 features, the towers' side by side, in the order of ``rows``.

        Reads the rows in ascending order (neighbouring rows share pages: fewest page reads) and puts them back in
        the caller's order. Holds one batch.
        """
        order = np.argsort(rows, kind="stable")
        ascending = rows[order]
        features = np.concatenate([tower[ascending] for tower in self.towers], axis=1)  # (B, F) fp16
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return torch.from_numpy(features[inverse]).float()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "towers": len(self.towers)}

    def __setstate__(self, state: dict) -> None:
        count = state.pop("towers")
        self.__dict__.update(state)
        self.towers = [np.load(self.folder / tower_file(i), mmap_mode="r", allow_pickle=False) for i in range(count)]


def read_feature_cache(data: LaionCele, feature_dim: int, reference_crop: str = "none") -> FeatureCache:
    """Opens ``features/`` memory-mapped; checks the encoder's face crop, row alignment, the encoder's input width
    and that every photo's identity has a name. Holds what ``FeatureCache`` says: no features."""
    folder = data.folder / FEATURES
    if data.reference_crop != reference_crop:
        raise ValueError(
            f"data_dir: the feature cache of {data.folder} was made with features.reference_crop="
            f"{data.reference_crop!r}, but the encoder config says reference_crop={reference_crop!r}: set the "
            "encoder's reference_crop to match, rebuild the features with the encoder's crop, or stream images"
        )
    if not (folder / FEATURE_KEYS).is_file():
        raise FileNotFoundError(f"data_dir: {data.folder} has no {FEATURES}/{FEATURE_KEYS} (build it with features on)")
    keys, towers = open_feature_cache(folder)
    width = sum(tower.shape[1] for tower in towers)
    if width != feature_dim:
        raise ValueError(
            f"{folder}: cached features are {width} wide, the encoder's towers give {feature_dim}: "
            "the cache was made with other towers than the encoder config names"
        )
    # each photo's position in the identities table, null where identities.parquet does not hold it
    known = pa.array(list(data.identity_rows), pa.int64())
    position = pc.index_in(keys["identity_id"].cast(pa.int64()), value_set=known)
    if position.null_count:
        unknown = sorted(set(pc.filter(keys["identity_id"], pc.is_null(position)).to_pylist()))
        raise ValueError(f"{folder}: keys name identities {unknown[:5]} that identities.parquet does not hold")
    rows_of = np.array(list(data.identity_rows.values()), dtype=np.int64)
    name_rows = rows_of[position.to_numpy(zero_copy_only=False)]
    return FeatureCache(folder, keys, name_rows, towers)
