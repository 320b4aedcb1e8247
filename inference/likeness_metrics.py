"""The figures of ``magicnaming likeness``, one function per figure, each judged by the miniature world's identity
judge and attribute detectors (never by the encoder). ``likeness.py`` runs them in order.

Each figure is measured on each seed's images alone and summarised over the seeds (``namespace.seed_spread``); the
interpolation paths, judged on all seeds together, by the leave-one-seed-out jackknife.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from namespace.files import slug
from namespace.miniature.captions import PERSON, caption
from namespace.progress import Steps
from namespace.seed_spread import jackknife, over_seeds
from namespace.synthetic.faces import synthetic_face
from namespace.synthetic.people import cast_names

from .evaluation.scorers import attributes_followed
from .generation_settings import GenerationSettings

BASE_PROMPT = caption(PERSON)  # "a photo of a person"
GALLERY_PHOTOS = 8  # enrolment photos per famous person: the embedded sample's own photos (variants 0…7)
GALLERY_SIZE = 96  # the embedded sample's photo size
NOISE_MARGIN = 2.0  # a step counts as rising (or falling) only beyond twice its standard error over the seeds


class Judging:
    """The world's judge and detectors, with the famous people enrolled from their photos."""

    def __init__(self, world: Path, famous: list[str], cast_seed: int) -> None:
        from namespace.miniature import AttributeDetector, IdentityJudge

        self.judge, self.detector = IdentityJudge.load(world / "judge"), AttributeDetector.load(world / "detectors")
        names = cast_names(cast_seed)
        gallery = {
            name: [synthetic_face(names.index(name), v, GALLERY_SIZE) for v in range(GALLERY_PHOTOS)] for name in famous
        }
        self.enrolled = self.judge.enroll(gallery)
        self.centroids = dict(zip(self.enrolled.labels, self.enrolled.embeddings, strict=True))  # name → (dim,)

    def right(self, images: list[Image.Image], name: str) -> list[bool]:
        return [label == name for label in self.judge.assign(images, self.enrolled)]

    def similarity(self, images: list[Image.Image], reference: torch.Tensor) -> torch.Tensor:
        """(n,) cosines between the images and a reference embedding (renormalised)."""
        return self.judge.embed(images) @ torch.nn.functional.normalize(reference, dim=0)


@dataclass
class Drawing:
    """What every figure draws and judges with.

    Attributes:
        naming: the pipeline with the name encoder (``loading.load_naming``).
        judging: the world's judge and detectors.
        output: the folder the example images go to.
        settings: how the images are drawn (its height and width: the world's image side, unless given); the
            images of seed ``s`` start from the noise of ``settings.seed + s``.
        seeds: images per prompt and person.
        prompts: the base prompt, then each task's prompt.
        wanted: the attribute each prompt asks for (None for the base prompt).
    """

    naming: Any
    judging: Judging
    output: Path
    settings: GenerationSettings
    seeds: int
    prompts: list[str]
    wanted: list[dict | None]

    def draw(self, prompts: list[str], identity=None, seed: int = 0) -> list[Image.Image]:
        """One image per prompt (with ``identity``'s name prepended, one identity per prompt), all with ``seed``."""
        arguments = self.settings.call_arguments(seed)
        # a generator per prompt, each seeded alike: every prompt's image starts from the same noise
        arguments["generator"] = [self.settings.call_arguments(seed)["generator"] for _ in prompts]
        return self.naming(prompts, identity, **arguments).images

    def followed(self, images: list[Image.Image]) -> list[bool]:
        """Whether the detector finds each task prompt's attribute in its image (the base prompt's is not judged)."""
        return [f for f in attributes_followed(self.judging.detector, images, self.wanted) if f is not None]


def share(marks: list[bool]) -> float:
    return sum(marks) / len(marks) if marks else float("nan")


def name_accuracy(drawing: Drawing, famous: list[str], steps: Steps) -> dict:
    """``mini_model_name_accuracy``: "a photo of NAME" images the judge assigns to NAME, over the famous people."""
    steps.start(f"the tiny SDXL alone: 'a photo of NAME' for {len(famous)} famous people × {drawing.seeds} seeds")
    name_right = []  # [seed][famous person]
    for seed in range(drawing.seeds):
        images = drawing.draw([caption(name) for name in famous], seed=seed)
        marks = [r for name, image in zip(famous, images, strict=True) for r in drawing.judging.right([image], name)]
        name_right.append(marks)
    return {"mini_model_name_accuracy": over_seeds([share(marks) for marks in name_right])}


