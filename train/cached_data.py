"""The fast path: training from the feature cache, no towers at all (about 3 GB of fp16 for the paper's 810k
photos, so it is held in memory). Splits: ``train`` photos, ``heldout`` photos of train identities, and ``val``
photos of unseen identities.

Under DDP every rank keeps the whole cache and reads its own share of each epoch (a seeded shuffle dealt
round-robin to ranks and workers, see ``epoch_plan``), so every photo is seen exactly once per epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from .epoch_plan import EpochPlan, deal_items, plan_epoch
from .laioncele import LaionCele, read_feature_cache, read_laioncele
from .resumable import PlannedLoader, ResumableDataModule
from .slot_stream import Sample, SlotLayout, SlotStream, collate


class CachedFeatureStream(SlotStream):
    """One split of the cache: (F,) float32 features, the identity's name row and the photo's key per sample."""

    def __init__(
        self,
        features: torch.Tensor,
        name_rows: torch.Tensor,
        keys: list[str],
        shuffle: bool,
        layout: SlotLayout,
    ) -> None:
        super().__init__(layout)
        self.features, self.name_rows, self.keys, self.shuffle = features, name_rows, keys, shuffle

    def _deal(self, epoch: int) -> list[list[int]]:
        return deal_items(len(self.keys), self.ranks * self.workers, self.seed, epoch, self.shuffle)

    def plan(self, epoch: int) -> EpochPlan:
        """Round-robin sizes do not depend on the shuffle: no need to deal the photos to know them."""
        slots = self.ranks * self.workers
        sizes = [len(range(slot, len(self.keys), slots)) for slot in range(slots)]
        return plan_epoch(sizes, self.ranks, self.workers, self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Slices whole batches out of the cache (no per-sample work: the cache holds no corrupt photos)."""
        slot, skip = self.slot_and_skip()
        rows = torch.tensor(self._deal(self.epoch)[slot], dtype=torch.long)
        chunks = rows.split(self.batch_size)
        for index in range(skip, self.plan(self.epoch).batches[slot]):
            if index >= len(chunks):  # padding: this rank has fewer photos than the busiest one
                yield collate([self.padding_sample()], weight=0.0)
                continue
            chunk = chunks[index]
            yield {
                "features": self.features[chunk].float(),
                "name_row": self.name_rows[chunk],
                "key": [self.keys[row] for row in chunk.tolist()],
                "weight": torch.ones(len(chunk)),
                "skipped": torch.tensor(0),
            }

    def padding_sample(self) -> Sample:
        return {"features": torch.zeros(self.features.shape[1]), "name_row": 0, "key": ""}


class CachedFeatureDataModule(ResumableDataModule):
    """Batches of cached tower features with their identity's name row.

    Args:
        data_dir: a LaionCele directory with ``features/``.
        batch_size: photos per batch (per process).
        num_workers: DataLoader workers (0: batches are sliced in the main process, usually fastest).
        seed: the epoch shuffles derive from it.
    """

    provides = "features"

    def __init__(self, data_dir: str, batch_size: int = 256, num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        if num_workers < 0:
            raise ValueError(f"num_workers: expected 0 or more, got {num_workers}")
        self.data_dir, self.batch_size, self.num_workers, self.seed = data_dir, batch_size, num_workers, seed
        self.data: LaionCele | None = None
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor, list[str]]] = {}

    def load(self, num_tokens: int, width: int, feature_dim: int, reference_crop: str = "none") -> LaionCele:
        """Reads and checks the directory against the encoder (called by the module before training): (N, D), the
        features' width and the face crop they were made with."""
        if self.data is None:
            data = read_laioncele(self.data_dir, num_tokens, width)
            cache = read_feature_cache(data, feature_dim, reference_crop)
            self.data = data
            for split in ("train", "heldout", "val"):
                rows = [i for i, s in enumerate(cache.splits) if s == split]
                index = torch.tensor(rows, dtype=torch.long)
                self.splits[split] = (cache.features[index], cache.name_rows[index], [cache.keys[i] for i in rows])
            if not self.splits["train"][2]:
                raise ValueError(f"data_dir: {self.data_dir} has no training photos")
        return self.data

    def _loader(self, split: str, train: bool) -> PlannedLoader:
        if self.data is None:
            raise RuntimeError("CachedFeatureDataModule.load() runs first (the NameEncoderModule calls it in setup)")
        features, name_rows, keys = self.splits[split]
        layout = self.slot_layout(self.batch_size, self.num_workers, self.seed)
        stream = CachedFeatureStream(features, name_rows, keys, shuffle=train, layout=layout)
        return self.planned_loader(stream, self.num_workers, self.seed, train)

    def train_dataloader(self) -> PlannedLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> list[PlannedLoader]:
        return [self._loader("heldout", train=False), self._loader("val", train=False)]
