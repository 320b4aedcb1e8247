"""The report's figures, made from the stages' outputs, each paired with the commands that produced it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..figures import plot_grid
from .figures import plot_loss, plot_retrieval
from .references import Person
from .report import Figure


def generation_grid(people: list[Person], generated: Path, prompts: list[str], size: int, path: Path) -> Path:
    """A row per identity: its first reference photo, then ``magicnaming generate``'s image for each prompt."""
    from PIL import Image

    rows = []
    for person in people:
        reference = Image.open(person.photos[0]).convert("RGB").resize((size, size))
        drawn = [Image.open(generated / person.slug / f"{p:03d}-00.png").convert("RGB") for p in range(len(prompts))]
        rows.append([reference, *drawn])
    labels = [f"{person.name}: {_references(person)}" for person in people]
    return plot_grid(rows, labels, ["reference photo", *prompts], "Identities drawn in prompts", path)


def _references(person: Person) -> str:
    count = len(person.photos)
    if person.kind == "train":
        return f"train person, {count} held-out photo{'s' * (count > 1)}"
    return f"unseen person, {count} photo{'s' * (count > 1)}"


def interpolation_grid(grid: Path, pair: list[Person], prompts: list[str], size: int, path: Path) -> Path:
    """``magicnaming interpolate``'s grid, labelled with t and the two people."""
    from PIL import Image

    settings = json.loads(grid.with_suffix(".json").read_text())
    whole = Image.open(grid).convert("RGB")
    rows = [
        [whole.crop((c * size, r * size, (c + 1) * size, (r + 1) * size)) for c in range(len(prompts))]
        for r in range(len(settings["rows_t"]))
    ]
    labels = [f"t = {t:.2f}" for t in settings["rows_t"]]
    labels[0], labels[-1] = f"{labels[0]}: {pair[0].name}", f"{labels[-1]}: {pair[1].name}"
    return plot_grid(rows, labels, prompts, f"{settings['method']} from {pair[0].name} to {pair[1].name}", path)


def make_figures(folder: Path, inputs: dict, lines: dict, metrics: dict) -> list[Figure]:
    """Writes every PNG into ``folder`` and returns the report's figures.

    Args:
        folder: where the PNGs go (``OUTPUT/figures``).
        inputs: ``laioncele``, ``rows`` (the CSV metrics), ``metrics_csv`` (their file), ``people``,
            ``generated``, ``interpolation``, ``prompts``, ``image_size``, ``tiny`` (the pipeline is the tiny one).
        lines: the command lines: ``towers`` (a list, empty when the towers were given), ``data``, ``train``,
            ``export``, ``encode`` (per person), ``generate`` (a list), ``interpolate``.
        metrics: what metrics.json holds.
    """
    folder.mkdir(parents=True, exist_ok=True)
    people, prompts, size = inputs["people"], inputs["prompts"], inputs["image_size"]
    shutil.copyfile(inputs["laioncele"] / "funnel.png", folder / "funnel.png")
    plot_loss(inputs["rows"], folder / "loss.png")
    plot_retrieval(inputs["rows"], folder / "retrieval.png")
    generation_grid(people, inputs["generated"], prompts, size, folder / "generation.png")
    interpolation_grid(inputs["interpolation"], people[:2], prompts, size, folder / "interpolation.png")
    top1, chance = metrics["retrieval_top1_heldout_images"], metrics["chance"]
    top5, chance_top5 = metrics["retrieval_top5_heldout_images"], metrics["chance_top5"]
    encode = [lines["encode"][person.name] for person in people]
    return [
        Figure(
            "The data funnel",
            "figures/funnel.png",
            "What the LaionCele build kept, stage by stage: caption rows, captions naming "
            "exactly one person, photos downloaded, after near-duplicate removal, after the identity checks, and "
            "the people with enough photos.",
            [*lines["towers"], lines["data"]],
        ),
        Figure(
            "Training loss",
            "figures/loss.png",
            "MSE between the predicted and the target name embeddings, per step, with the validation MSE; drawn "
            f"from the trainer's CSV log ({inputs['metrics_csv']}).",
            [lines["train"]],
        ),
        Figure(
            "Retrieval accuracy",
            "figures/retrieval.png",
            f"At the last validation, held-out photos of train people retrieve their own name at top-1 {top1:.3f} "
            f"(chance {chance:.3f}: 1 / number of names) and at top-5 {top5:.3f} (chance {chance_top5:.3f}: "
            "min(5, number of names) / number of names; the two grey lines). The unseen people's names are arbitrary "
            "strings here, so nothing about a new face predicts its name: their retrieval is not expected to beat "
            "chance.",
            [lines["train"], lines["export"]],
        ),
        Figure(
            "Identities drawn in prompts",
            "figures/generation.png",
            "A row per identity file: its first reference photo, then the plugin's image for each prompt."
            + (" The models are tiny and random, so the images are noise." if inputs["tiny"] else ""),
            [*encode, *lines["generate"]],
        ),
        Figure(
            "Interpolation between two identities",
            "figures/interpolation.png",
            "A row per step of the path between the first two identities (each step scaled to the name norm η, "
            "eq. 5); a column per prompt, with the same noise down each column, so only the identity changes.",
            [*encode[:2], lines["interpolate"]],
        ),
    ]
