"""Reading a LaionCele directory (written by ``magicnaming data build``) for training, with checks that fail before
training starts: format and version, name width and token count against the encoder, feature cache alignment."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from safetensors.torch import load_file

from namespace import NameSpaceStatistics

FORMAT = "magicnaming-laioncele"
FORMAT_VERSION = 1


@dataclass
class LaionCele:
    """The parts of a LaionCele directory a trainer needs.

    Attributes:
        names: (M, N, D) float32 name embeddings (targets), row r for identities row r.
        identity_rows: identity_id → row of ``names``.
        identity_split: identity_id → "train" or "val".
        statistics: mean, mean norm and PCA of the train identities' names.
        reference_crop: how the feature cache's photos were cropped to the face (none, loose or aligned).
    """

    folder: Path
    names: torch.Tensor
    identity_rows: dict[int, int]
    identity_split: dict[int, str]
    statistics: NameSpaceStatistics
    reference_crop: str = "none"

    @property
    def num_tokens(self) -> int:
        return self.names.shape[1]

    @property
    def width(self) -> int:
        return self.names.shape[2]


def read_laioncele(folder: str | Path, num_tokens: int | None = None, width: int | None = None) -> LaionCele:
    """Reads ``manifest.json``, ``identities.parquet`` and ``name_embeddings.safetensors``; checks them against the
    encoder's (N, D) when given."""
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"data_dir: {str(folder)!r} has no manifest.json (not a finished LaionCele build)")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"data_dir: {folder} holds format {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"data_dir: {folder} has format_version {manifest.get('format_version')!r}; this trainer reads "
            f"version {FORMAT_VERSION}: rebuild it with this version of magicnaming"
        )
    identities = pq.read_table(folder / "identities.parquet").to_pylist()
    tensors = load_file(str(folder / "name_embeddings.safetensors"))
    names = tensors["name_embeddings"].float()
    if names.shape[0] != len(identities):
        raise ValueError(f"{folder}: {names.shape[0]} name embeddings for {len(identities)} identities")
    found = tuple(names.shape[1:])
    if (num_tokens is not None and found[0] != num_tokens) or (width is not None and found[1] != width):
        raise ValueError(
            f"data_dir: {folder} holds names of shape (N, D) = {found}, but the encoder predicts "
            f"({num_tokens}, {width}): build the data with the encoder's pipeline, or change the encoder config"
        )
    components = tensors["pca_components"].float()
    statistics = NameSpaceStatistics(
        mean=tensors["name_mean"].float(),
        norm=float(tensors["name_norm"]),
        components=components,
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
    )


def cached_reference_crop(manifest: dict) -> str:
    """The face crop the feature cache was made with: what the features stage reports, else its config (builds from
    before the crop existed: none)."""
    stage = manifest.get("stages", {}).get("features", {})
    configured = manifest.get("config", {}).get("features", {}).get("reference_crop", "none")
    return stage.get("reference_crop", configured)


@dataclass
class FeatureCache:
    """The feature cache: (n, F) fp16 concatenated tower features, each photo's name row, split and key."""

    features: torch.Tensor
    name_rows: torch.Tensor
    splits: list[str]
    keys: list[str]


def read_feature_cache(data: LaionCele, feature_dim: int, reference_crop: str = "none") -> FeatureCache:
    """Reads ``features/``; checks the encoder's face crop, row alignment and the encoder's input width."""
    folder = data.folder / "features"
    if data.reference_crop != reference_crop:
        raise ValueError(
            f"data_dir: the feature cache of {data.folder} was made with features.reference_crop="
            f"{data.reference_crop!r}, but the encoder config says reference_crop={reference_crop!r}: set the "
            "encoder's reference_crop to match, rebuild the features with the encoder's crop, or stream images"
        )
    if not (folder / "keys.parquet").is_file():
        raise FileNotFoundError(f"data_dir: {data.folder} has no features/keys.parquet (build it with features on)")
    keys = pq.read_table(folder / "keys.parquet")
    arrays, index = [], 0
    while (folder / f"tower_{index}.npy").is_file():
        array = np.load(folder / f"tower_{index}.npy", allow_pickle=False)
        if array.shape[0] != keys.num_rows:
            raise ValueError(
                f"{folder}: tower_{index}.npy has {array.shape[0]} rows but keys.parquet has {keys.num_rows}: "
                "the feature cache is not aligned with its keys; rebuild the features stage"
            )
        arrays.append(torch.from_numpy(array))
        index += 1
    if not arrays:
        raise FileNotFoundError(f"{folder}: no tower_*.npy feature file")
    features = torch.cat(arrays, dim=1)  # (n, F) fp16
    if features.shape[1] != feature_dim:
        raise ValueError(
            f"{folder}: cached features are {features.shape[1]} wide, the encoder's towers give {feature_dim}: "
            "the cache was made with other towers than the encoder config names"
        )
    unknown = sorted({i for i in keys["identity_id"].to_pylist() if i not in data.identity_rows})
    if unknown:
        raise ValueError(f"{folder}: keys name identities {unknown[:5]} that identities.parquet does not hold")
    name_rows = torch.tensor([data.identity_rows[i] for i in keys["identity_id"].to_pylist()])
    return FeatureCache(features, name_rows, keys["split"].to_pylist(), keys["key"].to_pylist())
