"""Loading a pipeline and an encoder for the command line: a Hub id or a local folder, dtype and device."""

from __future__ import annotations

import warnings
from typing import Literal

import torch

from namespace import NameEncoder
from namespace.encoder.towers import DTYPES

Task = Literal["text2img", "img2img", "inpaint"]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_pipeline(pipeline: str, task: Task = "text2img", dtype: str = "auto", device: str = "auto"):
    """Loads an SDXL-family pipeline (Hub id or folder) for ``task``; ``auto`` dtype is fp16 on GPU, fp32 on CPU."""
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, AutoPipelineForText2Image

    loaders = {"text2img": AutoPipelineForText2Image, "img2img": AutoPipelineForImage2Image}
    loaders["inpaint"] = AutoPipelineForInpainting
    if task not in loaders:
        raise ValueError(f"task: expected one of {', '.join(loaders)}, got {task!r}")
    target = resolve_device(device)
    if dtype != "auto" and dtype not in DTYPES:
        raise ValueError(f"dtype: expected auto, {', '.join(DTYPES)}, got {dtype!r}")
    torch_dtype = DTYPES[dtype] if dtype != "auto" else torch.float16 if target.type == "cuda" else torch.float32
    with warnings.catch_warnings():
        # recent diffusers renamed torch_dtype to dtype; older releases know only torch_dtype
        warnings.filterwarnings("ignore", message=".*torch_dtype.* is deprecated", category=FutureWarning)
        pipe = loaders[task].from_pretrained(pipeline, torch_dtype=torch_dtype)
    return pipe.to(target)


def load_encoder(encoder: str, device: str = "auto") -> NameEncoder:
    """Loads a name-encoder folder or Hub id onto ``device``."""
    return NameEncoder.from_pretrained(encoder).to(resolve_device(device)).eval()
