"""Loading a pipeline and an encoder for the command line: a Hub id or a local folder, dtype and device.

The commands print one progress line per step themselves, so the libraries' own progress bars (diffusers'
"Loading pipeline components", transformers' "Loading weights", the pipeline's per-step bar) are turned off here:
nested, they leave blank lines in a terminal and carriage-return noise in a log.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch

from namespace import NameEncoder
from namespace.encoder.towers import DTYPES
from namespace.progress import Steps, library_progress_bars_off

from .plugin import MagicNaming

Task = Literal["text2img", "img2img", "inpaint"]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"--device: expected auto, cpu, cuda, cuda:1, ..., got {device!r}") from error


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` is fp16 on GPU and fp32 on CPU; otherwise one of ``DTYPES``."""
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"--dtype: expected auto, {', '.join(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def load_pipeline(pipeline: str, task: Task = "text2img", dtype: str = "auto", device: str = "auto"):
    """Loads an SDXL-family pipeline (Hub id or folder) for ``task``, its per-step progress bar turned off."""
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, AutoPipelineForText2Image

    loaders = {"text2img": AutoPipelineForText2Image, "img2img": AutoPipelineForImage2Image}
    loaders["inpaint"] = AutoPipelineForInpainting
    if task not in loaders:
        raise ValueError(f"--task: expected one of {', '.join(loaders)}, got {task!r}")
    target = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, target)
    with warnings.catch_warnings(), library_progress_bars_off():
        # recent diffusers renamed torch_dtype to dtype; older releases know only torch_dtype
        warnings.filterwarnings("ignore", message=".*torch_dtype.* is deprecated", category=FutureWarning)
        pipe = loaders[task].from_pretrained(pipeline, torch_dtype=torch_dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(target)


def load_encoder(encoder: str, device: str = "auto") -> NameEncoder:
    """Loads a name-encoder folder or Hub id onto ``device``."""
    return NameEncoder.from_pretrained(encoder).to(resolve_device(device)).eval()


def load_naming(
    encoder: str, pipeline: str, steps: Steps, task: Task = "text2img", dtype: str = "auto", device: str = "auto"
) -> MagicNaming:
    """Loads the encoder, then the pipeline, each as a step of ``steps``, into the plugin."""
    steps.start(f"loading the name encoder {encoder}")
    model = load_encoder(encoder, device)
    steps.start(f"loading the pipeline {pipeline}")
    return MagicNaming(load_pipeline(pipeline, task, dtype, device), model)
