"""How an image is drawn, shared by generate, interpolate, likeness, evaluate, story and the app.

The commands take these as top-level flags (``--num_inference_steps 30 --delta 1.5``: ``run_command`` lays a
``GenerationSettings`` parameter out flat); Python callers pass ``settings=GenerationSettings(...)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch

from namespace.checks import check_delta, check_eta

from .step_window import check_window

LARGEST_SEED = 2**64 - 1  # torch.Generator().manual_seed takes 0 … 2**64 − 1


@dataclass(frozen=True)
class GenerationSettings:
    """How images are drawn.

    Args:
        num_inference_steps: denoising steps.
        guidance_scale: classifier-free guidance scale.
        height: image height (default: the pipeline's).
        width: image width (default: the pipeline's).
        delta: name guidance δ, a finite number (default: the one calibrated when the encoder was trained; 1.0:
            names as predicted).
        eta: name norm η > 0 (default: the encoder's mean training-name norm).
        step_window: (start, end) fractions of the steps in which the name is applied (default: all).
        seed: seeds the noise, 0 to 2**64-1; image k of a command uses seed + k (each command says which k).
    """

    flat_flags: ClassVar[bool] = True  # run_command gives each field its own top-level flag

    num_inference_steps: int = 30
    guidance_scale: float = 5.0
    height: int | None = None
    width: int | None = None
    delta: float | None = None
    eta: float | None = None
    step_window: tuple[float, float] | None = None
    seed: int = 0

    def problems(self, seeds: int = 1) -> list[str]:
        """Every bad field, each naming its flag, the expected and the found value; ``seeds``: how many seeds
        (seed, seed + 1, …) the command draws with, which must all fit torch's generator."""
        problems = []
        largest = LARGEST_SEED + 1 - max(seeds, 1)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= largest:
            uses = f" (seed + k for k < {seeds}, so at most {largest})" if seeds > 1 else ""
            problems.append(f"--seed: expected an integer from 0 to 2**64-1{uses}, got {self.seed!r}")
        if self.num_inference_steps < 1:
            problems.append(f"--num_inference_steps: expected at least 1, got {self.num_inference_steps}")
        if not (math.isfinite(self.guidance_scale) and self.guidance_scale >= 0):
            problems.append(f"--guidance_scale: expected a finite number ≥ 0, got {self.guidance_scale}")
        for flag in ("height", "width"):
            value = getattr(self, flag)
            if value is not None and (value < 8 or value % 8):
                problems.append(
                    f"--{flag}: expected a multiple of 8 of at least 8 (or null: the pipeline's), got {value}"
                )
        checks = {"delta": lambda: check_delta(self.delta, "--delta"), "eta": lambda: check_eta(self.eta, "--eta")}
        checks["step_window"] = lambda: check_window(self.step_window, "--step_window")
        for flag, check in checks.items():
            if getattr(self, flag) is not None:
                try:
                    check()
                except (TypeError, ValueError) as error:
                    problems.append(str(error))
        return problems

    def call_arguments(self, index: int = 0) -> dict:
        """The plugin call's keywords for image ``index`` of a command (its noise seeded with seed + index)."""
        arguments = {key: value for key, value in asdict(self).items() if key != "seed"}
        return arguments | {"generator": torch.Generator().manual_seed(self.seed + index)}

    def record(self, naming) -> dict:
        """The settings as written beside an image: δ and η resolved to the values ``naming`` used."""
        statistics = naming.encoder.statistics
        resolved = {"delta": naming.delta if self.delta is None else self.delta}
        resolved["eta"] = statistics.norm if self.eta is None else self.eta
        step_window = list(self.step_window) if self.step_window else None
        return asdict(self) | resolved | {"step_window": step_window}
