"""Callbacks the training tests load into `magicnaming train fit` subprocesses (through PYTHONPATH)."""

import os
import signal
from pathlib import Path

import lightning as L


class RecordKeys(L.Callback):
    """Appends the keys of every trained photo (padding excluded) to ``folder/keys-rank{R}-epoch{E}.txt``."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        keys = [key for key, weight in zip(batch["key"], batch["weight"].tolist(), strict=True) if weight > 0]
        path = self.folder / f"keys-rank{trainer.global_rank}-epoch{trainer.current_epoch}.txt"
        with path.open("a") as file:
            file.writelines(f"{key}\n" for key in keys)


class KillAtStep(L.Callback):
    """SIGKILLs the process when step ``step`` is about to start (the checkpoint of the step before is written)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
