"""The cast of fictional people: names and the synthetic identity drawn for each.

One function names them for the embedded LaionCele sample and for the miniature world, so the people the tiny
SDXL knows by name are the people the sample's captions name: person ``k`` is called ``cast_names(seed)[k]`` and
looks like ``synthetic_face(k, …)``.
"""

from __future__ import annotations

import random

FIRST = ["Alma", "Boris", "Cleo", "Dario", "Edda", "Faisal", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca", "Mira",
         "Nils", "Oona", "Pavel", "Quinn", "Rosa", "Sven", "Tala"]  # fmt: skip
LAST = ["Quintrell", "Vantanen", "Marchetti", "Okonkwo", "Lindqvist", "Brennan", "Oyelaran", "Castellane",
        "Morrowind", "Pelletier", "Aldenhoven", "Ferreira", "Szabo", "Haugen", "Ivanova", "Delacroix", "Nakamura",
        "Ekwueme", "Rasmussen", "Tavares"]  # fmt: skip
CAST_SIZE = len(FIRST)


def cast_names(seed: int | random.Random = 0) -> list[str]:
    """All ``CAST_SIZE`` names of the cast, in the order of their identities: a shuffle of first and last names by
    ``seed`` (a number, or a ``random.Random`` the shuffle draws from and advances)."""
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    firsts, lasts = rng.sample(FIRST, len(FIRST)), rng.sample(LAST, len(LAST))
    return [f"{first} {last}" for first, last in zip(firsts, lasts, strict=True)]
