"""Drawing for every tab: one image through the plugin with its settings, progress per denoising step, errors and
warnings shown in the page.

Memory: one image at a time (the pipeline's own activations); images are written to the outputs folder. Events
take turns on the pipeline one image at a time (``pipeline_turn``); each output gets a name no other drawing has.
"""

from __future__ import annotations

import functools
import itertools
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import gradio as gr
from PIL import Image

from namespace import Identity

from ..commands import _write_image
from ..generation_settings import GenerationSettings
from .state import AppState, pipeline_turn

DISPLAY_SIZE = 256
PROGRESS = gr.Progress()  # the handlers' default: Gradio passes a tracked one in its place (found by this type)
# bad input and failed loads; anything else is a bug and keeps its traceback in the terminal
SHOWN_ERRORS = (ValueError, TypeError, OSError, RuntimeError, KeyError)
# an absolute path's folders (not a URL's): the page shows only the file's name, never where the server keeps it
SERVER_FOLDERS = re.compile(r"(?<![\w.~:/-])/(?:[^\s'\"/:;,()]+/)+")
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed's range is 0 .. 2**64 - 1 (and negatives, which we refuse)


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
                raise gr.Error(without_server_folders(str(error)), print_exception=False) from error
        for warning in caught:
            if issubclass(warning.category, UserWarning):
                gr.Warning(without_server_folders(str(warning.message)))
        return result

    return handler


def without_server_folders(message: str) -> str:
    """``message`` with every absolute path cut to its file name (``'/tmp/gradio/3f2a/me.png'`` → ``'me.png'``)."""
    return SERVER_FOLDERS.sub("", message)


def check_seed(seed: object, argument: str = "seed") -> int:
    """A seed as a whole number in torch's range 0 … 2**64 - 1, checked before anything is drawn."""
    whole = isinstance(seed, int) or (isinstance(seed, float) and seed.is_integer())
    if isinstance(seed, bool) or not whole or not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"{argument}: expected a whole number from 0 to {MAX_SEED} (2**64 - 1), got {seed!r}")
    return int(seed)


def draw(
    state: AppState,
    prompt: str,
    identity: Identity | None,
    progress: gr.Progress,
    settings: GenerationSettings | None = None,
    *,
    people: dict[str, Identity] | None = None,
    description: str = "drawing",
) -> tuple[Image.Image, dict]:
    """One image of ``identity`` in ``prompt`` (None: the ``<label>`` placeholders of ``people``, or nobody) and the
    settings that made it; ``settings`` None: the app's defaults (δ and η left None: the encoder's)."""
    if not prompt or not prompt.strip():
        raise ValueError("prompt: expected a prompt, got an empty one")
    settings = state.defaults.settings if settings is None else settings
    check_seed(settings.seed)
    largest = state.defaults.max_size
    for size in (settings.height, settings.width):  # the app draws squares: one size for both
        if size is None or size % 8 or not 8 <= size <= largest:
            raise ValueError(f"size: expected a multiple of 8 from 8 to {largest}, got {size}")
    steps = settings.num_inference_steps

    def on_step(pipe, step, timestep, tensors):
        progress((step + 1, steps), desc=description, unit="steps")
        return tensors

    progress((0, steps), desc=description, unit="steps")
    with pipeline_turn(state, people) as naming:  # one pipeline, shared by every tab and visitor
        image = naming(prompt, identity, **settings.call_arguments(), callback_on_step_end=on_step).images[0]
    recorded = {
        "prompt": prompt,
        "identity": None if identity is None else described(identity),
        "people": {label: described(person) for label, person in (people or {}).items()} or None,
    }
    recorded |= settings.record(state.naming) | {"encoder": state.encoder_name, "pipeline": state.pipeline_name}
    return image, recorded


def described(identity: Identity) -> dict:
    """How the settings name an identity."""
    return {"label": identity.label, "source": identity.source}


def new_output(outputs: Path, stem: str, suffix: str = "") -> Path:
    """A path no drawing has had, ``outputs/<stem><suffix>`` or ``<stem>-2<suffix>``, ...: a folder (``suffix``
    empty) made here with mkdir or an empty file created exclusively, so two drawings at once never share one."""
    outputs.mkdir(parents=True, exist_ok=True)
    for number in itertools.count(1):
        path = outputs / f"{stem}{'' if number == 1 else f'-{number}'}{suffix}"
        try:
            path.touch(exist_ok=False) if suffix else path.mkdir()
        except FileExistsError:
            continue
        return path


def keep(state: AppState, image: Image.Image, settings: dict, kind: str) -> Path:
    """Writes the image and its settings (JSON beside it) into the outputs folder; returns the PNG's path."""
    path = new_output(state.outputs, f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}", ".png")
    _write_image(image, path, settings)
    return path


def for_display(image: Image.Image) -> Image.Image:
    """Small drawings (the miniature world's 16 px) enlarged with visible pixels, so the page shows them."""
    if max(image.size) >= DISPLAY_SIZE:
        return image
    scale = DISPLAY_SIZE // max(image.size)
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)
