"""Tiny towers that can tell synthetic people apart: a short identity pre-training of the tiny open_clip towers.

Random tiny towers carry almost no identity information (1-NN identity accuracy near chance), so an encoder built on
them cannot learn names. This trains each tiny vision tower for a few hundred steps on synthetic faces of people
*outside* any sample (identities 10000 and up) with a cosine-softmax identity loss, and saves open_clip checkpoints
that ``TowerConfig.pretrained`` loads as a local path. Tens of seconds on a CPU; deterministic for a seed. Progress
goes to stderr: a line as each step starts and ends, and a bar over the training steps on a terminal.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..encoder import TowerConfig
from ..encoder.towers import register_model_configs
from ..progress import progress
from ..seeding import seeded
from .faces import synthetic_face
from .towers import tiny_tower_configs

FIRST_IDENTITY = 10_000  # far from the identities samples and tests draw (0 … 5000)


def pretrain_tiny_towers(
    folder: str | Path, steps: int = 400, identities: int = 300, photos: int = 8, batch_size: int = 64, seed: int = 0
) -> list[TowerConfig]:
    """Pre-trains both tiny towers and writes ``{model}.safetensors`` into ``folder``.

    Args:
        folder: where the checkpoints go.
        steps: optimisation steps per tower.
        identities: synthetic people trained on (identities 10000 … 10000 + identities − 1).
        photos: photos per person (rendered once, reused every step).
        batch_size: photos per step.
        seed: seeds the weights, the classes and the batches.

    Returns:
        Tower configs whose ``pretrained`` is the written checkpoint.
    """
    import open_clip

    register_model_configs()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _say(f"rendering {identities * photos} synthetic faces ({identities} people × {photos} photos)")
    faces = [
        synthetic_face(FIRST_IDENTITY + person, photo, 64) for person in range(identities) for photo in range(photos)
    ]
    labels = torch.arange(identities).repeat_interleave(photos)
    configs = []
    for tower in tiny_tower_configs():
        started = time.perf_counter()
        _say(f"{tower.model}: {steps} identity-classification steps from random weights")
        with seeded(seed):
            with _quiet_random_init():
                model, _, preprocess = open_clip.create_model_and_transforms(tower.model)
            pixels = torch.stack([preprocess(face) for face in faces])  # (P, 3, S, S)
            loss = _train(model.visual, pixels, labels, tower.embed_dim, steps, batch_size, seed, tower.model)
        path = folder / f"{tower.model}.safetensors"
        save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(path))
        configs.append(TowerConfig(model=tower.model, pretrained=str(path), embed_dim=tower.embed_dim))
        _say(f"{tower.model}: loss {loss:.3f} after {steps} steps ({time.perf_counter() - started:.1f} s)")
    return configs


def _say(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _quiet_random_init():
    """Drops open_clip's "No pretrained weights loaded ... initialized randomly" warning (logged on the root
    logger): random weights are this module's starting point, and the towers are trained right after."""

    def keep(record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()

    logging.root.addFilter(keep)
    try:
        yield
    finally:
        logging.root.removeFilter(keep)


def _train(visual, pixels, labels, embed_dim: int, steps: int, batch_size: int, seed: int, description: str) -> float:
    """Cosine-softmax identity classification (scale 16) over ``labels``; the classes are thrown away after.

    Returns:
        The last step's loss.
    """
    generator = torch.Generator().manual_seed(seed)
    classes = torch.nn.Parameter(0.1 * torch.randn(int(labels.max()) + 1, embed_dim, generator=generator))
    optimizer = torch.optim.Adam([*visual.parameters(), classes], lr=2e-3)
    visual.train()
    for _ in progress(range(steps), desc=description, unit="step"):
        chosen = torch.randint(0, len(labels), (batch_size,), generator=generator)
        embeddings = torch.nn.functional.normalize(visual(pixels[chosen]), dim=1)
        logits = 16.0 * embeddings @ torch.nn.functional.normalize(classes, dim=1).T
        loss = torch.nn.functional.cross_entropy(logits, labels[chosen])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    visual.eval()
    return loss.item()
