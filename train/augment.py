"""Photo → (3, S, S) uint8 tensor: a random resized crop and flip for training, a centre crop for validation.

The randomness of each photo comes from (seed, epoch, key) alone, so it does not depend on which worker or rank
reads the photo, and a resumed run crops exactly as an uninterrupted one.
"""

from __future__ import annotations

import math

import torch
from PIL import Image
from torchvision.transforms import functional

from .epoch_plan import epoch_random


def crop_box(
    width: int, height: int, scale: tuple[float, float], ratio: tuple[float, float], random
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop covering ``scale`` of the area with an aspect ratio in ``ratio``
    (log-uniform); a centred crop of the nearest allowed ratio after 10 misses."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * random.uniform(*scale)
        aspect = math.exp(random.uniform(*log_ratio))
        crop_width, crop_height = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            return (
                random.randint(0, height - crop_height),
                random.randint(0, width - crop_width),
                crop_height,
                crop_width,
            )
    aspect = width / height
    if aspect < ratio[0]:
        crop_width, crop_height = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        crop_width, crop_height = round(height * ratio[1]), height
    else:
        crop_width, crop_height = width, height
    return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width


def augment(
    image: Image.Image,
    size: int,
    seed: int,
    epoch: int,
    key: str,
    scale: tuple[float, float] = (0.6, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """Random resized crop to ``size`` × ``size`` and a horizontal flip half of the time → (3, S, S) uint8."""
    random = epoch_random(seed, epoch, key)
    top, left, height, width = crop_box(image.width, image.height, scale, ratio, random)
    image = functional.resized_crop(image, top, left, height, width, [size, size], antialias=True)
    if random.random() < 0.5:
        image = functional.hflip(image)
    return functional.pil_to_tensor(image)


def centre(image: Image.Image, size: int) -> torch.Tensor:
    """Shorter side resized to ``size``, centre crop → (3, S, S) uint8 (validation)."""
    image = functional.resize(image, size, antialias=True)
    return functional.pil_to_tensor(functional.center_crop(image, [size, size]))
