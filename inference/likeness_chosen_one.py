"""The Chosen One without training (issue 24), as a likeness figure: is an identity made from words drawn more
consistently after refining rounds than after one?

For each description, ``text_identity_rounds`` makes the identity with up to ``rounds`` rounds; its round 1 is the
identity a single round makes, and its ``.identity()`` the final one (the best round's). Both are drawn over the
likeness prompts on new noise, never the candidates' (those start from ``round_seed(settings.seed, r)``).

Consistency, per seed ``s``: the P prompts are drawn with the identity, prompt ``p`` from the noise of
``settings.seed + NEW_SEEDS + s·P + p``, and the figure is the mean judge cosine over the P·(P − 1)/2 pairs of those
P images. Every image has its own noise because ``Drawing.draw`` starts every prompt of a call from the same noise,
and two images from the same noise look alike whatever the name: the pairs share only the identity. The seeds'
image sets are disjoint, so the per-seed figures are independent draws and ``over_seeds`` gives an honest spread
(one seed is enough to measure it). The figure of seed ``s`` is the mean over the descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from namespace import Identity
from namespace.files import slug
from namespace.progress import Steps
from namespace.seed_spread import over_seeds

from .likeness_metrics import Drawing
from .text_identity import check_rounds, text_identity_rounds

NEW_SEEDS = 1000  # the consistency images start from settings.seed + NEW_SEEDS: far from every candidate's noise
CLUSTERS = 3  # k-means clusters over each round's candidates (identity_from_text's default)


def chosen_one_figures(
    drawing: Drawing, descriptions: list[str], rounds: int, candidates: int, steps: Steps
) -> tuple[dict, dict]:
    """``chosen_one_consistency_round1`` / ``chosen_one_consistency_final``: the judge's consistency (module
    docstring) of identities made from ``descriptions`` with one round and with up to ``rounds``.

    Args:
        drawing: the pipeline with the encoder, the judge, the prompts, the seeds and the settings (the candidates
            are drawn with its steps, guidance and size, the plugin's own δ and η).
        descriptions: what each person looks like.
        rounds: the round limit of the final identity (at least 1; 1 makes the two figures equal).
        candidates: K candidates per round (at least ``CLUSTERS``).
        steps: the progress display (one step).

    Returns:
        Per description: each round's agreement and cluster size, why the rounds stopped, the final round, and the
        two consistencies (mean over seeds); and the two figures' spreads over seeds.
    """
    problems = chosen_one_problems(descriptions, rounds, candidates)
    if len(drawing.prompts) < 2:
        problems.append(f"drawing.prompts: expected at least 2 prompts (consistency compares pairs), got "
                        f"{len(drawing.prompts)}")  # fmt: skip
    if drawing.seeds < 1:
        problems.append(f"drawing.seeds: expected at least 1, got {drawing.seeds}")
    if problems:
        raise ValueError("\n".join(problems))
    steps.start(
        f"the Chosen One: {len(descriptions)} description(s), {candidates} candidates × up to {rounds} rounds, "
        f"drawn on {drawing.seeds} new seeds"
    )
    settings = drawing.settings
    candidate_options = {"num_inference_steps": settings.num_inference_steps, "height": settings.height,
                         "guidance_scale": settings.guidance_scale, "width": settings.width}  # fmt: skip
    first_figure, final_figure = [[] for _ in range(drawing.seeds)], [[] for _ in range(drawing.seeds)]  # [seed][desc]
    details = {}
    for description in descriptions:
        made = text_identity_rounds(drawing.naming, description, candidates, CLUSTERS, seed=settings.seed,
                                    rounds=rounds, **candidate_options)  # fmt: skip
        first, final = made.rounds[0].identity, made.identity()
        name = f"chosen-{slug(description)}"
        first_values = consistency_per_seed(drawing, first, f"{name}-round1")
        # the best round is round 1: the same identity, the same images
        final_values = first_values if made.best == 0 else consistency_per_seed(drawing, final, f"{name}-final")
        for seed in range(drawing.seeds):
            first_figure[seed].append(first_values[seed])
            final_figure[seed].append(final_values[seed])
        details[description] = {
            "round_agreements": [r.cluster.agreement for r in made.rounds],
            "round_cluster_sizes": [r.cluster.size for r in made.rounds],
            "stopped": made.stopped,
            "final_round": made.best + 1,
            "consistency_round1": sum(first_values) / len(first_values),
            "consistency_final": sum(final_values) / len(final_values),
        }
    spreads = {
        "chosen_one_consistency_round1": over_seeds([sum(values) / len(values) for values in first_figure]),
        "chosen_one_consistency_final": over_seeds([sum(values) / len(values) for values in final_figure]),
    }
    return details, spreads


@dataclass(frozen=True)
class ChosenOneSettings:
    """The Chosen One figures of ``magicnaming likeness``: identities made from these descriptions
    (:func:`chosen_one_figures`).

    Attributes:
        descriptions: what each person looks like.
        rounds: the round limit of the final identity (at least 1).
        candidates: candidates drawn per round (at least the clusters, 3).
    """

    descriptions: tuple[str, ...] = ("a photo of a person", "a photo of a person smiling")
    rounds: int = 3
    candidates: int = 12


def chosen_one_problems(descriptions: list[str], rounds: int, candidates: int, prefix: str = "") -> list[str]:
    """Every bad setting of :func:`chosen_one_figures`, each naming it (after ``prefix``), the expected and the found
    value; cheap: called before anything loads."""
    problems = []
    if not descriptions or not all(isinstance(d, str) and d.strip() for d in descriptions):
        problems.append(f"{prefix}descriptions: expected a non-empty list of non-empty texts, got {descriptions!r}")
    try:
        check_rounds(rounds)
    except ValueError as error:
        problems.append(f"{prefix}{error}")
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < CLUSTERS:
        expected = f"an integer of at least {CLUSTERS} (the clusters)"
        problems.append(f"{prefix}candidates: expected {expected}, got {candidates!r}")
    return problems


def consistency_per_seed(drawing: Drawing, identity: Identity, save_as: str | None = None) -> list[float]:
    """The identity's consistency on each seed (module docstring); seed 0's images saved as ``{save_as}-{p}.png``
    into ``drawing.output`` when both are given."""
    values = []
    for seed in range(drawing.seeds):
        images = draw_apart(drawing, identity, seed)
        values.append(mean_pairwise_cosine(drawing.judging.judge.embed(images)))
        if seed == 0 and save_as is not None and drawing.output is not None:
            _save_images(drawing, images, save_as)
    return values


def draw_apart(drawing: Drawing, identity: Identity, seed: int) -> list[Image.Image]:
    """One image per prompt with ``identity``, prompt ``p`` from the noise of ``settings.seed + NEW_SEEDS +
    seed·P + p`` (one pipeline call; ``Drawing.draw`` would start every prompt from the same noise)."""
    count = len(drawing.prompts)
    first = NEW_SEEDS + seed * count
    arguments = drawing.settings.call_arguments(first)
    arguments["generator"] = [drawing.settings.call_arguments(first + p)["generator"] for p in range(count)]
    return drawing.naming(drawing.prompts, [identity] * count, **arguments).images


def mean_pairwise_cosine(embeddings: torch.Tensor) -> float:
    """(n, dim) embeddings (renormalised) → the mean cosine over their n·(n − 1)/2 pairs (n ≥ 2)."""
    unit = torch.nn.functional.normalize(embeddings.double(), dim=1)  # (n, dim)
    count = unit.shape[0]
    if count < 2:
        raise ValueError(f"embeddings: expected at least 2 rows (a pair), got {count}")
    cosines = unit @ unit.T  # (n, n)
    return float((cosines.sum() - cosines.diagonal().sum()) / (count * (count - 1)))


def _save_images(drawing: Drawing, images: list[Image.Image], name: str) -> None:
    for index, image in enumerate(images):
        image.save(drawing.output / f"{name}-{index}.png")


__all__ = [
    "CLUSTERS",
    "NEW_SEEDS",
    "ChosenOneSettings",
    "chosen_one_figures",
    "chosen_one_problems",
    "consistency_per_seed",
    "draw_apart",
    "mean_pairwise_cosine",
]
