"""Pixel and face embedders over the downloaded shards, streaming, row-aligned with the feature cache's keys.

Shards are embedded one at a time, ``batch_size`` photos decoded at once, in this process or in a pool of
``processes`` (each loads the embedder once and takes whole shards). Each shard is a chunk (``chunks.py``) committed
by the process that embedded it, so a killed clean stage resumes at the first shard not committed; the chunks are
then merged into ``embeddings-NAME.npy`` ((n, d) float32, written through a memory map and returned as one) and, for
the ``face`` embedder, ``facts-NAME.parquet``.

Memory: one batch of decoded photos and one shard's rows per process; the parent holds the keys' shard → key → row
map (a few strings per photo) and, for ``face``, the face facts of every photo as a table (a few numbers per photo:
faces found, sizes, a box; n · ~40 bytes). The (n, d) embeddings stay on disk.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
import tempfile
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from namespace.faces import FaceConfig
from namespace.progress import progress

from .chunks import ChunkStore
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
    folder: Path | None = None,
) -> tuple[np.ndarray, pa.Table | None]:
    """Runs the embedder ``name`` over every photo of ``keys``, shard by shard.

    Args:
        name: a pixel embedder, ``face``, ``judge:FOLDER`` or ``module:function`` (``clip`` is the feature cache).
        shards: the downloaded shards (paths); ``keys["shard"]`` names the one holding each photo.
        keys: the feature cache's keys (n rows).
        face: the face stack's settings (``face`` only).
        batch_size: photos decoded and embedded at once.
        processes: shards embedded in parallel (1: in this process).
        folder: where the chunks and the merged files go (the clean stage's partial folder: a rerun resumes
            there); None: a temporary folder, and the embeddings are returned in memory.

    Returns:
        (n, d) float32 normalised rows in the order of ``keys`` (NaN where no face is found; a read-only memory map
        of ``folder / embeddings-NAME.npy`` when ``folder`` is given), and for ``face`` the per-photo face facts
        (``face_rules.FACTS_SCHEMA``, n rows, same order) from the same analysis; else None.
    """
    if processes < 1:
        raise ValueError(f"processes: expected at least 1, got {processes}")
    if folder is None:
        with tempfile.TemporaryDirectory() as temporary:
            embeddings, facts = embed_shards(name, shards, keys, face, batch_size, processes, Path(temporary))
            return np.array(embeddings), facts
    folder = Path(folder)
    path_of = {Path(shard).name: str(shard) for shard in shards}
    rows_of: dict[str, dict[str, int]] = {}  # shard → its photos' key → row, in cache order
    for row, (key, shard) in enumerate(zip(keys["key"].to_pylist(), keys["shard"].to_pylist(), strict=True)):
        rows_of.setdefault(shard, {})[key] = row
    missing = [shard for shard in rows_of if shard not in path_of]
    if missing:
        raise FileNotFoundError(f"shards: the feature cache names shards not downloaded: {', '.join(missing[:5])}")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    result, facts_file = folder / f"embeddings-{slug}.npy", folder / f"facts-{slug}.parquet"
    settings = {"embedder": name, "face": asdict(face) if face and name == "face" else None,
                "batch_size": batch_size, "keys": _digest(keys)}  # fmt: skip
    store = ChunkStore.open(folder, settings, store=f"_chunks-{slug}")
    chunks = sorted(rows_of)
    if not store.finished:
        done = set(store.done())
        jobs = [(name, path_of[shard], rows_of[shard], face, batch_size, str(folder), f"_chunks-{slug}")
                for shard in chunks if _chunk_name(shard) not in done]  # fmt: skip
        with _pool(processes) as pool:
            run = pool.map if pool else map
            finished = run(_embed_shard, *zip(*jobs, strict=True)) if jobs else []
            for _ in progress(finished, total=len(jobs), desc=f"embed[{name}]", unit="shard"):
                pass
        _merge(store, [_chunk_name(shard) for shard in chunks], keys.num_rows, name == "face", result, facts_file)
        store.finish([_chunk_name(shard) for shard in chunks])
    embeddings = np.load(result, mmap_mode="r", allow_pickle=False)
    return embeddings, (pq.read_table(facts_file) if name == "face" else None)


def _chunk_name(shard: str) -> str:
    return shard.removesuffix(".tar")


def _digest(keys: pa.Table) -> str:
    """A fingerprint of the photos embedded (a resumed run's chunks must cover the same rows)."""
    digest = hashlib.sha256()
    for batch in keys.select(["key", "shard"]).to_batches(max_chunksize=65536):
        digest.update(json.dumps(batch.to_pydict()).encode())
    return digest.hexdigest()


def _merge(store: ChunkStore, chunks: list[str], rows: int, face: bool, result: Path, facts_file: Path) -> None:
    """The chunks into the (n, d) memory map ``result`` (one chunk in memory) and the facts table (all rows)."""
    width = next((np.load(store.path(c) / "vectors.npy", mmap_mode="r").shape[1] for c in chunks), 0)
    embeddings = np.lib.format.open_memmap(result, "w+", np.float32, (rows, width))
    facts, order = [], []
    for chunk in chunks:
        chunk_rows = np.load(store.path(chunk) / "rows.npy", allow_pickle=False)
        embeddings[chunk_rows] = np.load(store.path(chunk) / "vectors.npy", allow_pickle=False)
        if face:
            facts.append(pq.read_table(store.path(chunk) / "facts.parquet"))
            order.append(chunk_rows)
    embeddings.flush()
    del embeddings
    if face:
        table = pa.concat_tables(facts) if facts else FACTS_SCHEMA.empty_table()
        if facts:
            table = table.take(pa.array(np.argsort(np.concatenate(order)), pa.int64()))
        pq.write_table(table, facts_file)


def _pool(processes: int):
    """A spawn pool of ``processes`` workers (spawn: safe beside threads and CUDA), or a no-op context for 1."""
    if processes == 1:
        return nullcontext(None)
    return ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))


def _embed_shard(
    name: str, path: str, row_of: dict[str, int], face: FaceConfig | None, batch_size: int, folder: str, store: str
) -> str:
    """Embeds one shard's photos listed in ``row_of`` and commits its chunk: their rows, (k, d) embeddings and, for
    the face stack, their face facts. Returns the shard's path."""
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
    with ChunkStore(folder, store).commit(_chunk_name(Path(path).name)) as chunk:
        np.save(chunk / "rows.npy", np.asarray(rows, np.int64), allow_pickle=False)
        np.save(chunk / "vectors.npy", np.concatenate(vectors).astype(np.float32, copy=False), allow_pickle=False)
        if faces is not None:
            pq.write_table(pa.concat_tables(facts), chunk / "facts.parquet")
    return path
