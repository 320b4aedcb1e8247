"""Writing files so that a reader, or a re-run after a crash, never sees half a file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Calls ``write(temporary_path)`` for a temporary name in the same folder, then renames it to ``path``."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
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
