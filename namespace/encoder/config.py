"""Serializable configuration of the name encoder: plain values only, round-trips through JSON and YAML."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..faces.crop import CROP_MODES, CropMode

Precision = Literal["fp32", "fp16", "bf16"]
Activation = Literal["gelu", "relu", "silu"]


@dataclass
class TowerConfig:
    """One frozen open_clip image tower.

    Attributes:
        model: open_clip model name (``"ViT-L-14"``) or an ``hf-hub:``/``local-dir:`` schema.
        pretrained: open_clip pretrained tag (``"openai"``), a local checkpoint path, or None for random weights.
        embed_dim: width of the tower's projected image embedding (768 for ViT-L-14, 1280 for ViT-bigG-14); known
            without loading the tower, so the head can be built for training from cached features.
        precision: dtype the tower runs in; the head always stays fp32.
        seed: seeds the random weights when ``pretrained`` is None, so a saved encoder with random towers (tests,
            demos, benchmarks) reloads to the very same model.
    """

    model: str
    pretrained: str | None
    embed_dim: int
    precision: Precision = "fp32"
    seed: int = 0


def _sdxl_towers() -> list[TowerConfig]:
    return [
        TowerConfig(model="ViT-L-14", pretrained="openai", embed_dim=768),
        TowerConfig(model="ViT-bigG-14", pretrained="laion2b_s39b_b160k", embed_dim=1280),
    ]


@dataclass
class NameEncoderConfig:
    """Image towers → concatenated embeddings → three linear layers → (N, D) name.

    The defaults are the full-size SDXL recipe. Hidden widths: the paper only says "three fully connected layers".
    We use 2048 → 2048 → 2048 → 8·2048 (41,963,520 parameters, 80% of them in the last layer): the hidden width equals
    the input width (CLIP-L 768 + bigG 1280) and the name width D, so no layer is a bottleneck narrower than the
    target's per-token width, while the head stays ~3% of the 1.3B frozen tower parameters and trains from cached
    features at thousands of samples/s. Wider hidden layers (4096) double the head for no measured gain yet.

    Attributes:
        towers: the frozen image towers, in concatenation order.
        num_tokens: N, token positions of a name (8 in the paper).
        width: D, width of the pipeline's prompt embeddings (2048 for SDXL).
        hidden_dims: widths of the two hidden layers.
        activation: nonlinearity between the layers.
        dropout: dropout after each hidden activation (training only).
        normalize_features: L2-normalise each tower's embedding before concatenation, so neither tower dominates
            by scale (CLIP embeddings are compared by cosine).
        pca_rank: principal directions of the name space kept for sampling new identities.
        reference_crop: what the towers see of a reference photo: ``none`` (the whole photo), ``loose`` (a square
            around the face with hair and chin) or ``aligned`` (the face stack's upright chip); see
            ``namespace.encoder.reference_crop``. The same crop is applied in the feature cache, in streaming
            training and at inference. The paper feeds whole portraits, so ``none`` is the default.
    """

    towers: list[TowerConfig] = field(default_factory=_sdxl_towers)
    num_tokens: int = 8
    width: int = 2048
    hidden_dims: tuple[int, int] = (2048, 2048)
    activation: Activation = "gelu"
    dropout: float = 0.0
    normalize_features: bool = True
    pca_rank: int = 64
    # the paper's choice (whole portraits): cropping is opt-in, and an encoder trained on crops must get crops
    reference_crop: CropMode = "none"

    def __post_init__(self) -> None:
        self.towers = [TowerConfig(**tower) if isinstance(tower, dict) else tower for tower in self.towers]
        self.hidden_dims = tuple(self.hidden_dims)
        problems = []
        if not self.towers:
            problems.append("towers: expected at least one image tower, got none")
        for index, tower in enumerate(self.towers):
            if tower.embed_dim < 1:
                problems.append(f"towers[{index}].embed_dim: expected a positive width, got {tower.embed_dim}")
            if tower.precision not in ("fp32", "fp16", "bf16"):
                problems.append(f"towers[{index}].precision: expected fp32, fp16 or bf16, got {tower.precision!r}")
        for name in ("num_tokens", "width", "pca_rank"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "pca_rank" else 1):
                problems.append(f"{name}: expected a positive integer, got {value!r}")
        if len(self.hidden_dims) != 2 or any(not isinstance(d, int) or d < 1 for d in self.hidden_dims):
            problems.append(f"hidden_dims: expected two positive widths, got {self.hidden_dims!r}")
        if self.activation not in ("gelu", "relu", "silu"):
            problems.append(f"activation: expected gelu, relu or silu, got {self.activation!r}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout: expected a probability in [0, 1), got {self.dropout}")
        if self.reference_crop not in CROP_MODES:
            problems.append(f"reference_crop: expected one of {', '.join(CROP_MODES)}, got {self.reference_crop!r}")
        if problems:
            raise ValueError("invalid NameEncoderConfig:\n  " + "\n  ".join(problems))

    @property
    def feature_dim(self) -> int:
        """Width of the concatenated tower embeddings (2048 for SDXL)."""
        return sum(tower.embed_dim for tower in self.towers)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["hidden_dims"] = list(self.hidden_dims)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NameEncoderConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"NameEncoderConfig: unknown keys {unknown}; expected some of {sorted(known)}")
        return cls(**data)
