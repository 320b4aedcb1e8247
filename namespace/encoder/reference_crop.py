"""Cropping reference photos to their face before the CLIP towers (``NameEncoderConfig.reference_crop``).

One step for the three paths that feed the towers: the feature cache (``data_pipeline/features.py``), streaming
training (``train/streaming_data.py``, before augmentation) and inference (``NameEncoder.image_features``), so an
encoder sees at inference the crops it was trained on. The crop itself is ``namespace.faces.crop_to_face``; the face
stack is the default one (dlib, HOG detector), loaded once per process and only when a crop is asked for.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import torch
from PIL import Image
from torchvision.transforms.functional import to_pil_image

from ..faces import CROP_MODES, CropMode, Face, FaceEmbedder, crop_to_face, face_stack_installed, load_face_embedder
from ..faces.packages import PACKAGES, require

# a second face at least this share of the largest one's area makes a reference ambiguous (a group photo); smaller
# faces (people in the background) do not
COMPARABLE_FACE_AREA = 0.5


def check_crop_mode(mode: str, argument: str = "reference_crop") -> None:
    """Raises ValueError naming ``argument`` unless ``mode`` is none, loose or aligned."""
    if mode not in CROP_MODES:
        raise ValueError(f"{argument}: expected one of {', '.join(CROP_MODES)}, got {mode!r}")


def check_face_stack(mode: str, argument: str = "reference_crop") -> None:
    """Cheap (imports only): raises FaceStackMissing naming ``argument`` and the extra when ``mode`` crops and the
    face stack is not installed."""
    if mode != "none":
        for module in PACKAGES:
            require(module, f"{argument}={mode!r}")


@functools.cache
def face_stack() -> FaceEmbedder:
    """The default face stack, loaded once per process (about 2 s; its models take ~30 MB)."""
    return load_face_embedder()


def crop_references(
    images: Sequence[Image.Image | torch.Tensor], mode: CropMode, argument: str = "reference_crop"
) -> list[Image.Image | torch.Tensor]:
    """Each image cropped to its largest face (``crop_to_face``); ``none`` returns the images as they are.

    Args:
        images: RGB PIL images or (3, H, W) tensors in [0, 1]; a tensor becomes a PIL image for the crop (8 bits).
        mode: none, loose or aligned. An image without a face is kept whole.
        argument: how the caller's user names the mode, for errors.

    Memory: one cropped copy per image (no larger than the image).
    """
    check_crop_mode(mode, argument)
    if mode == "none":
        return list(images)
    check_face_stack(mode, argument)
    faces = face_stack()
    return [crop_to_face(_as_pil(image), mode, faces) for image in images]


def checked_references(
    images: Sequence[Image.Image | torch.Tensor], mode: CropMode, argument: str = "images", warn: bool = True
) -> list[Image.Image | torch.Tensor]:
    """Inference's references: each checked for faces and cropped by ``mode``, with one detection per image.

    With the face stack installed, a ``UserWarning`` names each reference with no face, or with several faces of
    comparable size (the second at least ``COMPARABLE_FACE_AREA`` of the largest's area; ``warn=False``: none).
    Without it nothing is checked, and a crop other than ``none`` raises FaceStackMissing naming the extra.
    """
    check_crop_mode(mode, "crop")
    if not face_stack_installed():
        check_face_stack(mode, "crop")
        return list(images)
    faces = face_stack()
    checked = []
    for index, image in enumerate(images):
        picture = _as_pil(image)
        found = faces.detect(picture)
        problem = reference_problem(found, mode, faces.description) if warn else None
        if problem:
            warnings.warn(f"{argument}[{index}]: {problem}", UserWarning, stacklevel=4)  # the user's call
        checked.append(image if mode == "none" else crop_to_face(picture, mode, faces, found=found))
    return checked


def reference_problem(found: list[Face], mode: CropMode, detector: str) -> str | None:
    """What is wrong with a reference whose faces (largest first) are ``found``, or None."""
    if not found:
        return f"no face found ({detector}); the whole image is used"
    if len(found) > 1 and found[1].area >= COMPARABLE_FACE_AREA * found[0].area:
        if mode == "none":
            return f"{len(found)} faces found; the encoder sees them all (crop='loose' or 'aligned' uses the largest)"
        return f"{len(found)} faces found; the largest is used"
    return None


def _as_pil(image: Image.Image | torch.Tensor) -> Image.Image:
    return image if isinstance(image, Image.Image) else to_pil_image(image.detach().float().clamp(0, 1).cpu())
