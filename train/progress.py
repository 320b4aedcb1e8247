"""Training progress for logs that are not terminals: one line per epoch instead of a redrawn bar.

A TQDM or Rich bar redraws itself every few steps; written into a file (SLURM, ``nohup``, CI) every redraw is a line,
hundreds per run. ``magicnaming train`` uses :class:`EpochLines` instead when stdout is not a terminal and the config
asks for a progress bar without naming one.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar


class EpochLines(ProgressBar):
    """Prints one line per training epoch (its progress-bar metrics, plus the validation metrics when it validated),
    and, within an epoch longer than ``every_seconds``, a line at most that often.

    Args:
        every_seconds: the least time between two lines within an epoch.
    """

    def __init__(self, every_seconds: float = 300.0) -> None:
        super().__init__()
        self.every_seconds = every_seconds
        self._enabled = True
        self._epoch_started = self._last_line = 0.0
        self._validated = False

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_started = self._last_line = time.perf_counter()
        self._validated = False

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if time.perf_counter() - self._last_line >= self.every_seconds:
            total = self.total_train_batches
            steps = f"{batch_idx + 1}/{total}" if isinstance(total, int) else str(batch_idx + 1)
            self._print(trainer, f"batch {steps}", self.get_metrics(trainer, pl_module))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validated = not trainer.sanity_checking

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics: dict[str, Any] = dict(self.get_metrics(trainer, pl_module))
        if self._validated:  # Lightning validates before this hook: this epoch's validation metrics are in
            metrics |= {key: value for key, value in trainer.callback_metrics.items() if key.startswith("val")}
        self._print(trainer, f"done in {time.perf_counter() - self._epoch_started:.3g} s", metrics)

    def _print(self, trainer: L.Trainer, what: str, metrics: dict[str, Any]) -> None:
        self._last_line = time.perf_counter()
        if not self._enabled:
            return
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        values = ", ".join(f"{key} {_number(value)}" for key, value in metrics.items() if key != "v_num")
        print(f"epoch {trainer.current_epoch + 1}{epochs}: {what}" + (f"; {values}" if values else ""), flush=True)


def _number(value: Any) -> str:
    value = value.item() if hasattr(value, "item") else value
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def wants_epoch_lines(trainer_settings: dict[str, Any]) -> bool:
    """Whether ``magicnaming train`` should add :class:`EpochLines`: stdout is not a terminal, the progress bar is
    on, and no progress bar is configured (Lightning would otherwise pick its TQDM or Rich bar)."""
    callbacks = trainer_settings.get("callbacks") or []
    callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
    return (
        not sys.stdout.isatty()
        and trainer_settings.get("enable_progress_bar") is not False
        and not any(isinstance(callback, ProgressBar) for callback in callbacks)
    )
