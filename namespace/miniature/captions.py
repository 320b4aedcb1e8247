"""How the miniature world's captions and prompts say who is in a photo and which attributes it has.

One place for the words, so the captions the tiny SDXL learns from and the prompts the demo and the tests draw with
can never drift apart. Captions come in two forms, as in web captions: "a photo of NAME smiling on a beach" and
"NAME smiling on a beach" (the name first, as the plugin's prepended name is).
"""

from __future__ import annotations

import random

from ..synthetic.faces import EMOTIONS, SCENES, STYLES

SCENE_WORDS = {"beach": "on a beach", "forest": "in a forest", "night": "in the city at night"}
EMOTION_WORDS = {"smiling": "smiling", "sad": "looking sad"}
STYLE_WORDS = {"watercolor": "a watercolor painting"}
PERSON = "a person"  # the subject of prompts without a name


def caption(subject: str, scene: str | None = None, emotion: str | None = None, style: str | None = None,
            name_first: bool = False) -> str:  # fmt: skip
    """``caption("Alma Quintrell", "beach", "smiling")`` → ``"a photo of Alma Quintrell smiling on a beach"``."""
    words = [subject] + ([EMOTION_WORDS[emotion]] if emotion else []) + ([SCENE_WORDS[scene]] if scene else [])
    if name_first:
        return " ".join(words) + (f", {STYLE_WORDS[style]}" if style else "")
    return f"{STYLE_WORDS[style] if style else 'a photo'} of " + " ".join(words)


def random_attributes(rng: random.Random, rate: float) -> tuple[str | None, str | None, str | None]:
    """(scene, emotion, style), each present with probability ``rate``."""
    return (
        rng.choice(SCENES) if rng.random() < rate else None,
        rng.choice(EMOTIONS) if rng.random() < rate else None,
        rng.choice(STYLES) if rng.random() < rate else None,
    )


def task_prompts() -> dict[str, tuple[str, dict[str, str]]]:
    """One prompt per attribute value, in the spirit of the paper's tasks: label → (prompt about ``a person``,
    the attribute it asks for, e.g. ``{"scene": "beach"}``)."""
    prompts = {f"scene: {s}": (caption(PERSON, scene=s), {"scene": s}) for s in SCENES}
    prompts |= {f"emotion: {e}": (caption(PERSON, emotion=e), {"emotion": e}) for e in EMOTIONS}
    prompts |= {f"style: {s}": (caption(PERSON, style=s), {"style": s}) for s in STYLES}
    return prompts
