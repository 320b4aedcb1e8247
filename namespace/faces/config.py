"""Face stack settings: a plain, YAML-friendly dataclass (``clean.face`` in the data configs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Backend = Literal["dlib", "insightface"]
Detector = Literal["hog", "cnn"]

# dlib's ResNet (128-d, unit-normalised here): the cosine between the closest pair of different people and the
# farthest pair of the same person, measured on the real photos of the face_recognition 1.3.0 sdist (Obama: 5
# photos + a 32-bit copy, Biden: 1; HOG detector, upsample 1, detection side 640): same person ≥ 0.950, different
# people ≤ 0.829. The shipped threshold is the midpoint, rounded; tests/test_faces.py recomputes both and checks
# that it still separates them.
DLIB_SAME_PERSON_THRESHOLD = 0.89
# insightface buffalo_l (ArcFace, 512-d): NOT calibrated here (its models cannot be fetched offline and are for
# non-commercial research only). 0.4 is a commonly used ArcFace verification cosine; calibrate on your own photos
# (``calibrate_same_person_threshold``) and set ``same_person_threshold``.
INSIGHTFACE_SAME_PERSON_THRESHOLD = 0.4


@dataclass
class FaceConfig:
    """Which face stack, and how it looks for faces.

    Attributes:
        backend: ``dlib`` (default: offline, CPU, Boost-licensed code with CC0 models) or ``insightface`` (its models
            are for non-commercial research only; give ``model_root``).
        detector: dlib's detector: ``hog`` (fast on a CPU, frontal faces of at least ~40 px after upsampling) or
            ``cnn`` (dlib's MMOD CNN: finds turned and smaller faces, ~50-100× slower on a CPU).
        upsample: times the detection image is upsampled by 2 before detection (finds faces half as large, costs 4×).
        detection_side: images whose longer side exceeds this are downscaled for detection only (landmarks and
            embeddings use the full image): detection cost stays flat for large photos.
        same_person_threshold: cosine of two face embeddings at and above which they are taken as one person
            (None: the backend's calibrated value, see ``config.py``).
        model_root: insightface only: the folder holding ``models/<model_name>/*.onnx``.
        model_name: insightface only: the model pack (``buffalo_l``).
        providers: insightface only: onnxruntime execution providers.
    """

    backend: Backend = "dlib"
    detector: Detector = "hog"
    upsample: int = 1
    detection_side: int = 640
    same_person_threshold: float | None = None
    model_root: str | None = None
    model_name: str = "buffalo_l"
    providers: list[str] = field(default_factory=lambda: ["CPUExecutionProvider"])

    def __post_init__(self) -> None:
        problems = []
        if self.backend not in ("dlib", "insightface"):
            problems.append(f"backend: expected dlib or insightface, got {self.backend!r}")
        if self.detector not in ("hog", "cnn"):
            problems.append(f"detector: expected hog or cnn, got {self.detector!r}")
        if not isinstance(self.upsample, int) or not 0 <= self.upsample <= 3:
            problems.append(f"upsample: expected 0, 1, 2 or 3, got {self.upsample!r}")
        if self.detection_side < 64:
            problems.append(f"detection_side: expected at least 64 pixels, got {self.detection_side}")
        if self.same_person_threshold is not None and not -1.0 <= self.same_person_threshold <= 1.0:
            problems.append(f"same_person_threshold: expected a cosine in [-1, 1], got {self.same_person_threshold}")
        if problems:
            raise ValueError("invalid face config:\n  " + "\n  ".join(problems))

    @property
    def threshold(self) -> float:
        """The same-person cosine in use: the configured one or the backend's calibrated default."""
        if self.same_person_threshold is not None:
            return float(self.same_person_threshold)
        return DLIB_SAME_PERSON_THRESHOLD if self.backend == "dlib" else INSIGHTFACE_SAME_PERSON_THRESHOLD
