"""An IterableDataset that yields whole batches for its (rank, worker) slot of an ``EpochPlan``.

Batches are dicts: the sample tensors stacked (``features`` (B, F) or ``images`` (B, 3, S, S) uint8), ``name_row``
(B,), ``weight`` (B,) (1 for samples, 0 for padding), ``key`` (B strings, "" for padding) and ``skipped`` (the
corrupt or missing samples this slot passed over since its previous batch).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from .epoch_plan import EpochPlan

Sample = dict[str, Any]


def collate(samples: list[Sample], weight: float = 1.0, skipped: int = 0) -> dict[str, Any]:
    """Stacks samples into a batch (tensors stacked, ints as a tensor, strings as a list)."""
    batch: dict[str, Any] = {}
    for name in samples[0]:
        values = [sample[name] for sample in samples]
        if isinstance(values[0], torch.Tensor):
            batch[name] = torch.stack(values)
        elif isinstance(values[0], str):
            batch[name] = values
        else:
            batch[name] = torch.tensor(values)
    batch["weight"] = torch.full((len(samples),), weight)
    batch["skipped"] = torch.tensor(skipped)
    return batch


def batches_of(
    samples: Iterator[Sample | None], batch_size: int, planned: int, expected: int, skip: int, padding: Sample
) -> Iterator[dict[str, Any]]:
    """Groups a slot's samples into exactly ``planned`` batches, the last ones padding where samples run out.

    Args:
        samples: the slot's samples in order; ``None`` marks a corrupt sample (skipped and counted).
        batch_size: samples per batch (the last real batch may be smaller).
        planned: batches to yield, padding included (from the epoch plan).
        expected: samples the slot should read; those that never come (a truncated shard) are counted as skipped.
        skip: batches already consumed before a resume: made but not yielded.
        padding: one sample standing in for missing ones (weight 0).
    """
    made, read, skipped, pending = 0, 0, 0, []

    def finish(batch_samples: list[Sample], weight: float) -> dict[str, Any] | None:
        nonlocal made, skipped
        made += 1
        batch = collate(batch_samples, weight, skipped) if made > skip else None
        skipped = 0
        return batch

    for sample in samples:
        read += 1
        if sample is None:
            skipped += 1
            continue
        pending.append(sample)
        if len(pending) == batch_size:
            if made == planned:
                raise RuntimeError(
                    f"a data slot read more than the {expected} samples its shards were counted to hold: "
                    "the shards changed after the dataset was read; restart the run"
                )
            batch, pending = finish(pending, 1.0), []
            if batch is not None:
                yield batch
    skipped += max(0, expected - read)
    while made < planned:
        batch = finish(pending, 1.0) if pending else finish([padding], 0.0)
        pending = []
        if batch is not None:
            yield batch


@dataclass(frozen=True)
class SlotLayout:
    """What every stream of a run shares: photos per batch, the seed of every shuffle, this process's rank among
    ``ranks``, and the DataLoader workers per rank (0: the main process reads, which counts as one slot)."""

    batch_size: int
    seed: int
    rank: int
    ranks: int
    workers: int


class SlotStream(IterableDataset):
    """Base class: subclasses say how an epoch is planned and what a slot reads (``slot_samples``, batched here),
    or override ``__iter__`` to make whole batches themselves.

    The loader sets ``epoch``, ``skip`` (batches each worker had delivered, on resume) and ``rotation`` (worker
    ``w`` of this pass reads the slot of worker ``w + rotation``, so a resumed pass delivers in the original order)
    before every pass.
    """

    def __init__(self, layout: SlotLayout) -> None:
        if layout.batch_size < 1:
            raise ValueError(f"batch_size: expected a positive number of samples, got {layout.batch_size}")
        self.batch_size, self.seed, self.rank, self.ranks = layout.batch_size, layout.seed, layout.rank, layout.ranks
        self.workers = max(1, layout.workers)
        self.epoch, self.skip, self.rotation = 0, [0] * self.workers, 0

    def plan(self, epoch: int) -> EpochPlan:
        raise NotImplementedError

    def slot_samples(self, slot: int, epoch: int) -> Iterator[Sample | None]:
        raise NotImplementedError

    def padding_sample(self) -> Sample:
        raise NotImplementedError

    def __len__(self) -> int:
        """Batches this rank yields per epoch (the same on every rank)."""
        return self.plan(self.epoch).batches_per_rank

    def slot_and_skip(self) -> tuple[int, int]:
        """This DataLoader worker's slot of the epoch plan and how many of its batches to skip."""
        info = get_worker_info()
        worker = info.id if info is not None else 0
        if info is not None and info.num_workers != self.workers:
            raise RuntimeError(
                f"the stream was planned for {self.workers} workers, the DataLoader has {info.num_workers}"
            )
        original = (worker + self.rotation) % self.workers
        return self.rank * self.workers + original, self.skip[original]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        slot, skip = self.slot_and_skip()
        plan = self.plan(self.epoch)
        samples = self.slot_samples(slot, self.epoch)
        yield from batches_of(
            samples, self.batch_size, plan.batches[slot], plan.samples[slot], skip, self.padding_sample()
        )
