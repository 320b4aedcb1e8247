"""Renders of synthetic people with random scenes, emotions and styles: what the judging models learn and are
measured on. The judges only ever see people *outside* every sample: identities from 20000 up (samples use
0 … 5000, the tiny CLIP towers' pre-training 10000 and up)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ..testing.faces import EMOTIONS, SCENES, STYLES, synthetic_face
from .pixels import as_pixels

ATTRIBUTES: dict[str, tuple[str | None, ...]] = {
    "scene": (None, *SCENES),
    "emotion": (None, *EMOTIONS),
    "style": (None, *STYLES),
}


@dataclass
class Renders:
    """Photos of ``people`` people, ``photos`` each, person-major.

    Attributes:
        pixels: (people·photos, 3, S, S) in [-1, 1].
        people: (people·photos,) index of the person, 0 … people − 1.
        attributes: "scene" / "emotion" / "style" → (people·photos,) index into ``ATTRIBUTES[name]``.
    """

    pixels: torch.Tensor
    people: torch.Tensor
    attributes: dict[str, torch.Tensor]


def render_people(
    first_identity: int,
    people: int,
    photos: int,
    image_size: int,
    seed: int,
    presence: float | None,
    first_variant: int = 0,
) -> Renders:
    """Renders identities ``first_identity`` … ``first_identity + people − 1`` in variants ``first_variant`` …
    ``first_variant + photos − 1``, each photo with random attributes.

    Args:
        image_size: side of the returned pixels. Half the photos are drawn at twice that side and downsampled, as a
            generated image larger than the judge would be.
        seed: draws the attributes and the drawing sizes.
        presence: each attribute is set with this probability (then one of its values, uniformly), or, with
            None, drawn uniformly from its labels including None (balanced classes for the attribute detector).
    """
    rng = random.Random(seed)
    images, chosen = [], {name: [] for name in ATTRIBUTES}
    for person in range(people):
        for variant in range(first_variant, first_variant + photos):
            attributes = {name: _draw(labels, presence, rng) for name, labels in ATTRIBUTES.items()}
            size = image_size * rng.choice((1, 2))
            images.append(synthetic_face(first_identity + person, variant, size, **attributes))
            for name, value in attributes.items():
                chosen[name].append(ATTRIBUTES[name].index(value))
    return Renders(
        pixels=as_pixels(images, image_size),
        people=torch.arange(people).repeat_interleave(photos),
        attributes={name: torch.tensor(indices) for name, indices in chosen.items()},
    )


def _draw(labels: tuple[str | None, ...], presence: float | None, rng: random.Random) -> str | None:
    if presence is None:
        return rng.choice(labels)
    return rng.choice(labels[1:]) if rng.random() < presence else None
