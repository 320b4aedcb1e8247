"""Likeness past the encoder, in ``magicnaming likeness``: a refined name, and the paper's DreamBooth-LoRA baseline.

Each method makes, per person, what it draws with from the person's reference photos, timed: ``encoder`` is the
encoder's identity (the others' like-for-like baseline, on the same people); ``refined`` starts
from the encoder's identity and refines its name on the photos (``refine.refine_identity``: only the name moves);
``lora`` trains a LoRA on the UNet's attention on the same photos (``lora_baseline``) and draws the prompts with
"a person" made its subject, the LoRA on the UNet, no name. Both are then drawn with the same prompts and seeds as
the encoder's identities and judged the same way (the figures ``likeness_heldout_<method>``,
``prompt_followed_<method>`` over the held-out train people's images, and ``likeness_unseen_<method>``).

Memory: what one person is drawn with at a time (a name, or a LoRA's weights) and that person's images of one seed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from namespace import Identity
from namespace.files import slug
from namespace.progress import Steps
from namespace.seed_spread import over_seeds

from .likeness_metrics import Drawing, share
from .lora_baseline import LoraSettings, lora_applied, lora_prompt, train_identity_lora
from .refine import RefineSettings


@dataclass
class PersonDrawing:
    """What one method draws one person with: the identity prepended (None: no name), the prompts as drawn, and the
    context the drawing runs in (a LoRA on the UNet)."""

    identity: Identity | None
    prompt: Callable[[str], str] = str
    context: Callable[[], Any] = contextlib.nullcontext
    seconds: float = 0.0


@dataclass
class MethodFigures:
    """Per seed: held-out images judged right, prompts followed, unseen people's judge cosines; per person: details."""

    right: list[list[bool]]
    followed: list[list[bool]]
    unseen: list[list[float]]
    people: dict = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)


def encoder_method(drawing: Drawing) -> Callable[[str, list], PersonDrawing]:
    """The encoder alone (the same people, prompts and seeds as the other methods: their like-for-like baseline)."""

    def prepare(name: str, photos: list) -> PersonDrawing:
        started = time.perf_counter()
        identity = drawing.naming.identity(photos, label=name, check_faces=False)
        return PersonDrawing(identity, seconds=time.perf_counter() - started)

    return prepare


def refined_method(drawing: Drawing, settings: RefineSettings) -> Callable[[str, list], PersonDrawing]:
    """The ``refined`` method: the encoder's identity of the photos, refined on them."""

    def prepare(name: str, photos: list) -> PersonDrawing:
        started = time.perf_counter()
        start = drawing.naming.identity(photos, label=name, check_faces=False)
        identity = drawing.naming.refine(start, photos, steps=settings.steps, learning_rate=settings.learning_rate,
                                         prior_weight=settings.prior_weight, seed=settings.seed,
                                         progress_every=0)  # fmt: skip
        return PersonDrawing(identity, seconds=time.perf_counter() - started)

    return prepare


def lora_method(drawing: Drawing, settings: LoraSettings) -> Callable[[str, list], PersonDrawing]:
    """The ``lora`` method: a DreamBooth-LoRA trained on the photos, drawn with "a person" made its subject."""

    def prepare(name: str, photos: list) -> PersonDrawing:
        started = time.perf_counter()
        size = drawing.settings.height, drawing.settings.width
        weights = train_identity_lora(drawing.naming.pipe, photos, settings, *size, progress_every=0)
        seconds = time.perf_counter() - started
        return PersonDrawing(None, lora_prompt, lambda: lora_applied(drawing.naming.pipe, weights), seconds)

    return prepare


def method_likeness(
    drawing: Drawing, method: str, prepare: Callable[[str, list], PersonDrawing], train: list[str],
    unseen: list[str], references: dict, steps: Steps,
) -> tuple[dict, dict, float]:  # fmt: skip
    """One method's figures over the held-out train people and the unseen people, on the encoder's prompts and seeds.

    Returns:
        Each person's details (right/images, or the mean judge cosine; seconds), the figures' spreads
        (``likeness_heldout_<method>``, ``prompt_followed_<method>``, ``likeness_unseen_<method>``) and the mean
        seconds per identity.
    """
    seeds, judging = drawing.seeds, drawing.judging
    steps.start(f"{method}: {len(train) + len(unseen)} people made and drawn with {len(drawing.prompts)} prompts × "
                f"{seeds} seeds")  # fmt: skip
    figures = MethodFigures(*([[] for _ in range(seeds)] for _ in range(3)))
    for name in train + unseen:
        photos = references[name][1]
        person = prepare(name, photos)
        photos[0].save(drawing.output / f"{slug(name)}-reference.png")
        prompts = [person.prompt(prompt) for prompt in drawing.prompts]
        reference = judging.judge.embed(photos).mean(0) if name in unseen else None  # (dim,)
        marks, cosines = [], []
        with person.context():
            for seed in range(seeds):
                images = drawing.draw(prompts, None if person.identity is None else [person.identity] * len(prompts),
                                      seed)  # fmt: skip
                if seed == 0:
                    for index, image in enumerate(images):
                        image.save(drawing.output / f"{slug(name)}-{method}-{index}.png")
                if reference is None:
                    marks.append(judging.right(images, name))
                    figures.right[seed] += marks[-1]
                    figures.followed[seed] += drawing.followed(images)
                else:
                    cosines.append(judging.similarity(images, reference).tolist())
                    figures.unseen[seed] += cosines[-1]
        figures.seconds.append(person.seconds)
        details = {"right": sum(map(sum, marks)), "images": sum(map(len, marks))} if reference is None else {
            "similarity": float(torch.tensor(cosines).mean())}  # fmt: skip
        figures.people[name] = details | {"seconds": round(person.seconds, 2)}
    spreads = {f"likeness_heldout_{method}": over_seeds([share(marks) for marks in figures.right]),
               f"prompt_followed_{method}": over_seeds([share(marks) for marks in figures.followed])}  # fmt: skip
    if unseen:
        spreads[f"likeness_unseen_{method}"] = over_seeds([sum(values) / len(values) for values in figures.unseen])
    return figures.people, spreads, sum(figures.seconds) / len(figures.seconds)


__all__ = ["MethodFigures", "PersonDrawing", "encoder_method", "lora_method", "method_likeness", "refined_method"]
