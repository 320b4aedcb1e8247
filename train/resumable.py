"""DataLoaders over a ``SlotStream`` that follow the trainer's epoch and resume mid-epoch exactly.

The DataModule's ``state_dict`` (saved in every checkpoint) records the epoch and how many batches of it were
trained; after a restart the loader recomputes that epoch's plan and each worker skips the batches it had already
delivered, so training continues with the very batches an uninterrupted run would have seen next.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader

from .epoch_plan import consumed_per_worker
from .slot_stream import SlotLayout, SlotStream

# Lightning warns that an IterableDataset's __len__ may be wrong with several workers: here each worker reads its
# own slot of the epoch plan and the length is the plan's batches per rank, exact by construction.
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")


class PlannedLoader(DataLoader):
    """A DataLoader of ready-made batches (``batch_size=None``) from a ``SlotStream``.

    Args:
        stream: the dataset; planned for ``num_workers`` workers.
        epoch: returns the epoch a new pass belongs to.
        resume: returns (epoch, batches of it already trained) once after a restore, else None. Lightning starts
            the first pass before it restores its loop counters, so the epoch comes from the checkpoint then.
    """

    def __init__(
        self,
        stream: SlotStream,
        num_workers: int,
        seed: int,
        epoch: Callable[[], int],
        resume: Callable[[], tuple[int, int] | None],
    ) -> None:
        # its own generator, so that starting a pass does not draw from the global RNG a resumed run restores
        generator = torch.Generator().manual_seed(seed)
        super().__init__(stream, batch_size=None, num_workers=num_workers, generator=generator)
        self.epoch, self.resume = epoch, resume

    def __iter__(self):
        stream: SlotStream = self.dataset
        stream.epoch, consumed = self.resume() or (self.epoch(), 0)
        if consumed >= stream.plan(stream.epoch).batches_per_rank:  # saved at the end of an epoch
            stream.epoch, consumed = stream.epoch + 1, 0
        stream.skip, stream.rotation = consumed_per_worker(
            stream.plan(stream.epoch).rank_batches(stream.rank), consumed
        )
        return super().__iter__()


class ResumableDataModule(L.LightningDataModule):
    """Base class: the train loader's position is part of every checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        self._resume_at: tuple[int, int] | None = None  # (epoch, batches trained), from a checkpoint

    def process_grid(self) -> tuple[int, int]:
        """(rank, number of ranks) of this process."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def slot_layout(self, batch_size: int, num_workers: int, seed: int) -> SlotLayout:
        """The layout of this process's streams."""
        rank, ranks = self.process_grid()
        return SlotLayout(batch_size, seed, rank, ranks, num_workers)

    def _current_epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def _take_resume(self) -> tuple[int, int] | None:
        resume, self._resume_at = self._resume_at, None
        return resume

    def planned_loader(self, stream: SlotStream, num_workers: int, seed: int, train: bool) -> PlannedLoader:
        if train:
            return PlannedLoader(stream, num_workers, seed, self._current_epoch, self._take_resume)
        return PlannedLoader(stream, num_workers, seed, lambda: 0, lambda: None)

    def state_dict(self) -> dict[str, int]:
        trainer = self.trainer
        if trainer is None or trainer.state.fn != TrainerFn.FITTING:
            return {}
        trained = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"epoch": trainer.current_epoch, "batches": trained}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state:
            self._resume_at = (state["epoch"], state["batches"])
