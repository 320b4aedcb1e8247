"""MagicNaming: consistent identities in SDXL by predicting a *name* embedding from images.

The core: name-space math (eq. 1, 4, 5, interpolation, mixing, sampling), the name encoder, identities and the
training target. Attributes load lazily, so ``import namespace`` stays fast and pulls in no model library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0.dev0"

_EXPORTS = {
    "prepend": "name_space",
    "guide": "name_space",
    "normalize": "name_space",
    "interpolate": "name_space",
    "mix": "name_space",
    "NameSpaceStatistics": "statistics",
    "name_embeddings": "prompt_encoding",
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
    from .encoder import NameEncoder, NameEncoderConfig, TowerConfig
    from .identity import Identity
    from .name_space import guide, interpolate, mix, normalize, prepend
    from .prompt_encoding import name_embeddings
    from .statistics import NameSpaceStatistics


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'namespace' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
