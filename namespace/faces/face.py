"""One detected face: its box, five landmarks and the detector's score."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Face:
    """A face in an image, in that image's pixel coordinates.

    Attributes:
        box: (x0, y0, x1, y1); it may reach past the image's edges when the face is cut off.
        landmarks: (5, 2) x, y points. dlib: the outer and inner corner of each eye, then the base of the nose;
            insightface: the eye centres, the nose tip and the mouth corners.
        score: the detector's confidence (dlib HOG: SVM margin, above 0 for a detection; CNN and insightface: a
            confidence); comparable within one backend and detector only.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def visible_fraction(self, image_size: tuple[int, int]) -> float:
        """The share of the box inside a (width, height) image: 1 for a whole face, less for a cut-off one."""
        width, height = image_size
        x0, y0, x1, y1 = self.box
        inside = max(min(x1, width) - max(x0, 0.0), 0.0) * max(min(y1, height) - max(y0, 0.0), 0.0)
        return inside / self.area if self.area > 0 else 0.0

    def size_fraction(self, image_size: tuple[int, int]) -> float:
        """The face's side (the mean of box width and height) over the image's shorter side."""
        return (self.width + self.height) / 2 / min(image_size)
