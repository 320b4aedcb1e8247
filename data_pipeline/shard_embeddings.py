"""Pixel and face embedders over the downloaded shards, streaming, row-aligned with the feature cache's keys.

Shards are embedded one at a time, ``batch_size`` photos decoded at once, in this process or in a pool of
``processes`` (each loads the embedder once and takes whole shards). Memory: one batch of decoded photos per process;
the result grows by d float32 per photo and, for the ``face`` embedder, one row of face facts per photo (a few
numbers: faces found, sizes, a box); a finished shard's rows are copied into the result as it arrives.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pyarrow as pa

from namespace.faces import FaceConfig
from namespace.progress import progress

from .embedders import l2_normalise, resolve_embedder
from .face_rules import FACTS_SCHEMA, face_facts
from .shards import read_samples


def embed_shards(
    name: str,
    shards: list[str],
    keys: pa.Table,
    face: FaceConfig | None = None,
    batch_size: int = 256,
    processes: int = 1,
) -> tuple[np.ndarray, pa.Table | None]:
    """Runs the embedder ``name`` over every photo of ``keys``, shard by shard.

    Args:
        name: a pixel embedder, ``face``, ``judge:FOLDER`` or ``module:function`` (``clip`` is the feature cache).
        shards: the downloaded shards (paths); ``keys["shard"]`` names the one holding each photo.
        keys: the feature cache's keys (n rows).
        face: the face stack's settings (``face`` only).
        batch_size: photos decoded and embedded at once.
        processes: shards embedded in parallel (1: in this process).

    Returns:
        (n, d) float32 normalised rows in the order of ``keys`` (NaN where no face is found), and for ``face`` the
        per-photo face facts (``face_rules.FACTS_SCHEMA``, n rows, same order) from the same analysis; else None.
    """
    if processes < 1:
        raise ValueError(f"processes: expected at least 1, got {processes}")
    path_of = {Path(shard).name: str(shard) for shard in shards}
    rows_of: dict[str, dict[str, int]] = {}  # shard → its photos' key → row, in cache order
    for row, (key, shard) in enumerate(zip(keys["key"].to_pylist(), keys["shard"].to_pylist(), strict=True)):
        rows_of.setdefault(shard, {})[key] = row
    missing = [shard for shard in rows_of if shard not in path_of]
    if missing:
        raise FileNotFoundError(f"shards: the feature cache names shards not downloaded: {', '.join(missing[:5])}")
    jobs = [(name, path_of[shard], rows, face, batch_size) for shard, rows in rows_of.items()]
    embeddings: np.ndarray | None = None
    facts: list[tuple[np.ndarray, pa.Table]] = []
    with _pool(processes) as pool:
        run = pool.map if pool else map
        results = run(_embed_shard, *zip(*jobs, strict=True)) if jobs else []
        for rows, vectors, shard_facts in progress(results, total=len(jobs), desc=f"embed[{name}]", unit="shard"):
            if embeddings is None:  # the width is known once the first shard is embedded
                embeddings = np.full((keys.num_rows, vectors.shape[1]), np.nan, dtype=np.float32)
            embeddings[rows] = vectors
            if shard_facts is not None:
                facts.append((rows, shard_facts))
    if embeddings is None:
        embeddings = np.zeros((0, 0), np.float32)
    if name != "face":
        return embeddings, None
    if not facts:  # no photos
        return embeddings, FACTS_SCHEMA.empty_table()
    order = np.argsort(np.concatenate([rows for rows, _ in facts]))
    return embeddings, pa.concat_tables([table for _, table in facts]).take(pa.array(order, pa.int64()))


def _pool(processes: int):
    """A spawn pool of ``processes`` workers (spawn: safe beside threads and CUDA), or a no-op context for 1."""
    if processes == 1:
        return nullcontext(None)
    return ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))


def _embed_shard(
    name: str, path: str, row_of: dict[str, int], face: FaceConfig | None, batch_size: int
) -> tuple[np.ndarray, np.ndarray, pa.Table | None]:
    """One shard's photos listed in ``row_of`` → (their rows, (k, d) embeddings, face facts or None)."""
    embed = resolve_embedder(name, face)  # loaded once per process (cached)
    faces = getattr(embed, "faces", None)  # the face stack: one analysis gives both the embedding and the facts
    rows, vectors, facts, batch, batch_rows = [], [], [], [], []

    def flush() -> None:
        if faces is not None:
            analysis = faces.analyse(batch, batch_size=len(batch))
            vectors.append(analysis.embeddings)
            facts.append(face_facts(analysis))
        else:
            vectors.append(l2_normalise(embed(batch)))
        rows.extend(batch_rows)
        batch.clear()
        batch_rows.clear()

    for sample in read_samples(path):
        if sample["key"] in row_of:
            batch.append(sample["jpg"])
            batch_rows.append(row_of[sample["key"]])
            if len(batch) == batch_size:
                flush()
    if batch:
        flush()
    if len(rows) != len(row_of):
        raise ValueError(f"keys: {len(row_of) - len(rows)} of the {len(row_of)} photos of {path} are not in it")
    return np.asarray(rows, np.int64), np.concatenate(vectors), (pa.concat_tables(facts) if faces else None)
