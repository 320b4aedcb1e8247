"""Images as the judging models read them: PIL images of any size, or tensors already at the model's size."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from ..images import pil_images

Images = Sequence[Image.Image] | torch.Tensor  # what the judging models take
RANGE_SLACK = 0.05  # a decoder's output may overshoot [-1, 1] a little; anything further is a wrong convention


def as_pixels(images: Images, image_size: int, argument: str = "images") -> torch.Tensor:
    """Turns images into the (B, 3, S, S) float32 tensor in [-1, 1] a judging model takes.

    Args:
        images: a sequence of PIL images (any size and mode: converted to RGB, resized to ``image_size`` with
            LANCZOS) or a (B, 3, S, S) float tensor in [-1, 1] with S = ``image_size``.
        image_size: S, the model's input side.
        argument: the name errors give the input.

    Returns:
        (B, 3, S, S) float32 on the CPU.
    """
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2:] != (image_size, image_size):
            raise ValueError(
                f"{argument}: expected a tensor of shape (B, 3, {image_size}, {image_size}) (this model's image_size; "
                f"pass PIL images to have them resized), got {tuple(images.shape)}"
            )
        if not images.is_floating_point():
            raise ValueError(f"{argument}: expected a float tensor in [-1, 1], got dtype {images.dtype}")
        low, high = images.min().item(), images.max().item()
        if low < -1 - RANGE_SLACK or high > 1 + RANGE_SLACK:
            raise ValueError(f"{argument}: expected values in [-1, 1], got values in [{low:.3g}, {high:.3g}]")
        return images.detach().float().cpu().clamp(-1, 1)
    images = pil_images(images, argument, "PIL images or one (B, 3, S, S) tensor")
    arrays = [np.asarray(_resized(image, image_size), dtype=np.float32) for image in images]
    pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # (B, 3, S, S) in [0, 255]
    return pixels / 127.5 - 1


def _resized(image: Image.Image, image_size: int) -> Image.Image:
    if image.size == (image_size, image_size):
        return image
    return image.resize((image_size, image_size), Image.LANCZOS)
