"""Cheap checks of command-line inputs, run before any model loads and gathered into one error.

Loading SDXL takes tens of seconds; an identity file of the wrong width, a missing folder or an unreadable image must
be reported before that, naming the option as the user typed it (``--encoder``, ``--pipeline``, ``--identity``, ...).
What a model name means (``tiny``, ``miniature``, a folder, a Hub id) is ``namespace.model_names``' to say.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from namespace import Identity
from namespace.encoder import NameEncoderConfig
from namespace.encoder.model import CONFIG_NAME, read_config
from namespace.model_names import TINY, parse_encoder, resolve_device, resolve_dtype

T = TypeVar("T")


class InputCheck:
    """Runs checks, keeps every problem, and raises one ``ValueError`` listing them all when the block ends.

    Example::

        with InputCheck() as check:
            config = check(encoder_config, encoder)  # None if the check failed
            check(parse_pipeline, pipeline)  # namespace.model_names'
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


def encoder_config(encoder: str, argument: str = "--encoder") -> NameEncoderConfig:
    """Reads only the encoder's ``config.json`` (its (N, D), towers, ...), from a folder or a Hub repository;
    ``tiny`` is the tiny encoder's config."""
    name = parse_encoder(encoder, argument)
    if name.kind == TINY:
        from namespace.synthetic import tiny_name_encoder_config

        return tiny_name_encoder_config()
    if name.kind == "folder":
        path = Path(encoder).expanduser() / CONFIG_NAME
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
    resolve_dtype(dtype, resolve_device(device))


def path_list(value: Path | list[Path]) -> list[Path]:
    """One path or a list of paths as a list (the command line accepts both)."""
    return [Path(value)] if isinstance(value, (str, Path)) else [Path(item) for item in value]
