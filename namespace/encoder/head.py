"""The trainable part of the name encoder: three fully connected layers from image features to a name.

MagicNaming (Zhao et al., AAAI 2025), Sec. 3.2: "three fully connected layers" map the concatenated CLIP image
embeddings to the N·D name embedding. Widths and activation are ours (see ``NameEncoderConfig``).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import NameEncoderConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


class NameHead(nn.Module):
    """(B, F) concatenated tower embeddings → (B, N, D) name embeddings."""

    def __init__(self, config: NameEncoderConfig) -> None:
        super().__init__()
        self.num_tokens, self.width = config.num_tokens, config.width
        self.split = [tower.embed_dim for tower in config.towers]
        self.normalize_features = config.normalize_features
        hidden_1, hidden_2 = config.hidden_dims
        activation = ACTIVATIONS[config.activation]
        self.layers = nn.Sequential(
            nn.Linear(config.feature_dim, hidden_1),
            activation(),
            nn.Dropout(config.dropout),
            nn.Linear(hidden_1, hidden_2),
            activation(),
            nn.Dropout(config.dropout),
            nn.Linear(hidden_2, config.num_tokens * config.width),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.normalize_features:
            chunks = features.split(self.split, dim=-1)  # one (B, E_i) per tower
            features = torch.cat([nn.functional.normalize(chunk, dim=-1) for chunk in chunks], dim=-1)
        names = self.layers(features)  # (B, N·D)
        return names.view(-1, self.num_tokens, self.width)  # (B, N, D)
