"""Renders of synthetic people with random scenes, emotions and styles: what the judging models learn and are
measured on. The judges only ever see people *outside* every sample: identities from 20000 up (samples use
0 … 5000, the tiny CLIP towers' pre-training 10000 and up)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from PIL import ImageFilter

from ..synthetic.faces import EMOTIONS, SCENES, STYLES, synthetic_face
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


PERSON: tuple[str | None, ...] = (None, "person")  # the person head's labels: no person seen, a person seen
IGNORE = -100  # a label no loss counts (cross-entropy's ignore_index): an attribute an image cannot show
VISIBLE_UP_TO = 0.3  # degradation strengths t ≤ this keep the face visible …
GONE_FROM = 0.6  # … and t ≥ this leave mush; the band between is ambiguous and never drawn
MAX_BLUR = 0.25  # × the side: the blur σ at t = 1 (4 px at 16 px: eyes and mouth gone, a blob of colour left)
MAX_NOISE = 0.5  # in [-1, 1] pixel units: the noise σ at t = 1


def render_person_examples(
    first_identity: int, people: int, count: int, image_size: int, seed: int, first_variant: int
) -> Renders:
    """``count`` photos for the person head, two thirds without a person, one third of people degraded:

    - no person (2 in 3): ``synthetic_face(..., face=False)``: a plain background or a scene, with or without
      the watercolor style, each drawn uniformly (so neither a scene nor a plain colour means "no person");
    - degraded people (1 in 3): a render with random attributes, blurred with σ = t · 0.25 · S px and noised with
      σ = t · 0.5, as a generated image that lost its person into mush; t uniform in [0, 0.3] (the face is still
      visible: a person) or in [0.6, 1] (only a blob is left: no person), half and half.

    Args:
        first_identity, people: identities ``first_identity`` … ``first_identity + people − 1``, in turn, lend the
            backgrounds and faces, in variants ``first_variant`` and up.
        count: photos.
        seed: draws the attributes, the degradations and the noise.

    Returns:
        ``Renders`` with ``attributes["person"]`` (index into ``PERSON``); the other attributes are the drawn ones
        where the photo shows them and ``IGNORE`` where it cannot (the emotion without a face; every attribute of a
        degraded photo).
    """
    rng = random.Random(seed)
    noise = torch.Generator().manual_seed(seed)
    pixels, chosen = [], {name: [] for name in (*ATTRIBUTES, "person")}

    def who(k: int) -> tuple[int, int]:  # (identity, variant) of the k-th photo
        return first_identity + k % people, first_variant + k // people

    for k in range(count):
        attributes = {name: _draw(labels, None, rng) for name, labels in ATTRIBUTES.items()}
        if k % 3 != 2:  # no person
            image = synthetic_face(*who(k), image_size * rng.choice((1, 2)), face=False, **attributes)
            pixels.append(as_pixels([image], image_size))
            labels = {name: ATTRIBUTES[name].index(value) for name, value in attributes.items()} | {"emotion": IGNORE}
            chosen["person"].append(PERSON.index(None))
        else:
            visible = rng.random() < 0.5
            t = rng.uniform(0, VISIBLE_UP_TO) if visible else rng.uniform(GONE_FROM, 1)
            image = synthetic_face(*who(k), image_size, **attributes)
            image = image.filter(ImageFilter.GaussianBlur(radius=t * MAX_BLUR * image_size))
            grain = t * MAX_NOISE * torch.randn(1, 3, image_size, image_size, generator=noise)
            pixels.append((as_pixels([image], image_size) + grain).clamp(-1, 1))
            labels = {name: IGNORE for name in ATTRIBUTES}
            chosen["person"].append(int(visible))
        for name, index in labels.items():
            chosen[name].append(index)
    return Renders(
        pixels=torch.cat(pixels) if pixels else torch.zeros(0, 3, image_size, image_size),
        people=torch.arange(count) % people,
        attributes={name: torch.tensor(indices, dtype=torch.long) for name, indices in chosen.items()},
    )
