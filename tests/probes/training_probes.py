"""Callbacks the training tests load into `magicnaming train fit` subprocesses (through PYTHONPATH)."""

import json
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


class CountCommunication(L.Callback):
    """Counts what DDP sends while training and writes ``folder/communication-rank{R}.json``: the steps, the bytes
    broadcast through ``torch.distributed._broadcast_coalesced`` (the path of DDP's buffer broadcast before every
    forward), and the gradient bytes all-reduced (through a counting copy of DDP's default communication hook)."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.counts = {"steps": 0, "broadcast_bytes": 0, "broadcast_calls": 0, "gradient_bytes": 0}

    def on_train_start(self, trainer, pl_module) -> None:
        import torch.distributed as dist
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

        self._broadcast = broadcast = dist._broadcast_coalesced

        def counting_broadcast(group, tensors, *args):
            self.counts["broadcast_bytes"] += sum(tensor.numel() * tensor.element_size() for tensor in tensors)
            self.counts["broadcast_calls"] += 1
            return broadcast(group, tensors, *args)

        def counting_allreduce(state, bucket):
            self.counts["gradient_bytes"] += bucket.buffer().numel() * bucket.buffer().element_size()
            return allreduce_hook(state, bucket)

        dist._broadcast_coalesced = counting_broadcast
        trainer.strategy.model.register_comm_hook(None, counting_allreduce)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.counts["steps"] += 1

    def on_train_end(self, trainer, pl_module) -> None:
        import torch.distributed as dist

        dist._broadcast_coalesced = self._broadcast
        path = self.folder / f"communication-rank{trainer.global_rank}.json"
        path.write_text(json.dumps(self.counts))
