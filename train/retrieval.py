"""Top-k retrieval of the right name among all identities' names during validation, the index sharded over the
DDP ranks: rank r of W indexes the names of rows r, r + W, r + 2W, ...; every rank searches every rank's
predictions in its shard and the per-shard top-k are merged. The result equals one exact index of all names.

Memory per rank: the shard, ⌈M / W⌉ × N·D float32 (1/W of the index; the paper's 42k names of (8, 2048) make
2.75 GB in one index), built once per fit (the names do not change during training); per search, every rank's
queries of the step (W·B × N·D float32) and their per-shard top-k (W × W·B × k).
"""

from __future__ import annotations

import faiss
import numpy as np
import torch
import torch.distributed as dist
from torch import nn


def gather_uneven(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's (B_r, ...) ``tensor`` in rank order, where B_r may differ between ranks (padded to the longest
    for the collective, then trimmed). Every rank must call it the same number of times."""
    size = torch.tensor([tensor.shape[0]], dtype=torch.int64, device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    counts = [int(s) for s in sizes]
    padded = tensor.new_zeros((max(counts), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded.contiguous())
    return [part[:count] for part, count in zip(parts, counts, strict=True)]


def merge_top_k(scores: torch.Tensor, rows: torch.Tensor, k: int) -> torch.Tensor:
    """Merges per-shard results into the top ``k`` overall.

    Args:
        scores: (S, T, k_s) inner products of T queries with each shard's best candidates (-inf where a shard had
            fewer than k_s names).
        rows: (S, T, k_s) the candidates' name rows (-1 where missing).
        k: candidates kept.

    Returns:
        (T, k) name rows, best first; equal scores go to the lower row.
    """
    scores = scores.permute(1, 0, 2).flatten(1)  # (T, S·k_s)
    rows = rows.permute(1, 0, 2).flatten(1)
    by_row = torch.argsort(rows, dim=1, stable=True)
    scores, rows = scores.gather(1, by_row), rows.gather(1, by_row)
    best = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :k]
    return rows.gather(1, best)


class ShardedNameIndex:
    """An exact inner-product index of the normalised names, this rank's shard of it.

    Args:
        names: (M, N, D) targets, any dtype (the shard is converted to float32 row by row of the shard only).
        rank: this process's rank r.
        world: the number of ranks W.
    """

    def __init__(self, names: torch.Tensor, rank: int = 0, world: int = 1) -> None:
        self.count, self.rank, self.world = names.shape[0], rank, world
        self.rows = torch.arange(rank, self.count, world)  # (⌈M / W⌉,) the global rows of this shard
        shard = nn.functional.normalize(names[self.rows.to(names.device)].flatten(1).float(), dim=1)
        self.index = faiss.IndexFlatIP(shard.shape[1])
        self.index.add(shard.cpu().numpy())

    def _search_shard(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(T, N·D) normalised queries → (T, k) scores and global rows in this shard (-inf, -1 past its size)."""
        scores = torch.full((len(queries), k), -torch.inf)
        rows = torch.full((len(queries), k), -1, dtype=torch.int64)
        available = min(k, self.index.ntotal)
        if available and len(queries):
            found_scores, found = self.index.search(queries.detach().cpu().float().numpy(), available)
            scores[:, :available] = torch.from_numpy(found_scores)
            found = torch.from_numpy(found.astype(np.int64))
            rows[:, :available] = torch.where(found >= 0, self.rows[found.clamp(min=0)], -1)
        return scores, rows

    def search(self, queries: torch.Tensor, k: int) -> torch.Tensor:
        """(B, N·D) predictions (normalised here) → (B, k) name rows, best first, searched among all M names.

        Under DDP (W > 1) this is a collective: every rank calls it once per validation step, with its own batch
        (B may be 0 on a rank whose batch is padding).
        """
        k = min(k, self.count)
        queries = nn.functional.normalize(queries.float(), dim=1)
        if self.world == 1:  # merged too: equal scores go to the lower row, whatever the number of ranks
            scores, rows = self._search_shard(queries, k)
            return merge_top_k(scores[None], rows[None], k)
        parts = gather_uneven(queries)  # every rank's queries, (B_r, N·D) each
        scores, rows = self._search_shard(torch.cat(parts), k)  # (T, k), T = Σ B_r
        device = queries.device
        all_scores = [torch.empty_like(scores, device=device) for _ in range(self.world)]
        all_rows = [torch.empty_like(rows, device=device) for _ in range(self.world)]
        dist.all_gather(all_scores, scores.to(device))
        dist.all_gather(all_rows, rows.to(device))
        merged = merge_top_k(torch.stack(all_scores).cpu(), torch.stack(all_rows).cpu(), k)  # (T, k)
        start = sum(len(part) for part in parts[: self.rank])
        return merged[start : start + len(queries)]
