"""The fast path: training from the feature cache, no towers at all. Splits: ``train`` photos, ``heldout`` photos
of train identities, and ``val`` photos of unseen identities.

Memory: the cache (about 3.3 GB of fp16 for the paper's 810k photos) is memory-mapped, never copied: each split
holds only its photos' row numbers (8 bytes per photo) and a batch's rows are gathered from the tower files when
the batch is made. The DDP ranks of a node (and their DataLoader workers) read the same files, so they share one
copy in the OS page cache; a rank's private memory holds one batch of features, the keys table and the row
numbers, whatever the size of the cache.

Under DDP every rank reads its own share of each epoch (a seeded shuffle dealt round-robin to ranks and workers,
see ``epoch_plan``), so every photo is seen exactly once per epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from .epoch_plan import EpochPlan, deal_items, plan_epoch
from .laioncele import FeatureCache, LaionCele, read_feature_cache, read_laioncele
from .resumable import PlannedLoader, ResumableDataModule
from .slot_stream import Sample, SlotLayout, SlotStream, collate


class CachedFeatureStream(SlotStream):
    """One split of the cache: (F,) float32 features, the identity's name row and the photo's key per sample.

    Args:
        cache: the memory-mapped feature cache.
        rows: (n_split,) int64, the cache rows of this split's photos.
        shuffle: shuffle each epoch (training) or read in order (validation).
        layout: the process grid and batch size.
    """

    def __init__(self, cache: FeatureCache, rows: np.ndarray, shuffle: bool, layout: SlotLayout) -> None:
        super().__init__(layout)
        self.cache, self.rows, self.shuffle = cache, rows, shuffle

    def _deal(self, epoch: int) -> list[list[int]]:
        return deal_items(len(self.rows), self.ranks * self.workers, self.seed, epoch, self.shuffle)

    def plan(self, epoch: int) -> EpochPlan:
        """Round-robin sizes do not depend on the shuffle: no need to deal the photos to know them."""
        slots = self.ranks * self.workers
        sizes = [len(range(slot, len(self.rows), slots)) for slot in range(slots)]
        return plan_epoch(sizes, self.ranks, self.workers, self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Gathers whole batches from the memory-mapped towers, in the order the epoch plan deals the photos (no
        per-sample work: the cache holds no corrupt photos)."""
        slot, skip = self.slot_and_skip()
        rows = self.rows[np.asarray(self._deal(self.epoch)[slot], dtype=np.int64)]  # this slot's cache rows
        for index in range(skip, self.plan(self.epoch).batches[slot]):
            chunk = rows[index * self.batch_size : (index + 1) * self.batch_size]
            if not len(chunk):  # padding: this rank has fewer photos than the busiest one
                yield collate([self.padding_sample()], weight=0.0)
                continue
            yield {
                "features": self.cache.gather(chunk),
                "name_row": torch.from_numpy(self.cache.name_rows[chunk]),
                "key": self.cache.keys["key"].take(chunk).to_pylist(),
                "weight": torch.ones(len(chunk)),
                "skipped": torch.tensor(0),
            }

    def padding_sample(self) -> Sample:
        return {"features": torch.zeros(self.cache.feature_dim), "name_row": 0, "key": ""}


class CachedFeatureDataModule(ResumableDataModule):
    """Batches of cached tower features with their identity's name row.

    Args:
        data_dir: a LaionCele directory with ``features/``.
        batch_size: photos per batch (per process).
        num_workers: DataLoader workers (0: batches are gathered in the main process, usually fastest).
        seed: the epoch shuffles derive from it.
    """

    provides = "features"

    def __init__(self, data_dir: str, batch_size: int = 256, num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        if num_workers < 0:
            raise ValueError(f"num_workers: expected 0 or more, got {num_workers}")
        self.data_dir, self.batch_size, self.num_workers, self.seed = data_dir, batch_size, num_workers, seed
        self.data: LaionCele | None = None
        self.cache: FeatureCache | None = None
        self.splits: dict[str, np.ndarray] = {}  # split → (n_split,) int64 cache rows

    def load(self, num_tokens: int, width: int, feature_dim: int, reference_crop: str = "none") -> LaionCele:
        """Reads and checks the directory against the encoder (called by the module before training): (N, D), the
        features' width and the face crop they were made with. Maps the cache; reads none of its features."""
        if self.data is None:
            data = read_laioncele(self.data_dir, num_tokens, width)
            cache = read_feature_cache(data, feature_dim, reference_crop)
            splits = {split: cache.rows(split) for split in ("train", "heldout", "val")}
            if not len(splits["train"]):
                raise ValueError(f"data_dir: {self.data_dir} has no training photos")
            self.data, self.cache, self.splits = data, cache, splits
        return self.data

    def _loader(self, split: str, train: bool) -> PlannedLoader:
        if self.cache is None:
            raise RuntimeError("CachedFeatureDataModule.load() runs first (the NameEncoderModule calls it in setup)")
        layout = self.slot_layout(self.batch_size, self.num_workers, self.seed)
        stream = CachedFeatureStream(self.cache, self.splits[split], shuffle=train, layout=layout)
        return self.planned_loader(stream, self.num_workers, self.seed, train)

    def train_dataloader(self) -> PlannedLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> list[PlannedLoader]:
        return [self._loader("heldout", train=False), self._loader("val", train=False)]
