"""Identity scorers: generated images → identity rows for ``reference_similarity``, ``identity_consistency`` and
``face_detection_rate``. One interface, ``embed(images) -> (n, d) float32 rows, NaN where no face``:

- ``FaceIdentityScorer``: the face stack (``namespace.faces``) on real images: a NaN row where it detects no face.
- ``JudgeIdentityScorer``: the miniature world's identity judge. The judge has no face detector, so no row is ever
  NaN and ``detects_faces`` is False: its detection rate is 1 by construction and must be reported as not measured.
  A threshold on the judge's cosine to known people would measure recognition, not detection, and would drop
  exactly the images that look least like anyone, flattering the similarity; keeping every image instead means a
  method that loses the face is penalised where it matters, by a low cosine in ``reference_similarity``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from namespace.faces import FaceConfig, FaceEmbedder, load_face_embedder
from namespace.miniature import IdentityJudge


class IdentityScorer(Protocol):
    """What the evaluation needs of an identity model."""

    detects_faces: bool  # False: ``embed`` never writes NaN rows, and a detection rate means nothing
    dim: int  # d, the width of its rows
    same_person_threshold: float  # the cosine at and above which two rows are one person

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, d) float32 unit rows, one per image; NaN rows where no face is found."""
        ...


class FaceIdentityScorer:
    """The face stack's largest face per image, embedded (dlib ResNet 128-d by default).

    Args:
        face: a ``FaceConfig`` (the stack is loaded here: ``magicnaming[faces]``), or a loaded ``FaceEmbedder``.
        batch_size: images decoded and embedded at a time.
    """

    detects_faces = True

    def __init__(self, face: FaceConfig | FaceEmbedder | None = None, batch_size: int = 32) -> None:
        self.embedder = face if isinstance(face, FaceEmbedder) else load_face_embedder(face or FaceConfig())
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        return self.embedder.dim

    @property
    def same_person_threshold(self) -> float:
        return self.embedder.same_person_threshold

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, d) float32 unit rows; NaN where the face stack finds no face (its ``analyse`` says why)."""
        return self.embedder.embed(list(images), batch_size=self.batch_size)


class JudgeIdentityScorer:
    """The miniature world's identity judge (a small CNN trained on synthetic people outside every sample).

    Every image counts as showing a face (see the module docstring for why), so rows are never NaN.

    Args:
        world: a miniature world folder (its ``judge/``), or a loaded ``IdentityJudge``.
    """

    detects_faces = False

    def __init__(self, world: str | os.PathLike | IdentityJudge) -> None:
        if isinstance(world, IdentityJudge):
            self.judge = world
        else:
            folder = Path(world) / "judge"
            if not folder.is_dir():
                raise FileNotFoundError(f"world: expected a miniature world folder with judge/, got {world}")
            self.judge = IdentityJudge.load(folder)

    @property
    def dim(self) -> int:
        return self.judge.config.net.dim

    @property
    def same_person_threshold(self) -> float:
        return self.judge.same_person_threshold

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, d) float32 unit rows of the judge, one per image (resized to its input side); never NaN."""
        return self.judge.embed(list(images)).numpy().astype(np.float32)


__all__ = ["FaceIdentityScorer", "IdentityScorer", "JudgeIdentityScorer"]
