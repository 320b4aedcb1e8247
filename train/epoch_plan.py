"""How one epoch's samples are dealt to DDP ranks and DataLoader workers.

Every sample is read exactly once per epoch across all ranks, and every rank yields the same number of batches:
a rank that runs out of batches first would leave the others waiting in DDP's gradient all-reduce forever. Ranks
with fewer batches get padding batches (weight 0, no effect on the loss) at the end of the epoch.

A *slot* is one DataLoader worker of one rank: slot ``rank · workers + worker``. Everything here is a pure function
of (counts, ranks, workers, batch size, seed, epoch), so every process computes the same plan without talking to
the others, and a resumed run recomputes the plan of the epoch it stopped in.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass


def epoch_random(seed: int, epoch: int, *salt: int | str) -> random.Random:
    """A random generator that depends only on its arguments (not on the process or Python's hash seed)."""
    return random.Random(" ".join(str(part) for part in (seed, epoch, *salt)))


def deal_items(count: int, slots: int, seed: int, epoch: int, shuffle: bool) -> list[list[int]]:
    """Deals ``count`` items to ``slots`` slots round-robin after a seeded shuffle (sizes differ by at most one)."""
    order = list(range(count))
    if shuffle:
        epoch_random(seed, epoch, "items").shuffle(order)
    return [order[slot::slots] for slot in range(slots)]


def deal_shards(counts: Sequence[int], slots: int, seed: int, epoch: int, shuffle: bool) -> list[list[int]]:
    """Deals whole shards to slots, balancing their sample counts: largest shard first onto the emptiest slot
    (ties in a seeded order). Returns each slot's shard indices in reading order."""
    order = list(range(len(counts)))
    random_order = epoch_random(seed, epoch, "shards")
    if shuffle:
        random_order.shuffle(order)
    order.sort(key=lambda shard: -counts[shard])  # stable: equal shards keep the seeded order
    loads = [(0, slot) for slot in range(slots)]
    dealt: list[list[int]] = [[] for _ in range(slots)]
    for shard in order:
        load, slot = heapq.heappop(loads)
        dealt[slot].append(shard)
        heapq.heappush(loads, (load + counts[shard], slot))
    if shuffle:
        for shards in dealt:
            random_order.shuffle(shards)
    return dealt


@dataclass(frozen=True)
class EpochPlan:
    """Batches each slot yields in one epoch.

    Attributes:
        ranks, workers: the process grid (``workers`` is at least 1: the main process counts as one).
        samples: samples per slot.
        batches: batches per slot, padding included; every rank's slots add up to ``batches_per_rank``.
    """

    ranks: int
    workers: int
    samples: tuple[int, ...]
    batches: tuple[int, ...]

    @property
    def batches_per_rank(self) -> int:
        return sum(self.batches[: self.workers])

    def rank_batches(self, rank: int) -> list[int]:
        return list(self.batches[rank * self.workers : (rank + 1) * self.workers])


def plan_epoch(samples: Sequence[int], ranks: int, workers: int, batch_size: int) -> EpochPlan:
    """Batches per slot such that every rank yields the same number; a rank's missing batches go to its slot with
    the fewest (they are padding)."""
    workers = max(1, workers)
    if len(samples) != ranks * workers:
        raise ValueError(
            f"samples: expected one count per slot ({ranks} ranks × {workers} workers), got {len(samples)}"
        )
    batches = [math.ceil(count / batch_size) for count in samples]
    per_rank = [sum(batches[rank * workers : (rank + 1) * workers]) for rank in range(ranks)]
    target = max(per_rank)
    for rank in range(ranks):
        for _ in range(target - per_rank[rank]):
            slots = range(rank * workers, (rank + 1) * workers)
            batches[min(slots, key=lambda slot: (batches[slot], slot))] += 1
    return EpochPlan(ranks, workers, tuple(samples), tuple(batches))


def consumed_per_worker(batches: Sequence[int], consumed: int) -> tuple[list[int], int]:
    """How many batches each worker of a rank had delivered after the rank's first ``consumed`` batches, and the
    worker whose turn is next.

    A DataLoader delivers its workers' batches round-robin, in order, skipping workers that are done; so the first
    ``consumed`` batches are the first rounds of that cycle. A resumed DataLoader starts its cycle at worker 0 again:
    rotating the workers by the returned index makes it deliver the rest in the uninterrupted order.
    """
    if consumed > sum(batches):
        raise ValueError(f"consumed: {consumed} batches, but the workers yield {sum(batches)} in all")
    taken, next_worker, round_index = [0] * len(batches), 0, 0
    while consumed:
        for worker, total in enumerate(batches):
            if consumed and total > round_index:
                taken[worker] += 1
                consumed -= 1
                next_worker = (worker + 1) % len(batches)
        round_index += 1
    return taken, next_worker
