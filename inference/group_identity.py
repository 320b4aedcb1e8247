"""Several people from one photo: one identity per face the face stack finds, numbered from the left.

Each face is cropped as a reference of its own and encoded alone: the encoder's own ``reference_crop`` when it was
trained on crops, else ``loose`` (a square of about 2.2 face sides around the face box; the paper's encoders see
whole portraits, and a loose crop is the nearest thing to a portrait a group photo holds). ``none`` is refused: it
would give every person the whole photo.

Faces whose side (the mean of the box's width and height) is below ``MIN_FACE_SIDE`` pixels are left out with a
warning; a photo with no face, or only such faces, is an error. Files: ``{label}-{k}.safetensors`` (an ordinary
identity file, k = 1 for the leftmost face) and ``{label}-{k}.png`` (the crop the encoder saw) in one folder.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from torchvision.transforms.functional import to_pil_image

from namespace import Identity, NameEncoder
from namespace.faces import CropMode, Face, FaceConfig, FaceEmbedder, crop_to_face, load_face_embedder
from namespace.faces.packages import PACKAGES, require
from namespace.files import atomic_write
from namespace.images import ImageInput, as_image_list, load_image

# dlib's HOG detector (upsample 1) finds faces down to about 37 px. Below 64 px the loose crop (2.2 sides) is under
# 140 px, less than two thirds of the towers' 224-px input: what they see of the person is mostly upsampling blur.
MIN_FACE_SIDE = 64
GROUP_CROPS: tuple[str, ...] = ("loose", "aligned")
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class GroupFace:
    """One person of a group photo.

    Attributes:
        index: 1 for the leftmost face, 2 for the next, ... (by the box's centre).
        box: (x0, y0, x1, y1), the face box in the photo's pixels (rounded, clipped to the photo).
        crop: the face cropped as the encoder saw it, RGB.
        identity: the (N, D) identity encoded from ``crop``, labelled ``{label}-{index}``; its metadata holds
            ``face_index``, ``face_box`` (``"x0,y0,x1,y1"``), ``faces_in_photo`` and ``reference_crop``.
    """

    index: int
    box: tuple[int, int, int, int]
    crop: Image.Image
    identity: Identity


def group_face_stack(face: FaceConfig | None = None) -> FaceEmbedder:
    """The face stack for group photos: the default one (loaded once per process) or one of ``face``'s settings.

    Raises:
        FaceStackMissing: naming the extra to install (``magicnaming[faces]``).
    """
    if face is None or face.backend == "dlib":
        for module in PACKAGES:
            require(module, "finding the people of a group photo")
    if face is None:
        from namespace.encoder.reference_crop import face_stack

        return face_stack()
    return load_face_embedder(face)


def group_crop(crop: CropMode | None, trained: CropMode, argument: str = "crop") -> CropMode:
    """The crop each face gets: ``crop``, or None for the encoder's ``trained`` crop (``loose`` for ``none``)."""
    if crop is None:
        return trained if trained in GROUP_CROPS else "loose"
    if crop not in GROUP_CROPS:
        raise ValueError(
            f"{argument}: expected loose or aligned (each person cropped from the group photo), got {crop!r}"
        )
    if trained in GROUP_CROPS and crop != trained:
        warnings.warn(
            f"{argument}={crop!r}: this encoder was trained on references cropped {trained!r}; other crops give it "
            "inputs it has not seen",
            UserWarning,
            stacklevel=3,
        )
    return crop


def check_group_options(label: str, min_face_side: int, prefix: str = "") -> list[str]:
    """The problems of a label prefix and a minimum face side (``prefix``: ``--`` names them as flags)."""
    problems = []
    if not isinstance(label, str) or not LABEL.fullmatch(label):
        problems.append(
            f"{prefix}label: expected letters, digits, _ or - starting with a letter or digit, got {label!r}"
        )
    if isinstance(min_face_side, bool) or not isinstance(min_face_side, int) or min_face_side < 1:
        problems.append(f"{prefix}min_face_side: expected a positive number of pixels, got {min_face_side!r}")
    return problems


def faces_left_to_right(
    picture: Image.Image, faces: FaceEmbedder, min_face_side: int = MIN_FACE_SIDE, argument: str = "image"
) -> list[Face]:
    """The faces in ``picture`` whose side is at least ``min_face_side`` pixels, ordered by their box's centre from
    the left; smaller ones are left out with a UserWarning naming their sides.

    Raises:
        ValueError: naming ``argument`` when no face is found, or only faces below ``min_face_side``.
    """
    found = faces.detect(picture)
    flags = argument.startswith("--")  # the command line's user: name its flags
    if not found:
        upsample = "--face.upsample 2" if flags else "FaceConfig(upsample=2)"
        raise ValueError(
            f"{argument}: no face found ({faces.description}) in the {picture.width}x{picture.height} photo; faces "
            f"turned away, cut off, or smaller than the detector sees are missed ({upsample} finds faces half as large)"
        )
    option = "--min_face_side" if flags else "min_face_side"
    small = [face for face in found if _side(face) < min_face_side]
    if len(small) == len(found):
        raise ValueError(
            f"{argument}: {len(found)} face(s) found, all smaller than {option}={min_face_side} px (sides "
            f"{_sides(small)} px): too small to encode a person from; use a larger photo or lower {option}"
        )
    if small:
        warnings.warn(
            f"{argument}: {len(small)} of {len(found)} faces left out, smaller than {option}={min_face_side} px "
            f"(sides {_sides(small)} px)",
            UserWarning,
            stacklevel=3,
        )
    kept = [face for face in found if _side(face) >= min_face_side]
    return sorted(kept, key=lambda face: ((face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2))


def encode_faces(
    encoder: NameEncoder,
    picture: Image.Image,
    found: list[Face],
    faces: FaceEmbedder,
    crop: CropMode,
    label: str = "face",
    photo: str = "",
) -> list[GroupFace]:
    """One identity per face of ``found`` (in its order), each encoded from its own crop in one encoder batch.

    Args:
        encoder: the name encoder.
        picture: the RGB group photo.
        found: its faces, ordered (``faces_left_to_right``).
        faces: the face stack that found them (``aligned`` crops are its chips).
        crop: loose or aligned (``group_crop``).
        label: identity k is labelled ``{label}-{k}``.
        photo: the photo's file name, recorded in the metadata (empty: not recorded).

    Returns:
        ``len(found)`` GroupFaces, index 1, 2, ...
    """
    crops = [crop_to_face(picture, crop, faces, found=[face]) for face in found]
    names = encoder.encode(crops, reference_crop="none").cpu()  # (K, N, D): cropped just now
    group = []
    for index, (face, cropped, name) in enumerate(zip(found, crops, names, strict=True), start=1):
        box = _clipped(face.box, picture.size)
        metadata = {"num_references": "1", "reference_crop": crop, "face_index": str(index),
                    "face_box": ",".join(map(str, box)), "faces_in_photo": str(len(found))}  # fmt: skip
        if photo:
            metadata["group_photo"] = photo
        identity = Identity(name, f"{label}-{index}", "images", metadata=metadata)
        group.append(GroupFace(index, box, cropped, identity))
    return group


def group_faces(
    encoder: NameEncoder,
    image: ImageInput,
    crop: CropMode | None = None,
    min_face_side: int = MIN_FACE_SIDE,
    faces: FaceEmbedder | None = None,
    label: str = "face",
    argument: str = "image",
) -> list[GroupFace]:
    """Every person of a group photo, left to right: detect, crop and encode each face.

    Args:
        encoder: the name encoder.
        image: one photo (a PIL image, a file path or a (3, H, W) tensor in [0, 1]).
        crop: loose or aligned (None: the encoder's ``reference_crop``, or loose for an encoder of whole portraits).
        min_face_side: faces whose side is smaller (pixels) are left out with a warning.
        faces: the face stack (None: the default dlib stack, ``group_face_stack``).
        label: identity k is labelled ``{label}-{k}``.
        argument: how the caller's user names the photo, for errors.

    Returns:
        One GroupFace per face, ``index`` 1 for the leftmost.

    Raises:
        FaceStackMissing: the face stack is not installed.
        ValueError: naming ``argument``: no face, or only faces below ``min_face_side``; or a bad option.
    """
    problems = check_group_options(label, min_face_side)
    if problems:
        raise ValueError("; ".join(problems))
    mode = group_crop(crop, encoder.config.reference_crop)
    picture = one_photo(image, argument)
    faces = group_face_stack() if faces is None else faces
    found = faces_left_to_right(picture, faces, min_face_side, argument)
    photo = Path(image).name if isinstance(image, (str, Path)) else ""
    return encode_faces(encoder, picture, found, faces, mode, label, photo)


def one_photo(image: ImageInput, argument: str = "image") -> Image.Image:
    """``image`` decoded as one RGB PIL image; a folder or a batch of several is refused, naming ``argument``."""
    if isinstance(image, (str, Path)) and not Path(image).is_dir():
        return load_image(image, argument)  # named as the user gave it, not as argument[0]
    pictures = as_image_list(image, argument)
    if len(pictures) != 1:
        raise ValueError(f"{argument}: expected one group photo, got {len(pictures)} images")
    picture = pictures[0]
    return picture if isinstance(picture, Image.Image) else to_pil_image(picture.detach().float().clamp(0, 1).cpu())


# -- files -------------------------------------------------------------------------------------------------------------


def group_files(folder: Path, label: str) -> list[Path]:
    """The files of an earlier group of ``label`` in ``folder``: ``{label}-{k}.safetensors`` and ``.png``."""
    if not Path(folder).is_dir():
        return []
    pattern = re.compile(rf"{re.escape(label)}-\d+\.(safetensors|png)")
    return sorted(path for path in Path(folder).glob(f"{label}-*") if pattern.fullmatch(path.name))


def group_output_problems(folder: Path, label: str, overwrite: bool, argument: str = "--output") -> list[str]:
    """Cheap, before any model loads: ``folder`` must be a folder (or not exist yet) holding no earlier group of
    ``label``, unless ``overwrite`` (how many faces there are is known only after detection, so any is refused)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        return [f"{argument}: expected a folder for the identity files, {str(folder)!r} is a file"]
    earlier = group_files(folder, label)
    if earlier and not overwrite:
        names = ", ".join(path.name for path in earlier[:4]) + (", ..." if len(earlier) > 4 else "")
        return [
            f"{argument}: {str(folder)!r} already holds identity files of label {label!r} ({names}); choose another "
            "folder or --label, or pass --overwrite true to replace them"
        ]
    return []


def save_group(group: list[GroupFace], folder: Path, label: str = "face", overwrite: bool = False) -> list[Path]:
    """Writes face k's identity file and crop as ``{label}-{k}.safetensors`` and ``{label}-{k}.png`` into
    ``folder``, each file atomically; returns the identity files. With ``overwrite``, the earlier group's files of
    ``label`` are replaced, all of them (a face beyond this photo's count is removed: the folder never mixes two
    photos); without it they are refused (FileExistsError)."""
    folder = Path(folder)
    problems = group_output_problems(folder, label, overwrite)
    if problems:
        raise FileExistsError(problems[0])
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for face in group:
        path = face.identity.save(folder / f"{label}-{face.index}.safetensors")
        atomic_write(path.with_suffix(".png"), lambda temporary, crop=face.crop: crop.save(temporary, format="PNG"))
        written.append(path)
    kept = {path.name for path in written} | {path.with_suffix(".png").name for path in written}
    for stale in group_files(folder, label):
        if stale.name not in kept:
            stale.unlink(missing_ok=True)
    return written


def _side(face: Face) -> float:
    return (face.width + face.height) / 2


def _sides(found: list[Face]) -> str:
    return ", ".join(str(round(_side(face))) for face in found)


def _clipped(box: tuple[float, float, float, float], size: tuple[int, int]) -> tuple[int, int, int, int]:
    width, height = size
    x0, y0, x1, y1 = (round(value) for value in box)
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
