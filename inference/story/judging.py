"""How well a story keeps its people, on a miniature world: the world's identity judge (not the encoder) looks at
every panel and says whether each person the panel names is in it.

A panel naming k people counts a named person as recognised when the judge ranks them among its k nearest famous
people (k = 1: the judge's own assignment, as in ``magicnaming likeness``). Only characters whose ``name`` is one
of the world's famous people can be judged (the judge knows them from their photos).

Memory: the judge and one story's panels.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image

from .config import Character, Panel


def judge_story(world: Path, panels: list[Panel], images: list[Image.Image], characters: list[Character]) -> dict:
    """The fraction of (panel, named person) pairs the judge recognises, and each pair's verdict.

    Args:
        world: a miniature world folder (with ``world.json``).
        panels: the drawn panels (their ``people`` are the named persons).
        images: one image per panel.
        characters: the story's people; each judged one's ``name`` is a famous person of the world.

    Returns:
        ``{"recognised": fraction, "pairs": n, "chance": mean k / famous people, "verdicts": [...]}``.
    """
    from ..likeness import Judging

    settings = json.loads((Path(world) / "world.json").read_text())
    famous = settings["famous"]
    names = {person.label: person.name for person in characters}
    unknown = sorted({f"{label} ({names.get(label)!r})" for panel in panels for label in panel.people
                      if names.get(label) not in famous})  # fmt: skip
    if unknown:
        raise ValueError(f"judge_world: the judge knows only the world's famous people ({', '.join(famous)}); "
                         f"characters {', '.join(unknown)} are not among them")  # fmt: skip
    judging = Judging(Path(world), famous, settings["config"]["cast_seed"])
    labels = judging.enrolled.labels
    verdicts, chance = [], []
    for index, (panel, image) in enumerate(zip(panels, images, strict=True)):
        if not panel.people:
            continue
        scores = judging.judge.embed([image]) @ judging.enrolled.embeddings.T  # (1, famous)
        nearest = [labels[i] for i in scores[0].topk(len(panel.people)).indices.tolist()]
        for label in panel.people:
            verdict = {"panel": index, "person": label, "name": names[label]}
            verdicts.append(verdict | {"recognised": names[label] in nearest, "judge_nearest": nearest})
            chance.append(len(panel.people) / len(famous))
    recognised = sum(v["recognised"] for v in verdicts) / len(verdicts) if verdicts else float("nan")
    return {
        "recognised": recognised,
        "pairs": len(verdicts),
        "chance": float(torch.tensor(chance).mean()) if chance else float("nan"),
        "verdicts": verdicts,
    }


__all__ = ["judge_story"]
