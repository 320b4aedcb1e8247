"""An identity: a name embedding with its label and provenance, saved as a safetensors identity file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .checks import check_finite, check_name_tensor
from .files import atomic_write

if TYPE_CHECKING:
    from .encoder import NameEncoder
    from .images import ImageInput
    from .statistics import NameSpaceStatistics

Source = Literal["images", "interpolation", "mix", "sampling", "text"]
SOURCES = get_args(Source)
FORMAT = "magicnaming-identity"
FORMAT_VERSION = 1
TENSOR_KEY = "name_embedding"
HEADER_KEYS = frozenset({"format", "format_version", "label", "source", "encoder", "num_tokens", "width"})


@dataclass
class Identity:
    """A person, real or fictional, as a name embedding.

    Attributes:
        embedding: (N, D) float32 name embedding, before guidance (eq. 4) and scaling (eq. 5).
        label: a human-readable name for the identity.
        source: how it was made: from images, interpolation, mix, sampling or text.
        encoder: id or path of the encoder that made it (empty if none).
        metadata: further string metadata (reference count, interpolation weights, seed, ...).
    """

    embedding: torch.Tensor
    label: str = "identity"
    source: Source = "images"
    encoder: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        embedding = check_name_tensor(self.embedding, "embedding", allow_batch=False)
        check_finite(embedding, "embedding")
        self.embedding = embedding.detach().float()
        if self.source not in SOURCES:
            raise ValueError(f"source: expected one of {', '.join(SOURCES)}, got {self.source!r}")

    @property
    def num_tokens(self) -> int:
        return self.embedding.shape[0]

    @property
    def width(self) -> int:
        return self.embedding.shape[1]

    @classmethod
    def from_images(
        cls,
        encoder: NameEncoder,
        images: ImageInput | Sequence[ImageInput],
        label: str = "identity",
        encoder_id: str = "",
        reference_crop: str | None = None,
    ) -> Identity:
        """Encodes one or several reference images of one person and averages their names; ``reference_crop``
        overrides the encoder's face crop (``NameEncoder.encode``)."""
        names = encoder.encode(images, reference_crop=reference_crop)  # (K, N, D)
        metadata = {"num_references": str(names.shape[0])}
        return cls(names.mean(0).cpu(), label=label, source="images", encoder=encoder_id, metadata=metadata)

    @classmethod
    def sampled(
        cls,
        statistics: NameSpaceStatistics,
        num: int = 1,
        seed: int = 0,
        temperature: float = 1.0,
        label: str = "sampled",
        encoder_id: str = "",
    ) -> list[Identity]:
        """New, fictional identities drawn from name-space statistics (mean + low-rank Gaussian).

        An identity holds a name as the encoder predicts it, before guidance (eq. 4); the encoder's calibrated δ
        then gives it the spread of true names. A sample already has that spread, so it is stored shrunk towards
        F_mean by 1/δ: the default guidance gives back the sample itself, as it gives an encoded photo its spread.

        Returns:
            ``num`` identities, each (N, D), labelled ``label`` (one) or ``label-k`` (several).
        """
        from .name_space import guide

        generator = torch.Generator().manual_seed(seed)
        names = statistics.sample(num, generator=generator, temperature=temperature)  # (num, N, D), norm η
        names = guide(names, statistics.mean, 1.0 / statistics.delta).cpu()
        return [
            cls(
                name,
                f"{label}-{k}" if num > 1 else label,
                "sampling",
                encoder=encoder_id,
                metadata={"seed": str(seed), "index": str(k), "temperature": f"{temperature:g}"},
            )
            for k, name in enumerate(names)
        ]

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the identity file (atomically): one ``name_embedding`` tensor plus string metadata."""
        clashing = sorted(HEADER_KEYS & set(self.metadata))
        if clashing:
            raise ValueError(f"metadata: keys {clashing} are reserved for the identity file header")
        metadata = {
            **{key: str(value) for key, value in self.metadata.items()},
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "label": self.label,
            "source": self.source,
            "encoder": self.encoder,
            "num_tokens": str(self.num_tokens),
            "width": str(self.width),
        }
        tensors = {TENSOR_KEY: self.embedding.cpu().contiguous()}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, lambda temporary: save_file(tensors, str(temporary), metadata=metadata))

    @classmethod
    def load(cls, path: str | os.PathLike, num_tokens: int | None = None, width: int | None = None) -> Identity:
        """Reads an identity file; ``num_tokens``/``width``, when given, must match (e.g. the encoder's N and D)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: identity file {str(path)!r} does not exist")
        metadata, tensors = _read_safetensors(path)
        problems = []
        if metadata.get("format") != FORMAT:
            problems.append(f"format is {metadata.get('format')!r}, expected {FORMAT!r}")
        version = metadata.get("format_version", "")
        if not version.isdigit() or int(version) > FORMAT_VERSION:
            problems.append(f"format_version {version!r} is not supported (this version reads up to {FORMAT_VERSION})")
        if set(tensors) != {TENSOR_KEY}:
            problems.append(f"holds tensors {sorted(tensors)}, expected only {TENSOR_KEY!r}")
        if problems:
            raise ValueError(f"{path} is not a valid identity file: " + "; ".join(problems))
        embedding = _checked_embedding(tensors[TENSOR_KEY], path)
        found_tokens, found_width = embedding.shape
        if num_tokens is not None and found_tokens != num_tokens:
            raise ValueError(f"{path}: identity has {found_tokens} name tokens, expected {num_tokens}")
        if width is not None and found_width != width:
            raise ValueError(f"{path}: identity has width {found_width}, expected {width} (made for another model?)")
        return cls(
            embedding,
            label=metadata.get("label", path.stem),
            source=metadata.get("source", "images"),
            encoder=metadata.get("encoder", ""),
            metadata={key: value for key, value in metadata.items() if key not in HEADER_KEYS},
        )


def _checked_embedding(embedding: torch.Tensor, path: Path) -> torch.Tensor:
    """The file's tensor as an (N, D) float32 name; raises a ValueError naming ``path`` unless it is a floating-point
    matrix, finite in float32 and not all zero (eq. 5 divides by its norm)."""
    what = f"{path}: {TENSOR_KEY}"
    if embedding.ndim != 2:
        raise ValueError(f"{what} has shape {tuple(embedding.shape)}, expected (N, D)")
    if not embedding.is_floating_point():
        raise ValueError(f"{what} has dtype {embedding.dtype}, expected a floating-point name (float32, float16, ...)")
    check_finite(embedding, what)
    if not bool(torch.isfinite(embedding.float()).all()):
        raise ValueError(f"{what} holds values beyond float32's range (largest {embedding.abs().max().item():.3g})")
    embedding = embedding.float()
    if not bool(embedding.any()):
        raise ValueError(f"{what} is all zeros, expected a name (an all-zero name cannot be scaled to norm η, eq. 5)")
    return embedding


def _read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return metadata, load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path} is not a safetensors identity file ({error})") from error
