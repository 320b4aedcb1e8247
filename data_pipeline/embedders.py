"""Identity and duplicate embedders for cleaning: images → L2-normalised (n, d) float32 arrays.

``clip`` (the default) reuses the feature cache: each tower's embedding L2-normalised, concatenated, normalised.
Any callable ``embed(images: list[PIL.Image]) -> np.ndarray`` can be dropped in by import path
(``"package.module:function"``), e.g. a face-recognition model. Two pixel embedders serve the embedded sample,
whose tiny random CLIP towers cannot tell people apart: ``thumbnail`` (a 16×16 colour thumbnail, for near
duplicates) and ``face_colors`` (hue–saturation histogram of the image centre: the synthetic people's identity).
``judge:FOLDER`` is a miniature world's identity judge (``namespace.miniature``), with its calibrated
``same_person_threshold``. ``face`` is the face stack (``namespace.faces``, the clean config's ``face`` settings):
each photo's largest face, NaN rows where none is found, the backend's calibrated ``same_person_threshold``.

A ``"module:function"`` name imports that module and runs its code: a data config that names one is code, so build
only with configs you trust. The names come from the data config only (``clean.identity_embedder``,
``clean.duplicate_embedder``, ``probe.embedder``); nothing the app, a story or an LLM answer supplies reaches here.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from namespace.faces import FaceConfig
from namespace.model_names import judge_folder


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def clip_features(tower_features: list[np.ndarray]) -> np.ndarray:
    """Cached tower features ((n, E_i) each) → (n, ΣE_i) normalised identity embeddings."""
    return l2_normalise(np.concatenate([l2_normalise(f) for f in tower_features], axis=1))


def clip_embeddings(tower_features: list[np.ndarray], path: Path, batch_rows: int = 65536) -> np.ndarray:
    """``clip_features`` of a whole feature cache, ``batch_rows`` rows at a time, into the ``.npy`` file ``path``.

    Memory: one batch of rows (ΣE_i float32 each); the (n, ΣE_i) result is written through a memory map and
    returned as a read-only one. Each row is normalised on its own, so the rows equal ``clip_features``' exactly.
    """
    rows, width = tower_features[0].shape[0], sum(f.shape[1] for f in tower_features)
    output = np.lib.format.open_memmap(path, "w+", np.float32, (rows, width))
    for start in range(0, rows, batch_rows):
        output[start : start + batch_rows] = clip_features([f[start : start + batch_rows] for f in tower_features])
    output.flush()
    del output
    return np.load(path, mmap_mode="r", allow_pickle=False)


def thumbnail(images: list[Image.Image], side: int = 16) -> np.ndarray:
    """Mean-centred colour thumbnails: re-encoded or resized copies of one photo stay above 0.99 cosine."""
    vectors = []
    for image in images:
        pixels = np.asarray(image.convert("RGB").resize((side, side), Image.BILINEAR), dtype=np.float32).ravel()
        vectors.append(pixels - pixels.mean())
    return l2_normalise(np.stack(vectors))


def face_colors(images: list[Image.Image], hue_bins: int = 12, saturation_bins: int = 4) -> np.ndarray:
    """Hue–saturation histogram (square-rooted) of the central 40% of each image."""
    vectors = []
    for image in images:
        width, height = image.size
        centre = image.convert("RGB").crop((0.3 * width, 0.3 * height, 0.7 * width, 0.7 * height)).convert("HSV")
        pixels = np.asarray(centre, dtype=np.float64).reshape(-1, 3)
        histogram, _ = np.histogramdd(pixels[:, :2], bins=(hue_bins, saturation_bins), range=((0, 256), (0, 256)))
        vectors.append(np.sqrt(histogram.ravel()))
    return l2_normalise(np.stack(vectors))


PIXEL_EMBEDDERS: dict[str, Callable[[list[Image.Image]], np.ndarray]] = {
    "thumbnail": thumbnail,
    "face_colors": face_colors,
}


@functools.lru_cache(maxsize=4)
def judge_embedder(folder: str) -> Callable[[list[Image.Image]], np.ndarray]:
    """A miniature world's identity judge as an embedder; ``.same_person_threshold`` is its calibrated threshold."""
    from namespace.miniature.judge import IdentityJudge

    judge = IdentityJudge.load(folder)

    def embed(images: list[Image.Image]) -> np.ndarray:
        return judge.embed(list(images)).numpy()

    embed.same_person_threshold = judge.same_person_threshold
    return embed


def face_embedder(config: FaceConfig | None = None) -> Callable[[list[Image.Image]], np.ndarray]:
    """The face stack as an embedder: images → (n, d) unit rows of each largest face, NaN rows where none is found.

    ``.same_person_threshold`` is the config's threshold; ``.faces`` is the FaceEmbedder (its ``analyse`` gives the
    per-photo faces too). Loaded once per distinct config.
    """
    return _face_embedder(json.dumps(asdict(config or FaceConfig()), sort_keys=True))


@functools.lru_cache(maxsize=2)
def _face_embedder(settings: str) -> Callable[[list[Image.Image]], np.ndarray]:
    from namespace.faces import load_face_embedder

    faces = load_face_embedder(FaceConfig(**json.loads(settings)))

    def embed(images: list[Image.Image]) -> np.ndarray:
        return faces.embed(list(images))

    embed.same_person_threshold = faces.same_person_threshold
    embed.faces = faces
    return embed


def resolve_embedder(name: str, face: FaceConfig | None = None) -> Callable[[list[Image.Image]], np.ndarray] | None:
    """``"clip"`` → None (use the feature cache); ``"face"`` (the face stack with ``face``'s settings); a built-in
    pixel embedder; ``"judge:FOLDER"`` (a judge's config.json and safetensors: no code); or ``"module:function"``,
    which imports and runs that module (a config that names one is code: the module's docstring)."""
    if name == "clip":
        return None
    if name == "face":
        return face_embedder(face)
    if name in PIXEL_EMBEDDERS:
        return PIXEL_EMBEDDERS[name]
    folder = judge_folder(name)
    if folder is not None:
        return judge_embedder(str(folder))
    module, _, function = name.partition(":")
    if not module or not function:
        raise ValueError(
            f"embedder: expected 'clip', 'face', {', '.join(PIXEL_EMBEDDERS)}, 'judge:FOLDER' or 'module:function', "
            f"got {name!r}"
        )
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"embedder: cannot import {name!r} ({error})") from error


def calibrated_threshold(name: str, face: FaceConfig | None = None) -> tuple[float, str] | None:
    """The embedder's own same-person cosine and where it comes from, or None when it has none (clip, the pixel
    embedders). ``face`` reads its config without loading a model."""
    if name == "face":
        face = face or FaceConfig()
        if face.same_person_threshold is not None:
            return face.threshold, "clean.face.same_person_threshold"
        return face.threshold, f"face ({face.backend}) calibrated same_person_threshold (namespace/faces/config.py)"
    calibrated = getattr(resolve_embedder(name, face), "same_person_threshold", None)
    return None if calibrated is None else (float(calibrated), f"{name} same_person_threshold")
