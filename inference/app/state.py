"""What the app holds while it runs: the plugin (pipeline + name encoder), its image defaults, where it writes.

``--pipeline miniature`` (the default) is the miniature world cached by ``magicnaming demo`` with the demo's encoder
(``demo-output/encoder``); ``tiny`` is the offline tiny pipeline and encoder of ``namespace.synthetic`` (random weights:
noise images, for tests); a miniature world's folder or an SDXL-family pipeline folder or Hub id takes ``--encoder``
(what each name means: ``namespace.model_names``).
Memory: the pipeline and the encoder (a few MB on the miniature world, about 7 GB in fp16 for SDXL); the library and
the outputs live on disk.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from namespace import Identity
from namespace.encoder.model import CONFIG_NAME
from namespace.model_names import MINIATURE, TINY, parse_pipeline
from namespace.progress import Steps

from ..generation_settings import GenerationSettings
from ..plugin import MagicNaming
from .library import IdentityLibrary

DEMO_CONFIG = "configs/demo.yaml"
DEMO_COMMAND = f"magicnaming demo --config {DEMO_CONFIG} --output demo-output"
DEMO_ENCODER = "demo-output/encoder"  # the encoder DEMO_COMMAND trains on the miniature world


@dataclass(frozen=True)
class ImageDefaults:
    """The tabs' starting values for one kind of pipeline: how an image is drawn (a square of ``settings.height``)
    and the largest size the size sliders offer."""

    kind: Literal["tiny", "miniature", "full size"]
    settings: GenerationSettings
    max_size: int


def _square(size: int, steps: int, guidance_scale: float) -> GenerationSettings:
    return GenerationSettings(num_inference_steps=steps, guidance_scale=guidance_scale, height=size, width=size)


TINY_DEFAULTS = ImageDefaults("tiny", _square(32, steps=2, guidance_scale=5.0), max_size=128)
# configs/demo.yaml's settings
MINIATURE_DEFAULTS = ImageDefaults("miniature", _square(16, steps=20, guidance_scale=2.0), max_size=64)
FULL_SIZE_DEFAULTS = ImageDefaults("full size", _square(1024, steps=30, guidance_scale=5.0), max_size=2048)


class TurnLock:
    """A lock taken in turn (first come, first served): an event that releases it between images and asks again
    waits behind those already waiting, so a long story lets other visitors' images through."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held = False
        self._waiting: deque[threading.Lock] = deque()

    @property
    def waiting(self) -> int:
        """How many are waiting for their turn."""
        with self._guard:
            return len(self._waiting)

    def __enter__(self) -> TurnLock:
        with self._guard:
            if not self._held:
                self._held = True
                return self
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        turn.acquire()  # released by the holder before us: the lock is handed over, never free in between
        return self

    def __exit__(self, *exception) -> None:
        with self._guard:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._held = False


@dataclass
class AppState:
    """The loaded plugin and the app's folders; ``lock`` lets one drawing (one image) at a time use the pipeline."""

    naming: MagicNaming
    library: IdentityLibrary
    outputs: Path
    defaults: ImageDefaults
    encoder_name: str
    pipeline_name: str
    lock: TurnLock = field(default_factory=TurnLock)


@contextmanager
def pipeline_turn(state: AppState, people: dict[str, Identity] | None = None) -> Iterator:
    """The plugin for one image, in turn: while it is held, the placeholders ``<label>`` are ``people`` only (this
    drawing's, never another visitor's); the registry is emptied when the turn ends."""
    with state.lock:
        state.naming.registry = {}
        for label, identity in (people or {}).items():
            state.naming.register(label, identity)
        try:
            yield state.naming
        finally:
            state.naming.registry = {}


def resolve_models(encoder: str | None, pipeline: str) -> tuple[str, str, ImageDefaults]:
    """The encoder and pipeline the app loads (defaults filled in; a miniature world as its pipeline folder) and their
    image defaults; raises ``FileNotFoundError`` naming the command that builds the miniature world and the demo's
    encoder when they are missing (cheap: no model loads)."""
    name = parse_pipeline(pipeline)
    if name.kind == TINY:
        if encoder not in (None, TINY):
            raise ValueError(f"--encoder: --pipeline tiny takes only the tiny test encoder (tiny), got {encoder!r}")
        return TINY, TINY, TINY_DEFAULTS
    if encoder == TINY:
        raise ValueError(f"--encoder tiny: the tiny test encoder works only with --pipeline tiny, got {pipeline!r}")
    if name.kind != MINIATURE:
        if encoder is None:
            raise ValueError(f"--encoder: --pipeline {pipeline!r} needs a name-encoder folder or Hub id")
        return encoder, name.location(), MINIATURE_DEFAULTS if name.kind == "world" else FULL_SIZE_DEFAULTS
    encoder = encoder or DEMO_ENCODER
    missing = []
    try:
        location = name.location(build=False)  # the cached world's pipeline/
    except FileNotFoundError:
        missing.append("the cached miniature world")
    # read here, not through parse_encoder: a missing demo-output/encoder would pass as a Hub id owner/name
    if encoder == DEMO_ENCODER and not (Path(encoder) / CONFIG_NAME).is_file():
        missing.append(f"the demo's encoder ({Path(encoder).resolve()})")
    if missing:
        raise FileNotFoundError(
            f"--pipeline miniature: {' and '.join(missing)} not found; build them with `{DEMO_COMMAND}` in a checkout "
            "(about 10 minutes on 2 CPU cores; the world is cached for later runs), or give --encoder and --pipeline"
        )
    return encoder, location, MINIATURE_DEFAULTS


def load_state(
    encoder: str,
    pipeline: str,
    defaults: ImageDefaults,
    library: Path,
    outputs: Path,
    dtype: str = "auto",
    device: str = "auto",
    pipeline_config: str | None = None,
) -> AppState:
    """Loads the plugin (printing a line per step) for the app; ``encoder``, ``pipeline`` and ``defaults`` as
    ``resolve_models`` returns them (``tiny``: the tiny test pipeline, seed 0, and its encoder); ``pipeline_config``:
    the configs of a single-file ``pipeline``."""
    from ..loading import load_naming

    naming = load_naming(encoder, pipeline, Steps(total=2), "text2img", dtype, device, pipeline_config)
    shape = (naming.encoder.config.num_tokens, naming.encoder.config.width)
    return AppState(naming, IdentityLibrary(library, shape), Path(outputs), defaults, encoder, pipeline)
