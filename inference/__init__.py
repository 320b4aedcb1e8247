"""The diffusers plugin: ``MagicNaming(pipe, encoder)`` puts identities into any SDXL-family pipeline."""

from .plugin import MagicNaming

__all__ = ["MagicNaming"]
