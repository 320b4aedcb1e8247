"""Pairs of rows whose cosine is at or above a threshold, with a faiss index whose cost suits the number of rows.

- Below ``exact_below`` rows: an exact range search over a flat index (``IndexFlatIP``): every pair compared, n² · d;
  cheap up to some tens of thousands of rows.
- From ``exact_below`` rows on, each row's ``neighbours`` nearest rows are searched for and those at or above the
  threshold kept, in one of two approximate indexes:
  - ``ivf`` (the default): ``IndexIVFFlat`` with nlist = 4 · √n lists (k-means on a seeded sample of 40 · nlist rows),
    each row searched in its ``probes`` nearest lists: n · (nlist + probes · n / nlist) · d, i.e. √n · d per row.
    A near copy lies in the same list as its original or a neighbouring one, so the probes find it; deterministic.
  - ``hnsw``: ``IndexHNSWFlat`` (inner product), built in n · log n · links · d and searched in
    n · ef_search · log n · d. Asymptotically cheaper, but on 128-d data without structure it was slower than IVF
    here and missed a few near copies at these settings (the README's figures).

Both agree with the exact search whenever every row has fewer than ``neighbours`` rows above the threshold (near
copies of one photo come in handfuls; a larger group still joins up through its members' overlapping neighbour
lists) and the index finds them: the similarities themselves are exact inner products either way.

Memory, growing linearly with the rows: the index, n · d float32 (flat, IVF), plus n · links · 2 int32 (HNSW's
bottom layer; ~1/links of that again above it); IVF's training sample, 40 · nlist · d float32 (~0.18 n · d at
810,000 rows); rows are converted to float32, added and searched in batches of about ``BATCH_BYTES``, so a float16
or float32 memory map is never copied whole beside the index. The result holds the pairs found (a few per
duplicated photo).
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

BATCH_BYTES = 64 << 20  # float32 rows converted, added or searched at a time


@dataclass(frozen=True)
class SearchSettings:
    """How pairs are found.

    Attributes:
        exact_below: fewer rows than this are compared exactly (flat index); 0 always takes ``approximate``.
        approximate: the index from ``exact_below`` rows on: ``ivf`` or ``hnsw``.
        neighbours: nearest rows each row is searched for in the approximate index (k).
        probes: IVF lists searched per row (nprobe): more probes, fewer near copies missed at list borders.
        links: HNSW links per row (M): more links, better recall, more memory and a slower build.
        ef_search: HNSW candidates kept while searching (at least ``neighbours``).
        ef_construction: HNSW candidates kept while building.
        seed: seeds IVF's training sample.
    """

    exact_below: int = 20000
    approximate: str = "ivf"
    neighbours: int = 32
    probes: int = 8
    links: int = 32
    ef_search: int = 64
    ef_construction: int = 40
    seed: int = 0

    def exact(self, rows: int) -> bool:
        return rows < self.exact_below

    def describe(self, rows: int) -> dict:
        """The search that runs for ``rows`` rows and its settings (a stage summary's entry)."""
        if self.exact(rows):
            return {"index": "IndexFlatIP", "exact": True, "rows": rows, "exact_below": self.exact_below}
        if self.approximate == "ivf":
            return {
                "index": "IndexIVFFlat",
                "exact": False,
                "rows": rows,
                "exact_below": self.exact_below,
                "neighbours": self.neighbours,
                "lists": _lists(rows),
                "probes": self.probes,
                "seed": self.seed,
            }
        return {"index": "IndexHNSWFlat", "exact": False, "rows": rows, "exact_below": self.exact_below,
                "neighbours": self.neighbours, "links": self.links, "ef_search": self.ef_search,
                "ef_construction": self.ef_construction}  # fmt: skip


def similar_pairs(
    embeddings: np.ndarray, threshold: float, settings: SearchSettings, batch_rows: int | None = None
) -> np.ndarray:
    """(p, 2) int64 row pairs ``i < j`` with cosine ≥ ``threshold``, each pair once.

    Args:
        embeddings: (n, d) normalised rows, float16 or float32, in memory or memory-mapped.
        threshold: smallest cosine of a pair.
        settings: which index (by n) and its settings.
        batch_rows: rows converted to float32 at a time (None: about ``BATCH_BYTES``).
    """
    n, d = embeddings.shape
    if n == 0:
        return np.zeros((0, 2), np.int64)
    batch_rows = batch_rows or max(1, BATCH_BYTES // (4 * d))
    index = _index(embeddings, settings)
    for start in range(0, n, batch_rows):
        index.add(_float32(embeddings, start, start + batch_rows))
    found = []
    for start in range(0, n, batch_rows):
        queries = _float32(embeddings, start, start + batch_rows)
        if settings.exact(n):
            limits, _, neighbours = index.range_search(queries, threshold)
            rows = np.repeat(np.arange(start, start + len(queries)), np.diff(limits).astype(np.int64))
        else:
            similarities, neighbours = index.search(queries, min(settings.neighbours, n))
            above = (similarities >= threshold) & (neighbours >= 0)  # -1: a slot the graph left unfilled
            rows = np.broadcast_to(np.arange(start, start + len(queries))[:, None], above.shape)[above]
            neighbours = neighbours[above]
        pairs = np.stack([np.minimum(rows, neighbours), np.maximum(rows, neighbours)], axis=1)
        found.append(pairs[pairs[:, 0] != pairs[:, 1]])  # a row always finds itself
    return np.unique(np.concatenate(found), axis=0)


def _lists(rows: int) -> int:
    """IVF lists for ``rows`` rows: 4 · √n (faiss's guide: 4 to 16 · √n), at least 1 and at most n."""
    return max(1, min(rows, round(4 * rows**0.5)))


def _index(embeddings: np.ndarray, settings: SearchSettings) -> faiss.Index:
    """An empty index for ``embeddings`` (IVF trained on a sample of them)."""
    n, d = embeddings.shape
    if settings.exact(n):
        return faiss.IndexFlatIP(d)
    if settings.approximate == "hnsw":
        index = faiss.IndexHNSWFlat(d, settings.links, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction, index.hnsw.efSearch = settings.ef_construction, settings.ef_search
        return index
    lists = _lists(n)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, lists, faiss.METRIC_INNER_PRODUCT)
    index.nprobe = settings.probes
    index.cp.min_points_per_centroid = 1  # below 40 rows a list the sample is every row: there are no more to give
    sample = np.sort(np.random.default_rng(settings.seed).choice(n, min(n, 40 * lists), replace=False))
    index.train(np.ascontiguousarray(embeddings[sample], dtype=np.float32))  # (40 · lists, d)
    return index


def _float32(embeddings: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` as a C-contiguous float32 array (the only float32 copy of them outside the index)."""
    return np.ascontiguousarray(embeddings[start:stop], dtype=np.float32)
