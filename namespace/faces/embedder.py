"""The face embedder: images → faces → aligned crops → unit-norm identity vectors, on any backend.

Memory: one batch of decoded images at a time (``batch_size``); the result grows by d floats per image.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from ..images import ImageInput, as_image_list
from ..progress import progress
from .config import FaceConfig
from .face import Face


@dataclass
class FaceAnalysis:
    """What the face stack found in n images.

    Attributes:
        embeddings: (n, d) float32, unit rows for each image's largest face; NaN rows where there is none.
        faces: per image, every face found, largest first.
        sizes: per image, its (width, height).
        reasons: per image, None when it has a face, else why its row is NaN.
    """

    embeddings: np.ndarray
    faces: list[list[Face]]
    sizes: list[tuple[int, int]]
    reasons: list[str | None]


class FaceEmbedder(ABC):
    """A face stack: ``detect``, ``align`` and ``embed``; a backend implements the three ``_`` methods."""

    backend: str = ""
    dim: int = 0

    def __init__(self, config: FaceConfig) -> None:
        self.config = config

    @property
    def same_person_threshold(self) -> float:
        """Cosine at and above which two embeddings are one person (calibrated per backend, see FaceConfig)."""
        return self.config.threshold

    @property
    def description(self) -> str:
        """The backend and detector, for messages ("dlib hog detector, upsample 1")."""
        return self.backend

    # -- a backend implements these ----------------------------------------------------------------------------------

    @abstractmethod
    def _detect(self, pixels: np.ndarray) -> list[Face]:
        """(H, W, 3) uint8 RGB → every face, in any order."""

    @abstractmethod
    def _align(self, pixels: np.ndarray, face: Face, size: int) -> np.ndarray:
        """(H, W, 3) uint8 → (size, size, 3) uint8: the face upright, eyes level, in the backend's framing."""

    @abstractmethod
    def _embed(self, pixels: list[np.ndarray], faces: list[Face]) -> np.ndarray:
        """Images (H, W, 3) uint8 and one face each → (k, d) embeddings (any norm)."""

    # -- the public surface ------------------------------------------------------------------------------------------

    def detect(self, image: ImageInput) -> list[Face]:
        """Every face in one image (a PIL image, a file path or a (3, H, W) tensor), largest first."""
        return self._faces(_pixels(as_image_list(image, "image")[0]))

    def align(self, image: ImageInput, face: Face, size: int = 224) -> Image.Image:
        """An aligned (size, size) RGB crop of ``face`` (a face ``detect`` found in ``image``)."""
        if size < 16:
            raise ValueError(f"size: expected at least 16 pixels, got {size}")
        return Image.fromarray(self._align(_pixels(as_image_list(image, "image")[0]), face, size))

    def analyse(
        self,
        images: ImageInput | Sequence[ImageInput],
        batch_size: int = 32,
        argument: str = "images",
        missing: Literal["nan", "raise"] = "nan",
    ) -> FaceAnalysis:
        """Detects and embeds the largest face of every image; see ``FaceAnalysis``. A progress bar runs on long
        lists; an unreadable file raises, naming it (``images[7]: ...``). ``missing="raise"``: an image without a
        face raises ValueError naming it, instead of a NaN row."""
        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive number, got {batch_size}")
        if missing not in ("nan", "raise"):
            raise ValueError(f"missing: expected 'nan' or 'raise', got {missing!r}")
        listed = _listed(images)
        rows, faces, sizes, reasons = [], [], [], []
        batches = range(0, len(listed), batch_size)
        for start in progress(batches, desc=f"faces[{self.backend}]", unit="batch", disable=len(batches) < 4 or None):
            batch = listed[start : start + batch_size]
            decoded = [_pixels(as_image_list(item, f"{argument}[{start + k}]")[0]) for k, item in enumerate(batch)]
            found = [self._faces(pixels) for pixels in decoded]
            for k, image_faces in enumerate(found):
                if not image_faces and missing == "raise":
                    item = batch[k]
                    what = f" ({str(item)!r})" if isinstance(item, (str, Path)) else ""
                    raise ValueError(f"{argument}[{start + k}]{what}: no face found ({self.description})")
            with_face = [k for k, image_faces in enumerate(found) if image_faces]
            vectors = np.full((len(decoded), self.dim), np.nan, dtype=np.float32)
            if with_face:
                embedded = self._embed([decoded[k] for k in with_face], [found[k][0] for k in with_face])
                vectors[with_face] = _unit(embedded)
            rows.append(vectors)
            faces += found
            sizes += [(pixels.shape[1], pixels.shape[0]) for pixels in decoded]
            reasons += [None if image_faces else f"no face found ({self.description})" for image_faces in found]
        embeddings = np.concatenate(rows) if rows else np.zeros((0, self.dim), np.float32)
        return FaceAnalysis(embeddings, faces, sizes, reasons)

    def embed(
        self,
        images: ImageInput | Sequence[ImageInput],
        batch_size: int = 32,
        missing: Literal["nan", "raise"] = "nan",
    ) -> np.ndarray:
        """(n, d) float32 unit rows, one per image (its largest face); a NaN row where no face is found (``analyse``
        says why), or a ValueError naming the image with ``missing="raise"``."""
        return self.analyse(images, batch_size, missing=missing).embeddings

    def _faces(self, pixels: np.ndarray) -> list[Face]:
        return sorted(self._detect(pixels), key=lambda face: face.area, reverse=True)


def _listed(images: ImageInput | Sequence[ImageInput]) -> list:
    """A flat list of image inputs (a folder or one image counts as its images), not yet decoded."""
    if isinstance(images, (Image.Image, str)) or not isinstance(images, Sequence):
        return list(as_image_list(images))
    return list(images)


def _pixels(image) -> np.ndarray:
    """A decoded RGB PIL image or (3, H, W) tensor in [0, 1] → (H, W, 3) uint8, contiguous."""
    if isinstance(image, Image.Image):
        return np.ascontiguousarray(np.asarray(image.convert("RGB")))
    array = (image.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(array)


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def load_face_embedder(config: FaceConfig | None = None) -> FaceEmbedder:
    """The configured backend with its models loaded (raises FaceStackMissing naming the extra when absent)."""
    config = config or FaceConfig()
    if config.backend == "insightface":
        from .insightface_faces import InsightFaceEmbedder

        return InsightFaceEmbedder(config)
    from .dlib_faces import DlibFaceEmbedder

    return DlibFaceEmbedder(config)
