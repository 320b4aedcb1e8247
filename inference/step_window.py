"""Apply the name only in a window of the denoising steps, through the pipeline's ``callback_on_step_end``.

Early steps lay out the composition and late steps the details: a window such as (0.0, 0.6) keeps the identity
while leaving the last steps to the prompt alone (more prompt freedom), (0.2, 1.0) the reverse.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def check_window(window: tuple[float, float], argument: str = "step_window") -> tuple[float, float]:
    """Validates a (start, end) window given as fractions of the denoising steps; errors name ``argument``."""
    try:
        start, end = (float(x) for x in window)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{argument}: expected (start, end) fractions of the steps, got {window!r}") from error
    if not 0.0 <= start < end <= 1.0:
        raise ValueError(f"{argument}: expected 0 <= start < end <= 1, got ({start}, {end})")
    return start, end


def in_window(step: int, total: int, window: tuple[float, float]) -> bool:
    """Whether denoising step ``step`` (0-based) of ``total`` uses the name."""
    start, end = window
    return start <= step / total < end


class StepWindowCallback:
    """A ``callback_on_step_end`` that swaps the positive prompt embeddings at the window's edges.

    Args:
        window: (start, end) fractions of the denoising steps in which the name is applied.
        named: (B, L, D) positive prompt embeddings with the name, as the pipeline holds them (after
            ``num_images_per_prompt`` expansion).
        plain: (B, L, D) the same without the name.
        then: the caller's own ``callback_on_step_end``, run after this one.
    """

    def __init__(
        self,
        window: tuple[float, float],
        named: torch.Tensor,
        plain: torch.Tensor,
        then: Callable | None = None,
    ) -> None:
        self.window, self.named, self.plain, self.then = check_window(window), named, plain, then
        self.steps_with_name: list[int] = []  # what ran, for inspection and tests

    def __call__(self, pipe, step: int, timestep, callback_kwargs: dict) -> dict:
        total = pipe.num_timesteps
        if in_window(step, total, self.window):
            self.steps_with_name.append(step)
        target = self.named if in_window(step + 1, total, self.window) else self.plain
        current = callback_kwargs["prompt_embeds"]
        target = target.to(device=current.device, dtype=current.dtype)
        if current.shape[0] == 2 * target.shape[0]:  # classifier-free guidance: [negative, positive]
            target = torch.cat([current[: target.shape[0]], target])
        outputs = {"prompt_embeds": target}
        if self.then is not None:
            outputs.update(self.then(pipe, step, timestep, {**callback_kwargs, **outputs}) or {})
        return outputs
