"""Cropping a reference photo to its face before the CLIP towers: one function for every path that feeds them
(the feature cache, streaming training, inference), so training and inference see the same crops.

The paper feeds whole portraits to the towers; ``none`` (no crop) is the default everywhere.
"""

from __future__ import annotations

from typing import Literal

from PIL import Image

from .embedder import FaceEmbedder
from .face import Face

CropMode = Literal["none", "loose", "aligned"]
CROP_MODES: tuple[str, ...] = ("none", "loose", "aligned")
# loose: the face box grown by this share of its side on every side (hair, chin, some shoulders), made square
LOOSE_MARGIN = 0.6
# aligned: the chip's side in pixels (the towers resize it) and dlib's padding around the landmark frame
ALIGNED_SIZE = 448


def crop_to_face(
    image: Image.Image, mode: CropMode, faces: FaceEmbedder | None, found: list[Face] | None = None
) -> Image.Image:
    """The image cropped to its largest face, or the image itself for ``mode="none"`` or when no face is found.

    ``loose``: a square around the face box grown by ``LOOSE_MARGIN`` of its side (clipped to the image);
    ``aligned``: the face stack's aligned chip (upright, eyes level), ``ALIGNED_SIZE`` pixels. ``found``: the faces
    ``faces.detect(image)`` already returned (largest first), so a caller that inspected them does not detect twice.
    """
    if mode == "none":
        return image
    if mode not in CROP_MODES:
        raise ValueError(f"reference_crop: expected one of {', '.join(CROP_MODES)}, got {mode!r}")
    if faces is None:
        raise ValueError(f"reference_crop: {mode!r} needs a face stack, got none")
    found = faces.detect(image) if found is None else found
    if not found:
        return image
    face = found[0]
    if mode == "aligned":
        return faces.align(image, face, ALIGNED_SIZE)
    x0, y0, x1, y1 = face.box
    side = max(face.width, face.height) * (1 + 2 * LOOSE_MARGIN)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = side / 2
    box = (max(cx - half, 0), max(cy - half, 0), min(cx + half, image.width), min(cy + half, image.height))
    return image.crop(tuple(round(v) for v in box))
