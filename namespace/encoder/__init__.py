"""The name encoder: frozen open_clip image towers and a three-layer head predicting (N, D) names."""

from .config import NameEncoderConfig, TowerConfig
from .model import NameEncoder

__all__ = ["NameEncoder", "NameEncoderConfig", "TowerConfig"]
