"""Stage 6, clean: near duplicates out, photos without one clear face out, photos of someone else out, then the
at-least-N-images rule.

1. Near duplicates (cosine ≥ ``duplicate_threshold`` on normalised embeddings, clip-retrieval's 0.94 by default;
   an exact faiss range search below ``exact_search_below`` photos, each photo's ``duplicate_neighbours`` nearest
   in an IVF or HNSW index from there on, see ``similarity_search.py``): each group keeps its smallest key.
2. Face rules, only when the identity embedder is ``face`` (their facts come from the same face analysis as its
   embeddings, see ``face_rules.py``): ``no_face``, ``several_faces``, ``face_too_small``, ``partial_face``. Any
   other photo the identity embedder gives no embedding (a NaN row) is ``no_face`` too.
3. Names that failed the probe lose all their photos.
4. Identity check per photo, with the identity embedder; a photo that fails it is ``other_person``: against the
   name's probe images (cosine to their mean ≥ ``probe_threshold``, when set) and against the name's own majority
   cluster (cosine to the centroid of the photo with the most look-alikes and its look-alikes ≥
   ``cluster_threshold``, found among at most ``max_compared_per_identity`` of its photos, a seeded sample above
   that); a name with no majority cluster (fewer than ``majority_fraction`` of its photos agree) loses all of them.
5. Identities with fewer than ``min_images`` photos left are dropped.

Each step is a rule of ``RULES`` (a function, run in order: the first rule that drops a photo names its reason), and
``write_outputs`` writes the tables. Every dropped photo is a row of ``dropped.parquet`` with its reason and detail;
``kept.parquet`` holds the rest, ``faces.parquet`` the face facts of every photo (face embedder only). Memory, all
growing linearly with the photos n:
the keys, the facts, a reason per dropped photo, and the near-duplicate index (n · d float32, plus IVF's training
sample or HNSW's links from ``exact_search_below`` on); the (n, d) embedding arrays may be memory maps (float16 or
float32): they are read in batches for the index and one name's rows at a time for the identity check, which holds
that name's (m, d) rows and at most (max_compared_per_identity)² similarities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from namespace.faces import FaceConfig

from .embedders import calibrated_threshold
from .face_rules import FACTS_SCHEMA, FaceRules, broken_face_rules
from .similarity_search import BATCH_BYTES, SearchSettings, similar_pairs


@dataclass
class CleanConfig:
    """Cleaning thresholds.

    Attributes:
        duplicate_embedder: embedder for near duplicates (``clip``, ``thumbnail``, or ``module:function``).
        identity_embedder: embedder for the identity checks: ``face`` (the default, the face stack set by ``face``;
            it also turns the face rules on), ``clip``, ``face_colors``, ``judge:FOLDER``, ``module:function``.
        duplicate_threshold: cosine at or above which two photos are one (clip-retrieval uses 0.94).
        cluster_threshold: smallest cosine of a photo to its name's majority cluster (None: the identity
            embedder's calibrated same-person threshold; ``face``: ``face.threshold``).
        majority_fraction: the majority cluster must hold at least this share of a name's photos.
        probe_threshold: smallest cosine of a photo to its name's probe images (None: no probe check).
        min_images: fewest photos an identity keeps (the paper: 5).
        face: the face stack of the ``face`` identity embedder.
        face_rules: which photos the face stack rules out (``face`` identity embedder only).
        processes: CPU processes of the embedders that read the photos (``face``, the pixel embedders), each taking
            whole shards (the face stack runs at a few photos per second per core).
        exact_search_below: fewer photos than this are compared all pairs with all (exact near duplicates, n² · d);
            from this many on, each photo with its ``duplicate_neighbours`` nearest in ``approximate_index``. 0: always
            the approximate index.
        approximate_index: ``ivf`` (4 · √n k-means lists, ``ivf_probes`` searched per photo: √n · d per photo) or
            ``hnsw`` (a graph: log n · links · d per photo); see ``similarity_search.py``.
        duplicate_neighbours: nearest photos each photo is compared with above ``exact_search_below`` (a group of
            near duplicates larger than this is still one group: its members' neighbour lists overlap).
        ivf_probes: IVF lists searched per photo (nprobe).
        hnsw_links: links per photo of the HNSW graph (M; memory n · links · 8 bytes beside the n · d · 4 of the rows).
        hnsw_ef_search: candidates kept while searching the graph (at least ``duplicate_neighbours``).
        hnsw_ef_construction: candidates kept while building the graph.
        max_compared_per_identity: most photos of one name compared pairwise to find its majority cluster; a name with
            more is compared on a seeded sample of this many, then all its photos are scored against that centroid.
        seed: seeds those samples (with the identity id: a name's sample does not depend on the others) and IVF's
            training sample.
    """

    duplicate_embedder: str = "clip"
    identity_embedder: str = "face"
    duplicate_threshold: float = 0.94
    cluster_threshold: float | None = None
    majority_fraction: float = 0.5
    probe_threshold: float | None = None
    min_images: int = 5
    face: FaceConfig = field(default_factory=FaceConfig)
    face_rules: FaceRules = field(default_factory=FaceRules)
    processes: int = 1
    exact_search_below: int = 20000
    approximate_index: str = "ivf"
    duplicate_neighbours: int = 32
    ivf_probes: int = 8
    hnsw_links: int = 32
    hnsw_ef_search: int = 64
    hnsw_ef_construction: int = 40
    max_compared_per_identity: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.duplicate_embedder == "face":  # it embeds who is shown, not the photo: one person's photos are ≥ 0.95
            problems.append("clean.duplicate_embedder: expected an embedder of the whole photo (clip, thumbnail, ...), "
                            "got 'face' (two photos of one person are near duplicates to it)")  # fmt: skip
        if self.approximate_index not in ("ivf", "hnsw"):
            problems.append(f"clean.approximate_index: expected 'ivf' or 'hnsw', got {self.approximate_index!r}")
        least = {"processes": 1, "exact_search_below": 0, "duplicate_neighbours": 1, "ivf_probes": 1, "hnsw_links": 2,
                 "hnsw_ef_construction": 1, "max_compared_per_identity": 1}  # fmt: skip
        for name, smallest in least.items():
            if getattr(self, name) < smallest:
                problems.append(f"clean.{name}: expected at least {smallest}, got {getattr(self, name)}")
        if self.hnsw_ef_search < self.duplicate_neighbours:  # the graph search returns at most ef_search rows
            problems.append(f"clean.hnsw_ef_search: expected at least clean.duplicate_neighbours "
                            f"({self.duplicate_neighbours}), got {self.hnsw_ef_search}")  # fmt: skip
        if problems:
            raise ValueError("invalid clean config:\n  " + "\n  ".join(problems))


def thresholds(config: CleanConfig) -> dict:
    """The thresholds in effect and where each comes from (the stage's summary, hence the manifest). Cheap: it
    raises before any work when ``cluster_threshold`` is null and the identity embedder has no calibrated one."""
    if config.cluster_threshold is not None:
        cluster = float(config.cluster_threshold), "clean.cluster_threshold"
    else:
        cluster = calibrated_threshold(config.identity_embedder, config.face)
        if cluster is None:
            raise ValueError(
                "clean.cluster_threshold: null asks for the identity embedder's calibrated same-person threshold, but "
                f"identity_embedder {config.identity_embedder!r} has none; set a number"
            )
    probe_source = "clean.probe_threshold" + (" (null: no probe check)" if config.probe_threshold is None else "")
    summary = {
        "duplicate": {"value": config.duplicate_threshold, "source": "clean.duplicate_threshold"},
        "cluster": {"value": cluster[0], "source": cluster[1]},
        "majority_fraction": {"value": config.majority_fraction, "source": "clean.majority_fraction"},
        "probe": {"value": config.probe_threshold, "source": probe_source},
    }
    if config.identity_embedder == "face":
        face = config.face
        summary["face"] = {"backend": face.backend, "detector": face.detector, "upsample": face.upsample,
                           "detection_side": face.detection_side, "same_person_threshold": face.threshold,
                           "source": "clean.face"}  # fmt: skip
        summary["face_rules"] = {**asdict(config.face_rules), "source": "clean.face_rules"}
    return summary


def search_settings(config: CleanConfig) -> SearchSettings:
    """The near-duplicate search's settings from the clean config."""
    return SearchSettings(exact_below=config.exact_search_below, approximate=config.approximate_index,
                          neighbours=config.duplicate_neighbours, probes=config.ivf_probes, links=config.hnsw_links,
                          ef_search=config.hnsw_ef_search, ef_construction=config.hnsw_ef_construction,
                          seed=config.seed)  # fmt: skip


def near_duplicates(
    embeddings: np.ndarray, keys: list[str], threshold: float, settings: SearchSettings | None = None
) -> dict[int, int]:
    """Maps each duplicate row to the row it duplicates (the smallest key of its group).

    Args:
        embeddings: (n, d) normalised rows (float16 or float32, may be a memory map), row-aligned with ``keys``.
        keys: the photos' keys.
        threshold: smallest cosine of two near duplicates.
        settings: exact, IVF or HNSW search (None: ``SearchSettings()``; ``similarity_search.py``: its memory).
    """
    parent: dict[int, int] = {}  # union-find over the rows of some pair only (a few per duplicated photo)

    def root(i: int) -> int:
        while parent.setdefault(i, i) != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in similar_pairs(embeddings, threshold, settings or SearchSettings()).tolist():
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b, key=lambda r: keys[r])] = min(a, b, key=lambda r: keys[r])
    return {i: root(i) for i in sorted(parent) if root(i) != i}


def majority_cluster(
    embeddings: np.ndarray, threshold: float, max_compared: int | None = None, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For one name's (n, d) photos: a boolean mask of the majority cluster and each photo's cosine to it.

    The core photo (the most look-alikes at or above ``threshold``) and the centroid of it and its look-alikes are
    found among at most ``max_compared`` photos (a sample drawn by ``rng`` when n is larger; None: all), then every
    photo is scored against that centroid. Memory: the (m, m) similarities, m = min(n, max_compared), and n scores.
    """
    compared = embeddings
    if max_compared is not None and len(embeddings) > max_compared:
        rng = rng if rng is not None else np.random.default_rng(0)
        compared = embeddings[np.sort(rng.choice(len(embeddings), max_compared, replace=False))]
    neighbours = compared @ compared.T >= threshold  # (m, m)
    core = int(np.argmax(neighbours.sum(1)))  # the photo with the most look-alikes
    centroid = compared[neighbours[core]].mean(0)
    centroid /= max(np.linalg.norm(centroid), 1e-12)
    scores = embeddings @ centroid  # (n,)
    return scores >= threshold, scores


Reason = tuple[str, str]  # (reason, detail) of a dropped photo, as dropped.parquet holds them


@dataclass(frozen=True)
class Photos:
    """What the rules read: one row per downloaded photo (``clean``'s arguments, checked, in the rules' terms).

    Attributes:
        keys: the photos' keys.
        identities: the identity id each photo's caption names.
        duplicate_embeddings: (n, d) normalised embeddings for near duplicates.
        identity_embeddings: (n, d') normalised embeddings for identity checks (NaN rows: no face).
        faces: the face facts (``face_rules.FACTS_SCHEMA``), or None.
        probe_passed: identity id → whether the name passed the probe (None: no probe).
        probe_centroids: identity id → (d',) mean of the name's probe images.
        config: the thresholds.
        cluster_threshold: the majority cluster's threshold in effect (``thresholds``).
    """

    keys: list[str]
    identities: list[int]
    duplicate_embeddings: np.ndarray
    identity_embeddings: np.ndarray
    faces: pa.Table | None
    probe_passed: dict[int, bool] | None
    probe_centroids: dict[int, np.ndarray]
    config: CleanConfig
    cluster_threshold: float

    def left_by_identity(self, reasons: dict[int, Reason]) -> dict[int, list[int]]:
        """identity id → its rows that no rule has dropped yet, in row order."""
        left: dict[int, list[int]] = {}
        for row, identity in enumerate(self.identities):
            if row not in reasons:
                left.setdefault(identity, []).append(row)
        return left


def drop_near_duplicates(photos: Photos, reasons: dict[int, Reason]) -> dict:
    """Step 1: each group of near duplicates keeps its smallest key; the others are ``near_duplicate`` (detail: the
    key they duplicate). Returns the search's description."""
    config, search = photos.config, search_settings(photos.config)
    found = near_duplicates(photos.duplicate_embeddings, photos.keys, config.duplicate_threshold, search)
    for row, original in found.items():
        reasons.setdefault(row, ("near_duplicate", photos.keys[original]))
    source = (
        "clean.exact_search_below, clean.approximate_index, clean.duplicate_neighbours, clean.ivf_probes, clean.hnsw_*"
    )
    return {"duplicates": {**search.describe(len(photos.keys)), "source": source}}


def drop_broken_faces(photos: Photos, reasons: dict[int, Reason]) -> dict:
    """Step 2, with the face facts: ``no_face``, ``several_faces``, ``face_too_small``, ``partial_face``."""
    if photos.faces is not None:
        for row, broken in broken_face_rules(photos.faces, photos.config.face_rules).items():
            reasons.setdefault(row, broken)
    return {}


def drop_photos_without_embedding(photos: Photos, reasons: dict[int, Reason]) -> dict:
    """Step 2, any embedder: a photo the identity embedder gave no embedding (a NaN row) is ``no_face``."""
    for row in _nan_rows(photos.identity_embeddings).tolist():
        reasons.setdefault(row, ("no_face", f"no embedding from {photos.config.identity_embedder}"))
    return {}


def drop_other_people(photos: Photos, reasons: dict[int, Reason]) -> dict:
    """Steps 3 and 4, one name at a time: a name that failed the probe loses all its photos
    (``name_failed_probe``); then its photos far from its probe images or outside its majority cluster are
    ``other_person``, and a name with no majority cluster loses all of them (``no_majority_identity``). Returns the
    majority cluster search's description."""
    config, capped = photos.config, 0
    for identity, rows in sorted(photos.left_by_identity(reasons).items()):
        if photos.probe_passed is not None and not photos.probe_passed.get(identity, False):
            reasons.update({row: ("name_failed_probe", "") for row in rows})
            continue
        rows = np.asarray(rows)
        vectors = np.asarray(photos.identity_embeddings[rows], np.float32)  # (m, d'): this name's rows only
        rows, vectors = _drop_far_from_probe(photos, identity, rows, vectors, reasons)
        if not len(rows):
            continue
        capped += len(rows) > config.max_compared_per_identity
        _drop_outside_majority(photos, identity, rows, vectors, reasons)
    return {"majority_cluster": {"max_compared_per_identity": config.max_compared_per_identity,
                                 "identities_capped": capped, "seed": config.seed,
                                 "source": "clean.max_compared_per_identity, clean.seed"}}  # fmt: skip


def _drop_far_from_probe(
    photos: Photos, identity: int, rows: np.ndarray, vectors: np.ndarray, reasons: dict[int, Reason]
) -> tuple[np.ndarray, np.ndarray]:
    """One name's (m,) rows and (m, d') vectors: those below ``probe_threshold`` to its probe images are
    ``other_person``; returns the rest (all of them without a probe threshold or probe images)."""
    threshold = photos.config.probe_threshold
    if threshold is None or identity not in photos.probe_centroids:
        return rows, vectors
    scores = vectors @ np.asarray(photos.probe_centroids[identity], np.float32)  # (m,)
    far = scores < threshold
    for row, score in zip(rows[far].tolist(), scores[far], strict=True):
        reasons[row] = ("other_person", f"probe {score:.3f} < {threshold:.3f}")
    return rows[~far], vectors[~far]


def _drop_outside_majority(
    photos: Photos, identity: int, rows: np.ndarray, vectors: np.ndarray, reasons: dict[int, Reason]
) -> None:
    """One name's (m,) rows and (m, d') vectors against its majority cluster (``majority_cluster``)."""
    config, threshold = photos.config, photos.cluster_threshold
    sample = np.random.default_rng([config.seed, identity])  # used only above the cap
    members, scores = majority_cluster(vectors, threshold, config.max_compared_per_identity, sample)
    if members.sum() < config.majority_fraction * len(rows):
        reasons.update({row: ("no_majority_identity", f"{members.sum()}/{len(rows)}") for row in rows.tolist()})
        return
    for row, score in zip(rows[~members].tolist(), scores[~members], strict=True):
        reasons[row] = ("other_person", f"cluster {score:.3f} < {threshold:.3f}")


def drop_too_few_images(photos: Photos, reasons: dict[int, Reason]) -> dict:
    """Step 5: an identity with fewer than ``min_images`` photos left loses them (``too_few_images``)."""
    least = photos.config.min_images
    for rows in photos.left_by_identity(reasons).values():
        if len(rows) < least:
            reasons.update({row: ("too_few_images", f"{len(rows)}<{least}") for row in rows})
    return {}


Rule = Callable[[Photos, dict[int, Reason]], dict]
"""A rule adds the photos it drops to ``reasons`` (row → reason; a row already there is left as it is: the first
rule that drops a photo names its reason) and returns what the stage's ``search`` summary should say of it."""

RULES: tuple[Rule, ...] = (
    drop_near_duplicates,
    drop_broken_faces,
    drop_photos_without_embedding,
    drop_other_people,
    drop_too_few_images,
)


def clean(
    keys: pa.Table,
    duplicate_embeddings: np.ndarray,
    identity_embeddings: np.ndarray,
    probe: pa.Table | None,
    probe_centroids: np.ndarray | None,
    config: CleanConfig,
    output: Path,
    faces: pa.Table | None = None,
) -> dict:
    """Writes ``kept.parquet``, ``dropped.parquet`` (key, url, identity_id, reason, detail) and, with ``faces``,
    ``faces.parquet``; returns the funnel and the thresholds in effect.

    Args:
        keys: the feature cache's keys (one row per downloaded photo).
        duplicate_embeddings: (n, d) normalised embeddings for near duplicates, row-aligned with ``keys``.
        identity_embeddings: (n, d') normalised embeddings for identity checks (NaN rows: no face).
        probe: the probe stage's table (identity_id, passed), or None when there was no probe.
        probe_centroids: (names, d') probe means row-aligned with ``probe``, or None.
        config: thresholds.
        output: the stage folder.
        faces: the face facts (``face_rules.FACTS_SCHEMA``), row-aligned with ``keys``; needed (and only used) when
            the identity embedder is ``face``.
    """
    settings = thresholds(config)
    _check_inputs(keys, duplicate_embeddings, identity_embeddings, probe_centroids, config, faces)
    passed, centroid_of = None, {}
    if probe is not None:
        passed = dict(zip(probe["identity_id"].to_pylist(), probe["passed"].to_pylist(), strict=True))
        if probe_centroids is not None:
            centroid_of = {identity: probe_centroids[i] for i, identity in enumerate(probe["identity_id"].to_pylist())}
    photos = Photos(keys["key"].to_pylist(), keys["identity_id"].to_pylist(), duplicate_embeddings,
                    identity_embeddings, faces, passed, centroid_of, config, settings["cluster"]["value"])  # fmt: skip
    reasons: dict[int, Reason] = {}
    searches: dict = {}
    for rule in RULES:
        searches |= rule(photos, reasons)
    funnel = write_outputs(keys, faces, reasons, Path(output))
    return {"funnel": funnel, "thresholds": settings, "search": searches}


def write_outputs(keys: pa.Table, faces: pa.Table | None, reasons: dict[int, Reason], output: Path) -> dict[str, int]:
    """Writes ``kept.parquet`` (the keys' columns and each photo's ``feature_row``), ``dropped.parquet`` and, with
    ``faces``, ``faces.parquet`` into ``output``; returns the funnel: the photos, the count of each reason (in the
    order they were first met), the photos and identities kept."""
    if faces is not None:
        pq.write_table(pa.Table.from_arrays([keys["key"], *faces.columns], ["key", *faces.column_names]),
                       output / "faces.parquet")  # fmt: skip
    dropped_rows = sorted(reasons)
    kept_rows = [row for row in range(keys.num_rows) if row not in reasons]
    kept = keys.take(pa.array(kept_rows, pa.int64()))
    kept = kept.append_column("feature_row", pa.array(kept_rows, pa.int64()))
    dropped = keys.take(pa.array(dropped_rows, pa.int64())).select(["key", "url", "identity_id"])
    dropped = dropped.append_column("reason", pa.array([reasons[r][0] for r in dropped_rows], pa.string()))
    dropped = dropped.append_column("detail", pa.array([reasons[r][1] for r in dropped_rows], pa.string()))
    pq.write_table(kept, output / "kept.parquet")
    pq.write_table(dropped, output / "dropped.parquet")
    funnel: dict[str, int] = {"photos": keys.num_rows}
    for reason, _ in reasons.values():
        funnel[reason] = funnel.get(reason, 0) + 1
    funnel["kept"] = kept.num_rows
    identities = keys["identity_id"].to_pylist()
    funnel["identities_kept"] = len({identities[r] for r in kept_rows})
    return funnel


def _nan_rows(embeddings: np.ndarray) -> np.ndarray:
    """Rows with a NaN (no embedding), read in batches: a memory map is never converted whole."""
    step = max(1, BATCH_BYTES // max(1, embeddings.dtype.itemsize * embeddings.shape[1]))
    found = [start + np.flatnonzero(np.isnan(embeddings[start : start + step]).any(axis=1))
             for start in range(0, embeddings.shape[0], step)]  # fmt: skip
    return np.concatenate([np.zeros(0, np.int64), *found])


def _check_inputs(keys, duplicate_embeddings, identity_embeddings, probe_centroids, config, faces) -> None:
    """Every row count and width agrees, and the face rules have their facts; one error listing every problem."""
    n, problems = keys.num_rows, []
    arrays = {"duplicate_embeddings": duplicate_embeddings, "identity_embeddings": identity_embeddings}
    for argument, array in arrays.items():
        if array.ndim != 2 or array.shape[0] != n:
            problems.append(f"{argument}: expected ({n}, d), one row per key, got shape {tuple(array.shape)}")
    compared = probe_centroids is not None and config.probe_threshold is not None  # else the centroids go unused
    if compared and probe_centroids.shape[1:] != identity_embeddings.shape[1:]:
        problems.append(f"probe_centroids: expected width {identity_embeddings.shape[1]} (the identity embedder's), "
                        f"got {probe_centroids.shape[1]}: did the probe use another embedder?")  # fmt: skip
    if config.identity_embedder == "face" and faces is None:
        problems.append("faces: the face identity embedder needs the per-photo face facts (face_rules.face_facts)")
    if faces is not None and (faces.num_rows != n or faces.schema.names != FACTS_SCHEMA.names):
        problems.append(f"faces: expected {n} rows with columns {FACTS_SCHEMA.names}, got {faces.num_rows} rows "
                        f"with {faces.schema.names}")  # fmt: skip
    if problems:
        raise ValueError("clean: " + "; ".join(problems))