def draw_probe_examples(drawing: Drawing, probe_names: list[str]) -> None:
    """One "a photo of NAME" image of each name into ``probe/`` (the demo's probe figure)."""
    (drawing.output / "probe").mkdir(exist_ok=True)
    for name, image in zip(probe_names, drawing.draw([caption(name) for name in probe_names]), strict=True):
        image.save(drawing.output / "probe" / f"{slug(name)}.png")


def plain_images(drawing: Drawing, people: int, steps: Steps) -> tuple[list[list[Image.Image]], dict]:
    """The prompts without a name, as many images as the named ones of ``people`` train people: the images
    ([seed][prompt]) and ``prompt_followed_plain`` (seed s of the figure gathers the plain seeds s, s + seeds, …)."""
    seeds, prompts = drawing.seeds, drawing.prompts
    steps.start(f"plain pipeline: {len(prompts)} prompts × {seeds * people} seeds, no name")
    plain = [drawing.draw(prompts, seed=seed) for seed in range(seeds * people)]  # [seed][prompt]
    for index, image in enumerate(plain[0]):
        image.save(drawing.output / f"plain-{index}.png")
    plain_follow = [drawing.followed(images) for images in plain]
    spread = over_seeds([share([f for marks in plain_follow[seed::seeds] for f in marks]) for seed in range(seeds)])
    return plain, {"prompt_followed_plain": spread}


def heldout_likeness(
    drawing: Drawing, train: list[str], references: dict, plain: list[list[Image.Image]], steps: Steps
) -> tuple[dict, dict, dict]:
    """Identities from held-out photos of train people, drawn with every prompt: ``likeness_heldout`` (images the
    judge assigns to the person), ``likeness_plain`` (the plain images, likewise), ``prompt_followed_magicnaming``.

    Returns:
        The identities (name → identity), each person's images right and drawn, and the figures' spreads.
    """
    seeds, prompts, judging = drawing.seeds, drawing.prompts, drawing.judging
    steps.start(f"held-out photos of {len(train)} train people → identities → {len(prompts)} prompts × {seeds} seeds")
    likeness_right, plain_right, follow = ([[] for _ in range(seeds)] for _ in range(3))  # [seed][image]
    identities, people = {}, {}
    for name in train:
        identities[name] = drawing.naming.identity(references[name][1], label=name, check_faces=False)
        person = {"right": 0, "images": 0}
        for seed in range(seeds):
            images = drawing.draw(prompts, [identities[name]] * len(prompts), seed)
            marks = judging.right(images, name)
            likeness_right[seed] += marks
            plain_right[seed] += judging.right(plain[seed], name)
            follow[seed] += drawing.followed(images)
            person["right"] += sum(marks)
            person["images"] += len(marks)
            if seed == 0:
                for index, image in enumerate(images):
                    image.save(drawing.output / f"{slug(name)}-{index}.png")
        references[name][1][0].save(drawing.output / f"{slug(name)}-reference.png")
        people[name] = person
    spreads = {"likeness_heldout": over_seeds([share(marks) for marks in likeness_right])}
    spreads["likeness_plain"] = over_seeds([share(marks) for marks in plain_right])
    spreads["prompt_followed_magicnaming"] = over_seeds([share(marks) for marks in follow])
    return identities, people, spreads


def unseen_likeness(drawing: Drawing, unseen: list[str], references: dict, steps: Steps) -> tuple[dict, dict]:
    """People the encoder never saw: ``likeness_unseen`` / ``likeness_unseen_baseline``, the mean judge cosine
    between their reference photos and images made with their predicted identity / with a sampled identity.

    Returns:
        Each person's two means, and the figures' spreads (none without unseen people).
    """
    seeds, prompts, judging = drawing.seeds, drawing.prompts, drawing.judging
    steps.start(f"{len(unseen)} people the encoder never saw: predicted against sampled identities")
    predicted, baseline, unseen_people = [[] for _ in range(seeds)], [[] for _ in range(seeds)], {}
    for name in unseen:
        reference = judging.judge.embed(references[name][1]).mean(0)
        identity = drawing.naming.identity(references[name][1], label=name, check_faces=False)
        mine, theirs = [], []
        for seed in range(seeds):
            sampled = drawing.naming.sample(1, seed=drawing.settings.seed + seed)[0]
            mine.append(judging.similarity(drawing.draw(prompts, [identity] * len(prompts), seed), reference).tolist())
            theirs.append(judging.similarity(drawing.draw(prompts, [sampled] * len(prompts), seed), reference).tolist())
            predicted[seed] += mine[-1]
            baseline[seed] += theirs[-1]
        mine, theirs = torch.tensor(mine), torch.tensor(theirs)  # (seeds, prompts)
        unseen_people[name] = {"predicted": float(mine.mean()), "sampled": float(theirs.mean())}
    if not unseen:
        return unseen_people, {}
    spreads = {"likeness_unseen": over_seeds([sum(values) / len(values) for values in predicted])}
    spreads["likeness_unseen_baseline"] = over_seeds([sum(values) / len(values) for values in baseline])
    return unseen_people, spreads


