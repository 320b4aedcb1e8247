"""Writing files so that a reader, or a re-run after a crash, never sees half a file."""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path


def _writer() -> str:
    """This process and thread: two writers of one path never share a temporary name."""
    return f"{os.getpid()}-{threading.get_ident()}"


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Calls ``write(temporary_path)`` for a temporary name in the same folder, then renames it to ``path``."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{_writer()}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def cache_dir(name: str) -> Path:
    """``$MAGICNAMING_CACHE/<name>``, else ``$XDG_CACHE_HOME/magicnaming/<name>`` (``~/.cache`` by default)."""
    if os.environ.get("MAGICNAMING_CACHE"):
        return Path(os.environ["MAGICNAMING_CACHE"]) / name
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "magicnaming" / name


def check_new_output(path: str | os.PathLike, argument: str, overwrite: bool, folder: bool = False) -> Path:
    """Refuses an existing output unless ``overwrite``: the one rule of every command that writes.

    Args:
        path: the output as the user gave it.
        argument: the argument as the user typed it (``--output``), for the message.
        overwrite: the command's ``--overwrite``; when true an existing output may be replaced.
        folder: the output is a folder; an existing *empty* folder counts as new.

    Raises:
        FileExistsError: naming the argument, the path and ``--overwrite``.
    """
    path = Path(path)
    if overwrite or not path.exists():
        return path
    if folder and path.is_dir() and not any(path.iterdir()):
        return path
    what = "a non-empty folder" if path.is_dir() else "a file"
    raise FileExistsError(
        f"{argument}: expected a new {'folder' if folder else 'file'}, {str(path)!r} already exists ({what}); "
        "choose another path or pass --overwrite true to replace it"
    )


def output_problems(path: str | os.PathLike, argument: str, overwrite: bool, folder: bool = False) -> list[str]:
    """``check_new_output``'s refusal as a list of problems (empty when ``path`` may be written), for a command that
    gathers every problem into one error."""
    try:
        check_new_output(path, argument, overwrite, folder)
    except FileExistsError as error:
        return [str(error)]
    return []


def atomic_folder(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Calls ``write(temporary_folder)`` for a new folder beside ``path``, then moves it to ``path`` whole.

    A killed run leaves only a hidden ``.NAME.tmp-…`` folder, never a half-written ``path``. An existing empty
    ``path`` is replaced in one rename; a non-empty one (the caller has checked ``--overwrite``) is moved aside first
    and removed once the new folder is in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{_writer()}")
    previous = path.with_name(f".{path.name}.old-{_writer()}")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        write(temporary)
        if path.exists() and not (path.is_dir() and not any(path.iterdir())):
            os.replace(path, previous)
        os.replace(temporary, path)  # onto an empty folder in one step: its name is never free meanwhile
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    shutil.rmtree(previous, ignore_errors=True)
    return path


def slug(name: str) -> str:
    """A name as a file name: ``"Alma Quintrell"`` → ``"alma-quintrell"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
