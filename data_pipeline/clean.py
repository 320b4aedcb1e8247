"""Stage 6, clean: near duplicates out, photos of someone else out, then the at-least-N-images rule.

1. Near duplicates (faiss range search on normalised embeddings, cosine ≥ ``duplicate_threshold``, clip-retrieval's
   0.94 by default): each group keeps its smallest key.
2. Names that failed the probe lose all their photos.
3. Identity check per photo, with the identity embedder: against the name's probe images (cosine to their mean ≥
   ``probe_threshold``, when set) and against the name's own majority cluster (cosine to the centroid of the
   photo with the most look-alikes and its look-alikes ≥ ``cluster_threshold``); a name with no majority cluster
   (fewer than ``majority_fraction`` of its photos agree) loses all of them.
4. Identities with fewer than ``min_images`` photos left are dropped.

Every dropped photo is a row of ``dropped.parquet`` with its reason; ``kept.parquet`` holds the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


@dataclass
class CleanConfig:
    """Cleaning thresholds.

    Attributes:
        duplicate_embedder: embedder for near duplicates (``clip``, ``thumbnail``, or ``module:function``).
        identity_embedder: embedder for the identity checks (``clip``, ``face_colors``, a face model ...).
        duplicate_threshold: cosine at or above which two photos are one (clip-retrieval uses 0.94).
        cluster_threshold: smallest cosine of a photo to its name's majority cluster.
        majority_fraction: the majority cluster must hold at least this share of a name's photos.
        probe_threshold: smallest cosine of a photo to its name's probe images (None: no probe check).
        min_images: fewest photos an identity keeps (the paper: 5).
    """

    duplicate_embedder: str = "clip"
    identity_embedder: str = "clip"
    duplicate_threshold: float = 0.94
    cluster_threshold: float = 0.75
    majority_fraction: float = 0.5
    probe_threshold: float | None = None
    min_images: int = 5


def near_duplicates(embeddings: np.ndarray, keys: list[str], threshold: float) -> dict[int, int]:
    """Maps each duplicate row to the row it duplicates (the smallest key of its group); faiss range search."""
    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(np.ascontiguousarray(embeddings, dtype=np.float32))
    limits, _, neighbours = index.range_search(np.ascontiguousarray(embeddings, dtype=np.float32), threshold)
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(keys)):
        for j in neighbours[limits[i] : limits[i + 1]]:
            a, b = root(i), root(int(j))
            if a != b:
                parent[max(a, b, key=lambda r: keys[r])] = min(a, b, key=lambda r: keys[r])
    return {i: root(i) for i in range(len(keys)) if root(i) != i}


def majority_cluster(embeddings: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """For one name's (n, d) photos: a boolean mask of the majority cluster and each photo's cosine to it."""
    similarity = embeddings @ embeddings.T  # (n, n); n is small per name
    neighbours = similarity >= threshold
    core = int(np.argmax(neighbours.sum(1)))  # the photo with the most look-alikes
    members = neighbours[core]
    centroid = embeddings[members].mean(0)
    centroid /= max(np.linalg.norm(centroid), 1e-12)
    scores = embeddings @ centroid
    return scores >= threshold, scores


def clean(
    keys: pa.Table,
    duplicate_embeddings: np.ndarray,
    identity_embeddings: np.ndarray,
    probe: pa.Table | None,
    probe_centroids: np.ndarray | None,
    config: CleanConfig,
    output: Path,
) -> dict:
    """Writes ``kept.parquet`` and ``dropped.parquet`` (key, url, identity_id, reason, detail); returns the funnel.

    Args:
        keys: the feature cache's keys (one row per downloaded photo).
        duplicate_embeddings: (n, d) normalised embeddings for near duplicates, row-aligned with ``keys``.
        identity_embeddings: (n, d') normalised embeddings for identity checks.
        probe: the probe stage's table (identity_id, passed), or None when there was no probe.
        probe_centroids: (names, d') probe means row-aligned with ``probe``, or None.
        config: thresholds.
        output: the stage folder.
    """
    key_list, identities = keys["key"].to_pylist(), keys["identity_id"].to_pylist()
    reasons: dict[int, tuple[str, str]] = {}
    for row, original in near_duplicates(duplicate_embeddings, key_list, config.duplicate_threshold).items():
        reasons[row] = ("near_duplicate", key_list[original])
    passed, centroid_of = {}, {}
    if probe is not None:
        for i, (identity, ok) in enumerate(
            zip(probe["identity_id"].to_pylist(), probe["passed"].to_pylist(), strict=True)
        ):
            passed[identity] = ok
            if probe_centroids is not None:
                centroid_of[identity] = probe_centroids[i]
    by_identity: dict[int, list[int]] = {}
    for row, identity in enumerate(identities):
        if row not in reasons:
            by_identity.setdefault(identity, []).append(row)
    for identity, rows in sorted(by_identity.items()):
        if probe is not None and not passed.get(identity, False):
            reasons.update({row: ("name_failed_probe", "") for row in rows})
            continue
        if config.probe_threshold is not None and identity in centroid_of:
            scores = identity_embeddings[rows] @ centroid_of[identity]
            for row, score in zip(rows, scores, strict=True):
                if score < config.probe_threshold:
                    reasons[row] = ("off_identity_probe", f"{score:.3f}")
            rows = [row for row in rows if row not in reasons]
        if not rows:
            continue
        members, scores = majority_cluster(identity_embeddings[rows], config.cluster_threshold)
        if members.sum() < config.majority_fraction * len(rows):
            reasons.update({row: ("no_majority_identity", f"{members.sum()}/{len(rows)}") for row in rows})
            continue
        for row, member, score in zip(rows, members, scores, strict=True):
            if not member:
                reasons[row] = ("off_identity_cluster", f"{score:.3f}")
    remaining: dict[int, list[int]] = {}
    for row, identity in enumerate(identities):
        if row not in reasons:
            remaining.setdefault(identity, []).append(row)
    for rows in remaining.values():
        if len(rows) < config.min_images:
            reasons.update({row: ("too_few_images", f"{len(rows)}<{config.min_images}") for row in rows})
    dropped_rows = sorted(reasons)
    kept_rows = [row for row in range(keys.num_rows) if row not in reasons]
    kept = keys.take(pa.array(kept_rows, pa.int64()))
    kept = kept.append_column("feature_row", pa.array(kept_rows, pa.int64()))
    dropped = keys.take(pa.array(dropped_rows, pa.int64())).select(["key", "url", "identity_id"])
    dropped = dropped.append_column("reason", pa.array([reasons[r][0] for r in dropped_rows], pa.string()))
    dropped = dropped.append_column("detail", pa.array([reasons[r][1] for r in dropped_rows], pa.string()))
    pq.write_table(kept, Path(output) / "kept.parquet")
    pq.write_table(dropped, Path(output) / "dropped.parquet")
    funnel: dict[str, int] = {"photos": keys.num_rows}
    for reason, _ in reasons.values():
        funnel[reason] = funnel.get(reason, 0) + 1
    funnel["kept"] = kept.num_rows
    funnel["identities_kept"] = len({identities[r] for r in kept_rows})
    return {"funnel": funnel}