def interpolation(
    drawing: Drawing, train: list[str], identities: dict, pairs: int, steps_per_path: int, seeds: int, steps: Steps
) -> tuple[list[dict], dict]:
    """Paths between the identities of pairs of train people (every pair, in order, at most ``pairs``), each with
    ``steps_per_path`` identities drawn with ``seeds`` seeds: ``interpolation_monotonic`` (paths along which the
    judge's similarity to A falls and to B rises, beyond the noise over seeds) and ``interpolation_rank_correlation``
    (Spearman's correlation of the step with the similarity to B minus that to A, per path and seed).

    Returns:
        Each path (its ends, t, the mean similarities, whether monotonic), and the figures' spreads (none without
        a pair).
    """
    chosen = list(itertools.combinations(train, 2))[:pairs]
    steps.start(f"interpolating {len(chosen)} pairs of train people, {steps_per_path} identities per path")
    paths, similarities = [], []  # per path: (seeds, T) judge cosines to A and to B
    ts = [i / (steps_per_path - 1) for i in range(steps_per_path)]
    for a, b in chosen:
        path = [drawing.naming.interpolate(identities[a], identities[b], t) for t in ts]
        to_a, to_b = [], []  # per seed: (len(ts),) judge cosines to A's and B's enrolled photos
        for seed in range(seeds):
            images = drawing.draw([BASE_PROMPT] * len(ts), path, seed)
            to_a.append(drawing.judging.similarity(images, drawing.judging.centroids[a]))
            to_b.append(drawing.judging.similarity(images, drawing.judging.centroids[b]))
            if seed == 0:
                for index, image in enumerate(images):
                    image.save(drawing.output / f"path-{slug(a)}--{slug(b)}-{index}.png")
        similarities.append((torch.stack(to_a), torch.stack(to_b)))
        paths.append({"a": a, "b": b, "t": ts})
    if not chosen:
        return paths, {}
    for path, (to_a, to_b) in zip(paths, similarities, strict=True):
        path |= {"similarity_a": to_a.mean(0).tolist(), "similarity_b": to_b.mean(0).tolist()}
        path["monotonic"] = monotonic(to_a, to_b)
    spreads = {
        "interpolation_monotonic": jackknife(
            lambda kept: share([monotonic(to_a[kept], to_b[kept]) for to_a, to_b in similarities]), seeds
        )
        | {"paths": len(chosen)}
    }
    spreads["interpolation_rank_correlation"] = over_seeds(
        [sum(rank_correlation(b[seed] - a[seed]) for a, b in similarities) / len(chosen) for seed in range(seeds)]
    )
    return paths, spreads


def _trend(similarities: torch.Tensor, sign: int) -> tuple[torch.Tensor, bool]:
    """(seeds, T) similarities along a path → their mean over seeds, and whether it rises (``sign`` 1) or falls
    (−1) with t: it ends beyond its start, and no step goes the other way by more than ``NOISE_MARGIN`` standard
    errors of that step's difference (one seed: any step against the trend fails)."""
    mean = similarities.mean(0)  # (T,)
    seeds = similarities.shape[0]
    error = similarities.diff(dim=1).std(0) / seeds**0.5 if seeds > 1 else torch.zeros(mean.numel() - 1)  # (T-1,)
    against = (-sign * mean.diff()) > NOISE_MARGIN * error
    return mean, bool(sign * (mean[-1] - mean[0]) > 0 and not against.any())


def monotonic(to_a: torch.Tensor, to_b: torch.Tensor) -> bool:
    """(seeds, T) judge cosines to A and to B along one path → whether A's falls and B's rises (beyond the noise)."""
    return _trend(to_a, -1)[1] and _trend(to_b, 1)[1]


def rank_correlation(values: torch.Tensor) -> float:
    """Spearman's correlation between the step index and (T,) ``values`` (1: rising at every step)."""
    ranks = values.argsort().argsort().double()
    steps = torch.arange(values.numel(), dtype=torch.float64)
    return float(torch.corrcoef(torch.stack([steps, ranks]))[0, 1])


__all__ = [
    "BASE_PROMPT",
    "Drawing",
    "Judging",
    "draw_probe_examples",
    "heldout_likeness",
    "interpolation",
    "monotonic",
    "name_accuracy",
    "plain_images",
    "rank_correlation",
    "unseen_likeness",
]
