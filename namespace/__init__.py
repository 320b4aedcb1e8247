"""MagicNaming: consistent identities in SDXL by predicting a *name* embedding from images.

The core: name-space math (eq. 1, 4, 5, interpolation, mixing, sampling), the name encoder, identities and the
training target. Attributes load lazily, so ``import namespace`` stays fast and pulls in no model library.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import TYPE_CHECKING

__version__ = "0.1.0.dev0"

_EXPORTS = {
    "prepend": "name_space",
    "guide": "name_space",
    "normalize": "name_space",
    "interpolate": "name_space",
    "mix": "name_space",
    "NameSpaceStatistics": "statistics",
    "name_embeddings": "text_sides",
    "NameEncoder": "encoder",
    "NameEncoderConfig": "encoder",
    "TowerConfig": "encoder",
    "Identity": "identity",
}

__all__ = [
    "Identity",
    "NameEncoder",
    "NameEncoderConfig",
    "NameSpaceStatistics",
    "TowerConfig",
    "__version__",
    "guide",
    "interpolate",
    "mix",
    "name_embeddings",
    "normalize",
    "prepend",
]

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

    from .encoder import NameEncoder, NameEncoderConfig, TowerConfig
    from .identity import Identity
    from .name_space import guide, interpolate, mix, normalize, prepend
    from .statistics import NameSpaceStatistics
    from .text_sides import name_embeddings


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'namespace' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


# namespace.<stage> is the folder <stage>/ beside namespace/ (pyproject.toml's [tool.setuptools.package-dir])
_STAGES = ("data_pipeline", "train", "inference")


class _CheckoutStages:
    """Finds ``namespace.<stage>`` in the stage folders of the source checkout this ``namespace/`` belongs to.

    A regular install (``pip install .``) used from the repository's root imports this folder, not the installed
    package (the current folder comes first on ``sys.path``), and the stages are not under it: they sit beside it,
    as an editable install's finder maps them. Answers only for this folder's ``namespace``.
    """

    def __init__(self, package_dir: str, root: str) -> None:
        self.package_dir = package_dir
        self.folders = {f"{__name__}.{stage}": os.path.join(root, stage) for stage in _STAGES}

    def find_spec(self, fullname: str, path: list[str] | None, target: object = None) -> ModuleSpec | None:
        folder = self.folders.get(fullname)
        if folder is None or path is None or self.package_dir not in path:
            return None
        init = os.path.join(folder, "__init__.py")
        return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=[folder])


def _find_checkout_stages() -> None:
    """Adds ``_CheckoutStages`` to ``sys.meta_path`` (once) when this package is loaded from a source checkout: its
    parent folder holds pyproject.toml and the stage folders. An installed package (site-packages) adds nothing."""
    package_dir = os.path.dirname(__file__)
    root = os.path.dirname(os.path.abspath(package_dir))
    stages = [os.path.join(root, stage, "__init__.py") for stage in _STAGES]
    if not (os.path.isfile(os.path.join(root, "pyproject.toml")) and all(map(os.path.isfile, stages))):
        return
    if not any(getattr(finder, "package_dir", None) == package_dir for finder in sys.meta_path):
        sys.meta_path.append(_CheckoutStages(package_dir, root))


_find_checkout_stages()
