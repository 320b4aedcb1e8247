"""Identity scorers: generated images → identity rows for ``reference_similarity``, ``identity_consistency`` and
``face_detection_rate``. One interface, ``embed(images) -> (n, d) float32 rows, NaN where no face``:

- ``FaceIdentityScorer``: the face stack (``namespace.faces``) on real images: a NaN row where it detects no face.
- ``JudgeIdentityScorer``: the miniature world's identity judge, with the person head of the world's attribute
  detector as its face detector: a NaN row where the head sees no person, as the face stack's where it finds no
  face. Detection is the detector's separate head, trained on photos with and without a person, not a threshold on
  the judge's cosine to known people: that would measure recognition, and would drop exactly the images that look
  least like anyone, flattering the similarity. Worlds built before the person head existed have no detector for
  it: there no row is NaN and ``detects_faces`` is False (the detection rate is 1 by construction and must be
  reported as not measured); a method that loses the face is then penalised only by a low cosine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from namespace.faces import FaceConfig, FaceEmbedder, load_face_embedder
from namespace.miniature import AttributeDetector, IdentityJudge


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
    """The miniature world's identity judge (a small CNN trained on synthetic people outside every sample), its
    attribute detector's person head deciding which images show a person.

    Args:
        world: a miniature world folder (its ``judge/`` and, when there, ``detectors/``), or a loaded
            ``IdentityJudge``.
        detector: the world's ``AttributeDetector``; None: a world folder's ``detectors/`` when there, else (and
            with a loaded judge) no face detection.

    Attributes:
        detects_faces: True when the detector has a person head (worlds built since it exists): ``embed`` then
            writes NaN rows for images without a person. False: every image counts as showing one.
    """

    def __init__(self, world: str | os.PathLike | IdentityJudge, detector: AttributeDetector | None = None) -> None:
        if isinstance(world, IdentityJudge):
            self.judge = world
        else:
            folder = Path(world) / "judge"
            if not folder.is_dir():
                raise FileNotFoundError(f"world: expected a miniature world folder with judge/, got {world}")
            self.judge = IdentityJudge.load(folder)
            if detector is None and (Path(world) / "detectors").is_dir():
                detector = AttributeDetector.load(Path(world) / "detectors")
        self.detector = detector
        self.detects_faces = detector is not None and detector.has_person_head

    @property
    def dim(self) -> int:
        return self.judge.config.net.dim

    @property
    def same_person_threshold(self) -> float:
        return self.judge.same_person_threshold

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, d) float32 unit rows of the judge, one per image (resized to its input side); a NaN row where the
        detector's person head sees no person (never, when ``detects_faces`` is False)."""
        images = list(images)
        rows = self.judge.embed(images).numpy().astype(np.float32)  # (n, d)
        if self.detects_faces:
            rows[~np.array(self.detector.shows_person(images))] = np.nan
        return rows


__all__ = ["FaceIdentityScorer", "IdentityScorer", "JudgeIdentityScorer"]
