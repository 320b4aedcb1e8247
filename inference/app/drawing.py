"""Drawing for every tab: one image through the plugin with its settings, progress per denoising step, errors and
warnings shown in the page.

Memory: one image at a time (the pipeline's own activations); images are written to the outputs folder.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import torch
from PIL import Image

from namespace import Identity

from ..commands import _write_image
from .state import AppState

DISPLAY_SIZE = 256
PROGRESS = gr.Progress()  # the handlers' default: Gradio passes a tracked one in its place (found by this type)
# bad input and failed loads; anything else is a bug and keeps its traceback in the terminal
SHOWN_ERRORS = (ValueError, TypeError, OSError, RuntimeError, KeyError)


def shown_errors(function: Callable) -> Callable:
    """Wraps an event handler: an error becomes a message box in the page (``gr.Error``) instead of a traceback,
    and each warning (a reference without a face, a prompt cut short) a toast (``gr.Warning``)."""

    @functools.wraps(function)
    def handler(*args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            try:
                result = function(*args, **kwargs)
            except gr.Error:
                raise
            except SHOWN_ERRORS as error:
                raise gr.Error(str(error), print_exception=False) from error
        for warning in caught:
            if issubclass(warning.category, UserWarning):
                gr.Warning(str(warning.message))
        return result

    return handler


def draw(
    state: AppState,
    prompt: str,
    identity: Identity | None,
    progress: gr.Progress,
    *,
    delta: float | None = None,
    eta: float | None = None,
    step_window: tuple[float, float] | None = None,
    seed: int = 0,
    steps: int | None = None,
    size: int | None = None,
    guidance_scale: float | None = None,
    description: str = "drawing",
) -> tuple[Image.Image, dict]:
    """One image of ``identity`` in ``prompt`` (None: ``<label>`` placeholders of registered identities, or nobody)
    and the settings that made it; settings left None take the plugin's and the app's defaults."""
    if not prompt or not prompt.strip():
        raise ValueError("prompt: expected a prompt, got an empty one")
    defaults = state.defaults
    steps, size = int(steps or defaults.steps), int(size or defaults.size)
    guidance_scale = defaults.guidance_scale if guidance_scale is None else float(guidance_scale)
    if size % 8 or not 8 <= size <= defaults.max_size:
        raise ValueError(f"size: expected a multiple of 8 from 8 to {defaults.max_size}, got {size}")

    def on_step(pipe, step, timestep, tensors):
        progress((step + 1, steps), desc=description, unit="steps")
        return tensors

    progress((0, steps), desc=description, unit="steps")
    with state.lock:  # one pipeline, shared by every tab and visitor
        image = state.naming(
            prompt,
            identity,
            delta=delta,
            eta=eta,
            step_window=step_window,
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            height=size,
            width=size,
            generator=torch.Generator().manual_seed(int(seed)),
            callback_on_step_end=on_step,
        ).images[0]
    settings = {
        "prompt": prompt,
        "identity": None if identity is None else {"label": identity.label, "source": identity.source},
        "delta": state.naming.delta if delta is None else delta,
        "eta": state.naming.encoder.statistics.norm if eta is None else eta,
        "step_window": list(step_window) if step_window else None,
        "seed": int(seed),
        "num_inference_steps": steps,
        "guidance_scale": guidance_scale,
        "height": size,
        "width": size,
        "encoder": state.encoder_name,
        "pipeline": state.pipeline_name,
    }
    return image, settings


def keep(state: AppState, image: Image.Image, settings: dict, kind: str) -> Path:
    """Writes the image and its settings (JSON beside it) into the outputs folder; returns the PNG's path."""
    path = state.outputs / f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{time.monotonic_ns() % 10**6:06d}.png"
    _write_image(image, path, settings)
    return path


def for_display(image: Image.Image) -> Image.Image:
    """Small drawings (the miniature world's 16 px) enlarged with visible pixels, so the page shows them."""
    if max(image.size) >= DISPLAY_SIZE:
        return image
    scale = DISPLAY_SIZE // max(image.size)
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)
