"""Cheap checks of command-line inputs, run before any model loads and gathered into one error.

Loading SDXL takes tens of seconds; an identity file of the wrong width, a missing folder or an unreadable image must
be reported before that, naming the option as the user typed it (``--encoder``, ``--pipeline``, ``--identity``, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from namespace import Identity
from namespace.checks import check_delta, check_eta
from namespace.encoder import NameEncoderConfig
from namespace.encoder.model import CONFIG_NAME, HUB_ID, read_config

T = TypeVar("T")


class InputCheck:
    """Runs checks, keeps every problem, and raises one ``ValueError`` listing them all when the block ends.

    Example::

        with InputCheck() as check:
            config = check(encoder_config, encoder)  # None if the check failed
            check(check_pipeline, pipeline)
    """

    def __init__(self) -> None:
        self.problems: list[str] = []

    def __call__(self, check: Callable[..., T], *args) -> T | None:
        try:
            return check(*args)
        except (ValueError, OSError) as error:
            self.problems.append(str(error))
            return None

    def problem(self, message: str) -> None:
        self.problems.append(message)

    def __enter__(self) -> InputCheck:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is not None or not self.problems:
            return
        if len(self.problems) == 1:
            raise ValueError(self.problems[0])
        raise ValueError(f"{len(self.problems)} problems:\n  " + "\n  ".join(self.problems))


def is_local(value: str) -> bool:
    """Whether a ``--encoder``/``--pipeline`` value means a local folder rather than a Hub id ``owner/name``.

    A value is local if it exists, is not of the form ``owner/name``, or its first part is an existing folder
    (``models/sdxl`` with a ``models/`` folder here is a typo'd path, not a Hub repository of a user ``models``).
    """
    path = Path(value).expanduser()
    return path.exists() or not HUB_ID.fullmatch(value) or path.parent.is_dir()


def encoder_config(encoder: str, argument: str = "--encoder") -> NameEncoderConfig:
    """Reads only the encoder's ``config.json`` (its (N, D), towers, ...), from a folder or a Hub repository."""
    if is_local(encoder):
        folder = Path(encoder).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"{argument}: {encoder!r} is not a folder (nor a Hub id of the form owner/name)")
        path = folder / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{argument}: {encoder!r} has no {CONFIG_NAME} (not an encoder folder)")
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:  # one small file; the weights come later from the same cache
            path = Path(hf_hub_download(encoder, CONFIG_NAME))
        except (OSError, ValueError, EntryNotFoundError) as error:  # offline, no such repository or file, ...
            message = f"{argument}: cannot read {CONFIG_NAME} of the Hub repository {encoder!r} ({error})"
            raise OSError(message) from error
    try:
        return read_config(path)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{argument}: {error}") from error


def check_pipeline(pipeline: str, argument: str = "--pipeline") -> None:
    """A pipeline given as a local path must be a folder with a ``model_index.json`` (Hub ids are checked on load)."""
    if not is_local(pipeline):
        return
    folder = Path(pipeline).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{argument}: {pipeline!r} is not a folder (nor a Hub id of the form owner/name)")
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"{argument}: {pipeline!r} has no model_index.json (not a diffusers pipeline folder)")


def identity_file(path: Path, config: NameEncoderConfig | None, argument: str = "--identity") -> Identity:
    """Reads an identity file; with the encoder's config, its (N, D) must be the encoder's."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{argument}: identity file {str(path)!r} does not exist")
    shape = {} if config is None else {"num_tokens": config.num_tokens, "width": config.width}
    try:
        return Identity.load(path, **shape)
    except ValueError as error:
        raise ValueError(f"{argument}: {error}") from error


def dtype_and_device(dtype: str, device: str) -> None:
    """``--dtype`` and ``--device`` name a known dtype and a device torch can parse (whether it exists shows on use)."""
    from .loading import resolve_device, resolve_dtype

    resolve_dtype(dtype, resolve_device(device))


def name_settings(check: InputCheck, delta: float | None, eta: float | None) -> None:
    """``--delta`` and ``--eta`` when given: δ finite, η finite and > 0 (NaN would draw a black image)."""
    if delta is not None:
        check(check_delta, delta, "--delta")
    if eta is not None:
        check(check_eta, eta, "--eta")


def sampling_settings(check: InputCheck, seed: int, count: int, num_inference_steps: int, guidance_scale: float):
    """``--seed`` (``count`` seeds from it must fit torch's generator), ``--num_inference_steps`` ≥ 1 and a finite
    ``--guidance_scale`` ≥ 0."""
    largest = 2**64 - max(count, 1)  # torch.Generator().manual_seed takes 0 … 2**64 − 1
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= largest:
        uses = f" (seed + k for k < {count}, so at most {largest})" if count > 1 else ""
        check.problem(f"--seed: expected an integer from 0 to 2**64-1{uses}, got {seed!r}")
    if num_inference_steps < 1:
        check.problem(f"--num_inference_steps: expected at least 1, got {num_inference_steps}")
    if not (math.isfinite(guidance_scale) and guidance_scale >= 0):
        check.problem(f"--guidance_scale: expected a finite number ≥ 0, got {guidance_scale}")


def path_list(value: Path | list[Path]) -> list[Path]:
    """One path or a list of paths as a list (the command line accepts both)."""
    return [Path(value)] if isinstance(value, (str, Path)) else [Path(item) for item in value]
