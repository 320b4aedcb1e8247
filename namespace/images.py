"""Reading reference images given as PIL images, file paths or tensors, with errors that name the bad input."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import torch
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
ImageInput = Union[Image.Image, str, Path, torch.Tensor]  # noqa: UP007 (a runtime alias, used in isinstance checks)


def as_image_list(
    images: ImageInput | Sequence[ImageInput], argument: str = "images"
) -> list[Image.Image | torch.Tensor]:
    """Turns one image or a sequence of images into a list of RGB PIL images or (3, H, W) float tensors in [0, 1].

    A (B, 3, H, W) tensor counts as B images; a folder path counts as the image files in it, sorted by name. Paths
    are opened and decoded here, so an unreadable file fails now, naming the file, rather than deep inside a model.
    """
    if isinstance(images, (str, Path)) and Path(images).is_dir():
        images = folder_images(Path(images), argument)
    elif isinstance(images, (Image.Image, str, Path)):
        images = [images]
    elif isinstance(images, torch.Tensor):
        images = list(images) if images.ndim == 4 else [images]
    else:
        images = list(images)
    if not images:
        raise ValueError(f"{argument}: expected at least one image, got an empty list")
    return [_one_image(image, f"{argument}[{index}]") for index, image in enumerate(images)]


def folder_images(folder: Path, argument: str = "images") -> list[Path]:
    """The image files directly in ``folder`` (by suffix: .jpg, .png, ...), sorted by name; raises if there are none."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not paths:
        raise ValueError(
            f"{argument}: folder {str(folder)!r} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return paths


def _one_image(image: object, argument: str) -> Image.Image | torch.Tensor:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, Path)):
        return load_image(image, argument)
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
            raise ValueError(
                f"{argument}: expected a float tensor of shape (3, H, W) with values in [0, 1], "
                f"got {image.dtype} of shape {tuple(image.shape)}"
            )
        return image
    raise TypeError(f"{argument}: expected a PIL image, a file path or a (3, H, W) tensor, got {type(image).__name__}")


def load_image(path: str | Path, argument: str = "image") -> Image.Image:
    """Opens and fully decodes an image file as RGB.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming ``argument`` and the file: not an image, truncated, or more pixels than
            ``PIL.Image.MAX_IMAGE_PIXELS`` (PIL's guard against decompression bombs, here an error from that limit on).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{argument}: image file {str(path)!r} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.convert("RGB")  # convert() decodes the whole file: truncated data fails here
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ValueError(_too_large(path, argument, error)) from error
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{argument}: {str(path)!r} is not a readable image file ({error})") from error


def _too_large(path: Path, argument: str, error: Exception) -> str:
    """The message for an image beyond PIL's pixel limit, with its pixel count as PIL's message gives it."""
    count = re.search(r"\((\d+) pixels\)", str(error))
    found = f"{int(count[1]):,} pixels" if count else str(error)
    return (
        f"{argument}: {str(path)!r} is too large: expected at most {Image.MAX_IMAGE_PIXELS:,} pixels "
        f"(PIL.Image.MAX_IMAGE_PIXELS, a guard against decompression bombs), found {found}; downscale it"
    )


def image_grid(rows: Sequence[Sequence[Image.Image]], gap: int = 0) -> Image.Image:
    """Pastes rows of equally sized images into one grid image, ``gap`` white pixels between neighbouring cells."""
    width, height = rows[0][0].size
    columns = max(len(row) for row in rows)
    size = (columns * (width + gap) - gap, len(rows) * (height + gap) - gap)
    grid = Image.new("RGB", size, "white")
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            grid.paste(image, (c * (width + gap), r * (height + gap)))
    return grid


def pil_images(images: Image.Image | Sequence[Image.Image], argument: str, expected: str = "PIL images") -> list:
    """One PIL image or a sequence of them → a list of RGB images; raises naming the first entries that are not."""
    images = [images] if isinstance(images, Image.Image) else list(images)
    if not images:
        raise ValueError(f"{argument}: expected at least one image, got an empty list")
    wrong = [f"{argument}[{i}]: {type(x).__name__}" for i, x in enumerate(images) if not isinstance(x, Image.Image)]
    if wrong:
        raise TypeError(f"expected {expected}, got {', '.join(wrong[:3])}")
    return [image.convert("RGB") for image in images]
