"""The fast path: training from the feature cache, no towers at all (about 3 GB of fp16 for the paper's 810k
photos, so it is held in memory). Splits: ``train`` photos, ``heldout`` photos of train identities, and ``val``
photos of unseen identities."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from .laioncele import LaionCele, read_feature_cache, read_laioncele


class FeatureDataset(Dataset):
    """Photos of one split: (F,) float32 features and the row of their identity's name."""

    def __init__(self, features: torch.Tensor, name_rows: torch.Tensor) -> None:
        self.features, self.name_rows = features, name_rows

    def __len__(self) -> int:
        return self.features.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"features": self.features[index].float(), "name_row": self.name_rows[index]}


class CachedFeatureDataModule(L.LightningDataModule):
    """Batches of cached tower features with their identity's name row.

    Args:
        data_dir: a LaionCele directory with ``features/``.
        batch_size: photos per batch (per process).
        num_workers: DataLoader workers.
    """

    def __init__(self, data_dir: str, batch_size: int = 256, num_workers: int = 0) -> None:
        super().__init__()
        self.data_dir, self.batch_size, self.num_workers = data_dir, batch_size, num_workers
        self.data: LaionCele | None = None
        self.splits: dict[str, FeatureDataset] = {}

    def load(self, num_tokens: int, width: int, feature_dim: int) -> LaionCele:
        """Reads and checks the directory against the encoder (called by the module before training)."""
        if self.data is None:
            self.data = read_laioncele(self.data_dir, num_tokens, width)
            cache = read_feature_cache(self.data, feature_dim)
            for split in ("train", "heldout", "val"):
                rows = torch.tensor([i for i, s in enumerate(cache.splits) if s == split], dtype=torch.long)
                self.splits[split] = FeatureDataset(cache.features[rows], cache.name_rows[rows])
            if len(self.splits["train"]) == 0:
                raise ValueError(f"data_dir: {self.data_dir} has no training photos")
        return self.data

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if self.data is None:
            raise RuntimeError("CachedFeatureDataModule.load() runs first (the NameEncoderModule calls it in setup)")
        return DataLoader(
            self.splits[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            drop_last=False,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> list[DataLoader]:
        return [self._loader("heldout", shuffle=False), self._loader("val", shuffle=False)]
