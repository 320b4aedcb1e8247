"""``build_miniature_world``: a tiny SDXL that knows the cast's "famous" people by name, with its judges.

What it trains (the same diffusers classes and ``encode_prompt`` path as SDXL; only the sizes are small):
- photos: each famous person (cast identities ``0 … famous − 1``, named by ``cast_names(cast_seed)``) in
  ``photos_per_person`` new photos, and ``generic_people`` anonymous people (identities 40000+) captioned "a person",
  each photo with random attributes (scene, emotion, style) its caption names;
- the VAE (pixel-aligned latents, ``autoencoder.py``), then the UNet and, by default, the text encoders
  (``denoiser.py``), saved as a diffusers SDXL pipeline folder any code loads with ``from_pretrained``;
- the identity judge and the attribute detectors (``judge.py``, ``detectors.py``), on people outside everything.

The cache key is a hash of the settings and ``FORMAT_VERSION``: bump it when a change to the training code would
make another world from the same settings.

Memory: the photos as float tensors (famous × photos_per_person + generic_people images of 3 × S × S) and the
models (a few MB). Results are cached by the settings: a folder per settings hash under the cache root.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write, cache_dir
from ..synthetic.faces import synthetic_face
from ..synthetic.people import CAST_SIZE, cast_names
from .captions import PERSON, caption, random_attributes

FORMAT_VERSION = 2  # 2: the attribute detector has a person head (the evaluation's face detector)
FIRST_GENERIC_IDENTITY = 40_000  # anonymous people: far from the sample (0…5000), towers (10000+), judges (20000+)
FIRST_TRAINING_VARIANT = 1_000  # the world's photos of a famous person are not the sample's photos (variants 0…)


@dataclass
class MiniatureWorldConfig:
    """Settings of a miniature world (every one is part of its cache key).

    Attributes:
        famous: cast people the tiny SDXL learns by name (identities 0 … famous − 1).
        cast_seed: names the cast (the embedded sample's ``seed``: its captions name the same people).
        image_size: image side in pixels (the latents are as large: the VAE does not downsample).
        photos_per_person: training photos per famous person.
        generic_people: anonymous people, one photo each, captioned "a person" or, 60 % of them, with a made-up
            name: a first and a last name of the cast's non-famous people, newly paired. As on the web, where
            common names are carried by many people, those names come with many faces, so a name the model does not
            know draws no one in particular, and the probe can tell it from a famous one; the famous people's
            names stay distinctive, as celebrities' names are.
        attribute_rate: how often each attribute is in a photo and its caption.
        autoencoder_steps: VAE optimisation steps.
        denoiser_steps: UNet (and text encoder) optimisation steps.
        train_text_encoders: train the text encoders with the UNet (else they stay random and frozen).
        judge_people: outside people the identity judge learns from.
        detector_people: outside people the attribute detectors learn from (emotion, a few pixels of mouth at
            16 px, needs many: 0.83 of held-out photos right with 200 people, 0.92 with 500).
        judge_steps: the judge's and the detectors' optimisation steps.
        seed: seeds the weights, the photos' attributes and the batches.
    """

    famous: int = 12
    cast_seed: int = 0
    image_size: int = 16
    photos_per_person: int = 120
    generic_people: int = 500
    attribute_rate: float = 0.3
    autoencoder_steps: int = 200
    denoiser_steps: int = 1200
    train_text_encoders: bool = True
    judge_people: int = 300
    detector_people: int = 500
    judge_steps: int = 600
    seed: int = 0

    def check(self) -> list[str]:
        """Problems with the settings, each naming the setting, the expected and the found value."""
        problems = []
        if not 2 <= self.famous <= CAST_SIZE:
            problems.append(f"famous: expected 2…{CAST_SIZE} (the cast's size), got {self.famous}")
        if self.image_size < 8 or self.image_size % 8:
            problems.append(f"image_size: expected a multiple of 8 (at least 8), got {self.image_size}")
        for key in (
            "photos_per_person",
            "autoencoder_steps",
            "denoiser_steps",
            "judge_people",
            "detector_people",
            "judge_steps",
        ):
            if getattr(self, key) < 1:
                problems.append(f"{key}: expected at least 1, got {getattr(self, key)}")
        if self.generic_people < 0:
            problems.append(f"generic_people: expected 0 or more, got {self.generic_people}")
        if not 0 <= self.attribute_rate <= 1:
            problems.append(f"attribute_rate: expected a fraction in [0, 1], got {self.attribute_rate}")
        return problems

    def key(self) -> str:
        """The cache key: a hash of the settings and the format."""
        text = json.dumps({"format": FORMAT_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_cache_root() -> Path:
    """``$MAGICNAMING_CACHE/miniature``, else ``$XDG_CACHE_HOME/magicnaming/miniature`` (``~/.cache`` by default)."""
    return cache_dir("miniature")


def _say(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


def _photos(config: MiniatureWorldConfig) -> tuple[torch.Tensor, list[str]]:
    """(n, 3, S, S) photos in [-1, 1] and their captions."""
    rng, names = random.Random(config.seed), cast_names(config.cast_seed)
    pixels, captions = [], []

    def add(identity: int, variant: int, subject: str) -> None:
        scene, emotion, style = random_attributes(rng, config.attribute_rate)
        image = synthetic_face(identity, variant, config.image_size, scene=scene, emotion=emotion, style=style)
        pixels.append(np.asarray(image, dtype=np.float32))
        captions.append(caption(subject, scene, emotion, style, name_first=rng.random() < 0.5))

    for person in range(config.famous):
        for variant in range(config.photos_per_person):
            add(person, FIRST_TRAINING_VARIANT + variant, names[person])
    others = [name.split() for name in names[config.famous :]]  # the cast's non-famous people: (first, last)
    for index in range(config.generic_people):
        made_up = f"{rng.choice(others)[0]} {rng.choice(others)[1]}" if others else PERSON
        add(FIRST_GENERIC_IDENTITY + index, 0, made_up if made_up not in names and rng.random() < 0.6 else PERSON)
    images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2) / 127.5 - 1  # (n, 3, S, S)
    return images, captions


def build_miniature_world(folder: str | Path, config: MiniatureWorldConfig | None = None) -> Path:
    """Trains the world into ``folder`` (replaced if it holds an unfinished one); returns ``folder``.

    Writes ``pipeline/`` (a diffusers SDXL pipeline), ``judge/``, ``detectors/`` and, last, ``world.json``
    (the settings, the famous and the known names, timings).
    """
    from diffusers import StableDiffusionXLPipeline

    from ..synthetic.pipeline import tiny_sdxl_components
    from .autoencoder import encode_images, new_autoencoder, train_autoencoder
    from .denoiser import new_scheduler, new_unet, train_denoiser
    from .detectors import train_attribute_detector
    from .judge import train_judge

    config = config or MiniatureWorldConfig()
    problems = config.check()
    if problems:
        raise ValueError("miniature world settings:\n  " + "\n  ".join(problems))
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    seconds, started = {}, time.perf_counter()
    images, captions = _photos(config)
    _say(f"{len(images)} photos: {config.famous} famous people × {config.photos_per_person}, "
         f"{config.generic_people} anonymous people")  # fmt: skip

    mark = time.perf_counter()
    vae, error = train_autoencoder(
        new_autoencoder(config.image_size, config.seed), images, config.autoencoder_steps, seed=config.seed
    )
    seconds["autoencoder"] = time.perf_counter() - mark
    _say(f"autoencoder: reconstruction error {error:.4f} (MSE on [-1, 1]) in {seconds['autoencoder']:.0f} s")

    mark = time.perf_counter()
    components = tiny_sdxl_components(config.seed)
    components.update(unet=new_unet(config.seed), vae=vae, scheduler=new_scheduler())
    pipe = StableDiffusionXLPipeline(**components)
    distinct = sorted(set(captions))
    row_of = {text: row for row, text in enumerate(distinct)}
    rows = torch.tensor([row_of[text] for text in captions])
    loss = train_denoiser(
        pipe, encode_images(vae, images), distinct, rows, config.denoiser_steps, config.train_text_encoders,
        seed=config.seed,
    )  # fmt: skip
    seconds["denoiser"] = time.perf_counter() - mark
    _say(f"denoiser: loss {loss:.4f} after {config.denoiser_steps} steps in {seconds['denoiser']:.0f} s")
    pipe.save_pretrained(folder / "pipeline", safe_serialization=True)

    mark = time.perf_counter()
    judge = train_judge(config.image_size, people=config.judge_people, steps=config.judge_steps, seed=config.seed)
    judge.save(folder / "judge")
    detector = train_attribute_detector(
        config.image_size, people=config.detector_people, steps=config.judge_steps, seed=config.seed
    )
    detector.save(folder / "detectors")
    seconds["judges"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - started
    names = cast_names(config.cast_seed)
    world = {"format_version": FORMAT_VERSION, "config": asdict(config), "famous": names[: config.famous]}
    world |= {"seconds": {key: round(value, 1) for key, value in seconds.items()}}
    atomic_write(folder / "world.json", lambda path: path.write_text(json.dumps(world, indent=2) + "\n"))
    return folder


def miniature_world(config: MiniatureWorldConfig | None = None, cache_root: str | Path | None = None) -> Path:
    """The world for these settings: built once into ``cache_root/<settings hash>`` and reused after.

    A build is written under a temporary name and renamed when complete, so an interrupted build is redone, never
    half-used.
    """
    config = config or MiniatureWorldConfig()
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    folder = root / config.key()
    if (folder / "world.json").exists():
        _say(f"miniature world: reusing {folder}")
        return folder
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".{config.key()}.partial-{os.getpid()}"
    build_miniature_world(partial, config)
    if folder.exists():  # another process finished the same world meanwhile: keep theirs
        shutil.rmtree(partial)
    else:
        partial.rename(folder)
    return folder
