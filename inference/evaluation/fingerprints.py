"""Content fingerprints of what an evaluation image depends on: the encoder's weights and a person's references.

An earlier image is reused only if the settings written beside it match; paths alone are not enough (an encoder
re-exported into the same folder, other photos in the same reference folder), so the settings hold these hashes.
The towers are frozen and named by the encoder's config (model and pretrained tag or path), which the encoder's
hash covers; their weights are not hashed.
"""

from __future__ import annotations

import hashlib
import json

import torch
from PIL import Image


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of named tensors: each name, dtype, shape and raw bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def encoder_sha256(encoder) -> str:
    """SHA-256 of a ``NameEncoder``: its config and its exported state (head weights, statistics, δ)."""
    config = json.dumps(encoder.config.to_dict(), sort_keys=True)
    return hashlib.sha256(f"{config};{tensors_sha256(encoder.exported_state())}".encode()).hexdigest()


def images_sha256(images: list[Image.Image]) -> str:
    """SHA-256 of decoded images, in order: each one's mode, size and pixels (not the file's bytes)."""
    digest = hashlib.sha256()
    for image in images:
        digest.update(f"{image.mode}:{image.size};".encode())
        digest.update(image.tobytes())
    return digest.hexdigest()


__all__ = ["encoder_sha256", "images_sha256", "tensors_sha256"]
