"""One resolver for the model names the commands and configs take, and the loading of what they name.

A pipeline name (``--pipeline``, a data config's ``probe.pipeline``) is one of:

- ``tiny``: the offline tiny SDXL pipeline of ``namespace.synthetic`` (random weights: noise images, for tests);
- ``miniature``: the default miniature world's pipeline (``namespace.miniature``; built once and cached);
- a miniature world's folder (it holds ``world.json`` and ``pipeline/``): that world's pipeline (and its judge);
- a local diffusers pipeline folder (with ``model_index.json``), or a Hub id ``owner/name``;
- a local single-file checkpoint ``*.safetensors`` (a community SDXL checkpoint in the original layout), loaded with
  the configs of a pipeline folder or Hub id (``--pipeline_config``; ``parse_pipeline_config``) or, without one, of the
  repository diffusers infers for it. Pickled single files (``.ckpt``, ``.pt``, ``.pth``, ``.bin``) are refused: nothing
  untrusted is unpickled.

An encoder name (``--encoder``) is ``tiny`` (the tiny encoder, for the tiny pipeline), a name-encoder folder (with
``config.json``) or a Hub id. An embedder name ``judge:FOLDER`` is a miniature world's identity judge.
``parse_pipeline`` and ``parse_encoder`` are cheap (they read no weights and build nothing), so commands run them
with their other input checks before anything loads; ``load_pipeline`` and ``load_encoder`` load.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from namespace.encoder.model import CONFIG_NAME, HUB_ID
from namespace.encoder.towers import DTYPES
from namespace.progress import library_progress_bars_off

TINY = "tiny"
MINIATURE = "miniature"
JUDGE_PREFIX = "judge:"
PIPELINE_INDEX = "model_index.json"
WORLD_FILE = "world.json"  # a miniature world's folder holds it (namespace.miniature.world)
SINGLE_FILE_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
Kind = Literal["tiny", "miniature", "world", "folder", "hub", "file"]
Task = Literal["text2img", "img2img", "inpaint"]


def is_local(value: str) -> bool:
    """Whether a ``--encoder``/``--pipeline`` value means a local folder rather than a Hub id ``owner/name``.

    A value is local if it exists, is not of the form ``owner/name``, or its first part is an existing folder
    (``models/sdxl`` with a ``models/`` folder here is a typo'd path, not a Hub repository of a user ``models``).
    """
    path = Path(value).expanduser()
    return path.exists() or not HUB_ID.fullmatch(value) or path.parent.is_dir()


@dataclass(frozen=True)
class ModelName:
    """A model as the user named it (``text``, given as ``argument``), of a known ``kind``; nothing loaded."""

    text: str
    kind: Kind
    argument: str

    def world(self, build: bool = True) -> Path | None:
        """The miniature world folder this name means (``miniature``: the default world, built with progress when
        ``build`` and not cached yet, else ``FileNotFoundError``), or None for other kinds."""
        if self.kind == "world":
            return Path(self.text).expanduser()
        if self.kind != MINIATURE:
            return None
        from namespace.miniature.world import MiniatureWorldConfig, default_cache_root, miniature_world

        if build:
            return miniature_world()
        folder = default_cache_root() / MiniatureWorldConfig().key()
        if not (folder / WORLD_FILE).is_file():
            raise FileNotFoundError(
                f"{self.argument} {MINIATURE}: the miniature world is not built yet ({folder}); "
                "`magicnaming miniature build` or `magicnaming demo` builds it"
            )
        return folder

    def location(self, build: bool = True) -> str:
        """What ``from_pretrained`` reads: the folder or Hub id (a world's ``pipeline/``; ``tiny`` has none)."""
        world = self.world(build)
        return str(world / "pipeline") if world is not None else self.text


def parse_pipeline(text: str, argument: str = "--pipeline") -> ModelName:
    """A pipeline name, checked without loading: a local folder must hold ``model_index.json`` or be a miniature
    world, a single file must exist and be ``.safetensors`` (a pickle is refused); Hub ids are checked when they
    load."""
    if not isinstance(text, str) or not text:
        raise ValueError(
            f"{argument}: expected {TINY}, {MINIATURE}, a pipeline or miniature-world folder, a Hub id or a "
            f"{SINGLE_FILE_SUFFIX} file, got {text!r}"
        )
    if text in (TINY, MINIATURE):
        return ModelName(text, text, argument)
    suffix = "" if Path(text).expanduser().is_dir() else Path(text).suffix.lower()  # a single file, by its name
    if suffix in PICKLE_SUFFIXES:
        raise ValueError(
            f"{argument}: {text!r} is a pickled checkpoint ({suffix}), which can run code when loaded; MagicNaming "
            f"loads single files only as {SINGLE_FILE_SUFFIX} (convert it where you trust it, or get the "
            f"{SINGLE_FILE_SUFFIX} release)"
        )
    if suffix == SINGLE_FILE_SUFFIX:
        if not Path(text).expanduser().is_file():
            raise FileNotFoundError(f"{argument}: the single-file checkpoint {text!r} does not exist")
        return ModelName(text, "file", argument)
    if not is_local(text):
        return ModelName(text, "hub", argument)
    folder = Path(text).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{argument}: {text!r} is not a folder (nor a Hub id of the form owner/name)")
    if (folder / WORLD_FILE).is_file():
        return ModelName(text, "world", argument)
    if not (folder / PIPELINE_INDEX).is_file():
        raise FileNotFoundError(f"{argument}: {text!r} has no {PIPELINE_INDEX} (not a diffusers pipeline folder)")
    return ModelName(text, "folder", argument)


def parse_pipeline_config(
    config: str | None, pipeline: ModelName | None, argument: str = "--pipeline_config"
) -> str | None:
    """The configs a single-file ``pipeline`` is loaded with, checked without loading: None (diffusers infers them),
    a local pipeline folder with ``model_index.json``, or a Hub id. Refused for a ``pipeline`` that is not a single
    file; ``pipeline`` None (its own check failed) checks ``config`` alone."""
    if config is None:
        return None
    if not isinstance(config, str) or not config:
        raise ValueError(f"{argument}: expected a diffusers pipeline folder or a Hub id, got {config!r}")
    if pipeline is not None and pipeline.kind != "file":
        raise ValueError(
            f"{argument}: describes a single-file {pipeline.argument} (*{SINGLE_FILE_SUFFIX}), got "
            f"{pipeline.argument} {pipeline.text!r} ({pipeline.kind}), which brings its own configs"
        )
    if not is_local(config):
        return config
    folder = Path(config).expanduser()
    if not (folder / PIPELINE_INDEX).is_file():
        what = "has no" if folder.is_dir() else "is not a folder with"
        raise FileNotFoundError(f"{argument}: {config!r} {what} {PIPELINE_INDEX} (not a diffusers pipeline folder)")
    return str(folder)


def parse_encoder(text: str, argument: str = "--encoder") -> ModelName:
    """An encoder name, checked without loading: a local folder must hold the encoder's ``config.json``."""
    if text == TINY:
        return ModelName(text, TINY, argument)
    if not isinstance(text, str) or not text:
        raise ValueError(f"{argument}: expected {TINY}, a name-encoder folder or a Hub id, got {text!r}")
    if not is_local(text):
        return ModelName(text, "hub", argument)
    folder = Path(text).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{argument}: {text!r} is not a folder (nor a Hub id of the form owner/name)")
    if not (folder / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{argument}: {text!r} has no {CONFIG_NAME} (not an encoder folder)")
    return ModelName(text, "folder", argument)


def judge_folder(text: str) -> Path | None:
    """The folder of an embedder name ``judge:FOLDER`` (a miniature world's judge), else None."""
    if not text.startswith(JUDGE_PREFIX):
        return None
    folder = text.removeprefix(JUDGE_PREFIX)
    if not folder:
        raise ValueError(f"embedder: expected judge:FOLDER (a miniature world's judge folder), got {text!r}")
    return Path(folder).expanduser()


def resolve_device(device: str, argument: str = "--device") -> torch.device:
    """``auto`` is CUDA when there is one, else the CPU; otherwise any device torch can parse."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"{argument}: expected auto, cpu, cuda, cuda:1, ..., got {device!r}") from error


def resolve_dtype(dtype: str, device: torch.device, argument: str = "--dtype") -> torch.dtype:
    """``auto`` is fp16 on GPU and fp32 on CPU; otherwise one of ``DTYPES``."""
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"{argument}: expected auto, {', '.join(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def _pipeline_classes() -> dict[str, type]:
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, AutoPipelineForText2Image

    return {"text2img": AutoPipelineForText2Image, "img2img": AutoPipelineForImage2Image,
            "inpaint": AutoPipelineForInpainting}  # fmt: skip


def load_pipeline(
    name: str | ModelName,
    task: Task = "text2img",
    dtype: str = "auto",
    device: str = "auto",
    text_only: bool = False,
    config: str | None = None,
):
    """Loads the pipeline ``name`` names for ``task``, its per-step progress bar turned off.

    ``text_only`` skips the UNet and the VAE (for the text encoders alone). The miniature world is built first if
    ``name`` is ``miniature`` and it is not cached yet. A single file (``*.safetensors``) is read by the SDXL pipeline's
    ``from_single_file`` with the configs of ``config`` (a pipeline folder or Hub id; None: the repository diffusers
    infers for the checkpoint, from the local Hub cache when offline), then made the ``task``'s pipeline as ``tiny``
    is. Memory: the pipeline (about 7 GB in fp16 for SDXL).
    """
    name = parse_pipeline(name) if isinstance(name, str) else name
    config = parse_pipeline_config(config, name)
    classes = _pipeline_classes()
    if task not in classes:
        raise ValueError(f"--task: expected one of {', '.join(classes)}, got {task!r}")
    target = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, target)
    if name.kind == TINY:
        from namespace.synthetic import tiny_sdxl_pipeline

        pipe = tiny_sdxl_pipeline(seed=0)  # float32
        pipe = pipe if torch_dtype == torch.float32 else pipe.to(dtype=torch_dtype)
        pipe = pipe if task == "text2img" else classes[task].from_pipe(pipe)
    else:
        skip = {"unet": None, "vae": None} if text_only else {}
        with warnings.catch_warnings(), library_progress_bars_off():  # the commands print their own progress
            # recent diffusers renamed torch_dtype to dtype; older releases know only torch_dtype
            warnings.filterwarnings("ignore", message=".*torch_dtype.* is deprecated", category=FutureWarning)
            if name.kind == "file":
                pipe = _load_single_file(name, config, torch_dtype, skip)
                pipe = pipe if task == "text2img" else classes[task].from_pipe(pipe)
            else:
                pipe = classes[task].from_pretrained(name.location(), torch_dtype=torch_dtype, **skip)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(target)


def _load_single_file(name: ModelName, config: str | None, torch_dtype: torch.dtype, skip: dict):
    """A single-file SDXL checkpoint as a text-to-image pipeline; without ``config``, a missing Hub cache of the
    repository diffusers infers is reported with the option that gives the configs instead."""
    from diffusers import StableDiffusionXLPipeline
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return StableDiffusionXLPipeline.from_single_file(name.text, config=config, torch_dtype=torch_dtype, **skip)
    except LocalEntryNotFoundError as error:
        if config is not None:
            raise
        raise FileNotFoundError(
            f"{name.argument} {name.text}: diffusers needs the configs of the repository it infers for this "
            f"checkpoint, which are not in the local Hub cache ({error}); give --pipeline_config, a diffusers "
            "pipeline folder (offline) or Hub id whose configs describe the checkpoint"
        ) from error


def load_encoder(name: str | ModelName, device: str = "auto", pipe: object | None = None, load_towers: bool = True):
    """Loads the name encoder ``name`` names onto ``device`` in eval mode; ``tiny`` is the tiny encoder matched to
    ``pipe`` (default: the tiny pipeline, built). Memory: the encoder (about 2.7 GB in fp32 with its two CLIP
    towers)."""
    name = parse_encoder(name) if isinstance(name, str) else name
    if name.kind == TINY:
        from namespace.synthetic import tiny_name_encoder, tiny_sdxl_pipeline

        model = tiny_name_encoder(pipe or tiny_sdxl_pipeline(seed=0), load_towers=load_towers)
    else:
        from namespace.encoder import NameEncoder

        model = NameEncoder.from_pretrained(name.text, load_towers=load_towers)
    return model.to(resolve_device(device)).eval()
