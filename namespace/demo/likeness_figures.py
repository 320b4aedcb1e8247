"""The report's leading figures on the miniature world, drawn from ``magicnaming likeness``'s output folder."""

from __future__ import annotations

from pathlib import Path

from ..figures import plot_grid
from ..files import slug
from .report import Figure

SHOWN_PEOPLE = 4  # rows of the likeness grid
SHOWN_PATHS = 3  # rows of the interpolation figure


def _open(path: Path, size: int):
    from PIL import Image

    return Image.open(path).convert("RGB").resize((size, size), Image.NEAREST)


def likeness_grid(folder: Path, measured: dict, path: Path, size: int = 64) -> Path:
    """A row per train person: a held-out reference photo, then the person in each prompt; the last row: the same
    prompts and seed without a name."""
    from PIL import Image

    prompts, people = measured["settings"]["prompts"], list(measured["train_people"])[:SHOWN_PEOPLE]
    rows = [
        [_open(folder / f"{slug(name)}-reference.png", size)]
        + [_open(folder / f"{slug(name)}-{index}.png", size) for index in range(len(prompts))]
        for name in people
    ]
    rows.append([Image.new("RGB", (size, size), (255, 255, 255))]
                + [_open(folder / f"plain-{index}.png", size) for index in range(len(prompts))])  # fmt: skip
    labels = [
        f"{name} ({measured['train_people'][name]['right']}/{measured['train_people'][name]['images']} judged right)"
        for name in people
    ] + ["no name (the plain pipeline)"]
    return plot_grid(rows, labels, ["held-out photo", *prompts], "The person in every task's prompt", path)


METHOD_ROWS = {"encoder": "encoder", "refined": "refined name", "lora": "DreamBooth-LoRA"}  # method → row label


def methods_grid(folder: Path, measured: dict, path: Path, size: int = 64) -> Path | None:
    """Per shown person (every person the encoder never saw, then the first train person): a reference photo,
    then the person in each prompt drawn by the encoder's identity, the refined name and the LoRA (seed 0); None when
    ``likeness`` measured no method past the encoder."""
    from PIL import Image

    methods = [method for method in METHOD_ROWS if method in measured.get("seconds_per_identity", {})]
    if not methods:
        return None
    prompts, blank = measured["settings"]["prompts"], Image.new("RGB", (size, size), (255, 255, 255))
    unseen, train = ([name for name, details in measured.get(group, {}).items() if "encoder" in details]
                     for group in ("unseen_people", "train_people"))  # fmt: skip
    rows, labels = [], []
    for name in unseen + train[:1]:
        for method in methods:
            first = _open(folder / f"{slug(name)}-reference.png", size) if method == "encoder" else blank
            drawn = [_open(folder / f"{slug(name)}-{method}-{index}.png", size) for index in range(len(prompts))]
            rows.append([first, *drawn])
            labels.append(f"{name}: {METHOD_ROWS[method]}")
    return plot_grid(rows, labels, ["reference photo", *prompts], "Past the encoder: refined name and LoRA", path)


def interpolation_paths(folder: Path, measured: dict, path: Path, size: int = 64) -> Path:
    """A row per interpolation path, each image labelled with the judge's similarity to both ends."""
    paths = measured.get("interpolation_paths", [])[:SHOWN_PATHS]
    rows, labels = [], []
    for entry in paths:
        a, b = slug(entry["a"]), slug(entry["b"])
        rows.append([_open(folder / f"path-{a}--{b}-{i}.png", size) for i in range(len(entry["t"]))])
        similarities = "  ".join(f"{x:.2f}/{y:.2f}" for x, y in zip(entry["similarity_a"], entry["similarity_b"],
                                                                    strict=True))  # fmt: skip
        labels.append(f"{entry['a']} → {entry['b']}\nsimilarity to A / B: {similarities}")
    columns = [f"t = {t:.2f}" for t in paths[0]["t"]] if paths else []
    return plot_grid(rows, labels, columns, "Interpolation paths, judged", path)


def probe_examples(folder: Path, probe: dict[str, dict], path: Path, size: int = 64) -> Path:
    """Every probed name's "a photo of NAME" image, by falling consistency, each labelled with its consistency and
    whether the probe kept it (and whether the name is one the tiny SDXL does not know)."""
    names = sorted(probe, key=lambda name: -probe[name]["consistency"])
    row = [_open(folder / "probe" / f"{slug(name)}.png", size) for name in names]
    columns = [
        f"{name} {probe[name]['consistency']:.2f} {'kept' if probe[name]['kept'] else 'dropped'}"
        + ("" if probe[name]["famous"] else " (unknown)")
        for name in names
    ]
    return plot_grid([row], ["a photo of NAME"], columns, "The probe: names the tiny SDXL draws consistently", path)


def miniature_figures(folder: Path, likeness: Path, metrics: dict, lines: dict) -> list[Figure]:
    """The likeness grid, the interpolation paths and the probe, with what they measure."""
    from namespace.inference.likeness import read_likeness

    measured = read_likeness(likeness)
    likeness_grid(likeness, measured, folder / "likeness.png")
    interpolation_paths(likeness, measured, folder / "interpolation-judged.png")
    probe_examples(likeness, metrics["probe_names"], folder / "probe.png")
    m = _with_spread(metrics)
    figures = [
        Figure(
            "Likeness: the person in every task",
            "figures/likeness.png",
            f"Identities made from held-out photos (never trained on) of train people, prepended into prompts of the "
            f"four kinds the paper tests. The identity judge assigns {m['likeness_heldout']} of these images to "
            f"the right person (the same prompts and seeds without a name: {m['likeness_plain']}; chance "
            f"{metrics['likeness_chance']:.2f}), and the attribute detectors find what the prompt asks in "
            f"{m['prompt_followed_magicnaming']} of them ({m['prompt_followed_plain']} without a name). "
            f"People the encoder never saw: judge similarity {m['likeness_unseen']} to their "
            f"photos with their predicted identity, {m['likeness_unseen_baseline']} with a sampled one. "
            f"Each figure is the mean over {m['seeds']} seeds ± its standard deviation over them.",
            [*lines.get("world", []), lines["likeness"]],
        ),
        Figure(
            "Interpolation, judged",
            "figures/interpolation-judged.png",
            f"Paths between two train people; under each image the judge's similarity to A and to B (mean over "
            f"seeds). On {m['interpolation_monotonic']} of the {m['paths']} paths the similarity to A falls and to B "
            "rises with t (a step counts against a path only beyond twice its standard error over the seeds; ± the "
            f"leave-one-seed-out jackknife's standard error); rank correlation of t with the move towards B: "
            f"{m['interpolation_rank_correlation']} (mean ± standard deviation over seeds).",
            [lines["likeness"]],
        ),
        Figure(
            "The probe",
            "figures/probe.png",
            f"'a photo of NAME' from the tiny SDXL for every probed name, with the consistency of its probe images "
            f"(judge cosine). The probe kept {metrics['probe_known_kept']:.2f} of the famous names and dropped "
            f"{metrics['probe_unknown_dropped']:.2f} of the others; the tiny SDXL alone draws the famous people by "
            f"name {m['mini_model_name_accuracy']} of the time (judge; mean ± standard deviation over seeds).",
            [lines["data"], lines["likeness"]],
        ),
    ]
    if methods_grid(likeness, measured, folder / "methods.png"):
        figures.insert(1, _methods_figure(m, metrics, measured, lines))
    return figures


def _methods_figure(m: dict, metrics: dict, measured: dict, lines: dict) -> Figure:
    """The figure of the methods past the encoder, with their likeness, prompt following and seconds per identity,
    and the Chosen One's consistency."""
    seconds = measured.get("seconds_per_identity", {})
    timing = ", ".join(f"{method} {value:.2f} s" for method, value in seconds.items())
    people = measured["settings"].get("method_people", "?")
    text = (
        f"The encoder's identity, the same name refined on the reference photos by the frozen pipeline's denoising "
        f"loss (only the name moves), and a DreamBooth-LoRA trained on the UNet on the same photos (the paper's "
        f"fine-tuning baseline), on the same prompts and seeds, for every person the encoder never saw and "
        f"{people} train people. Never seen, judge similarity to their photos: encoder {m['likeness_unseen_encoder']}, "
        f"refined {m['likeness_unseen_refined']}, LoRA {m['likeness_unseen_lora']} (the judge calls two photos the "
        f"same person from {metrics.get('judge_same_person_threshold', float('nan')):.2f}). Held-out photos of train "
        f"people, judged right: {m['likeness_heldout_encoder']}, {m['likeness_heldout_refined']}, "
        f"{m['likeness_heldout_lora']}; prompts followed: {m['prompt_followed_encoder']}, "
        f"{m['prompt_followed_refined']}, {m['prompt_followed_lora']} (no name, all train people: "
        f"{m['prompt_followed_plain']}). Seconds per identity on this machine: {timing}."
    )
    if "chosen_one_consistency_final" in metrics:
        text += (
            f" The Chosen One (identities from words alone, no training): the judge's consistency on new seeds "
            f"{m['chosen_one_consistency_round1']} after one round, {m['chosen_one_consistency_final']} after the "
            f"rounds."
        )
    text += f" Mean over {m['seeds']} seeds ± standard deviation."
    return Figure("Past the encoder: a refined name, and the LoRA baseline", "figures/methods.png", text,
                  [lines["likeness"]])  # fmt: skip


def _with_spread(metrics: dict) -> dict[str, str]:
    """Each figure of ``metrics["spread"]`` as "mean ± spread" ("n/a" when not measured), the seeds and the paths."""
    from ..seed_spread import plus_minus

    spreads = metrics.get("spread", {})
    keys = ["likeness_heldout", "likeness_plain", "prompt_followed_magicnaming", "prompt_followed_plain"]
    keys += ["likeness_unseen", "likeness_unseen_baseline", "mini_model_name_accuracy"]
    keys += ["interpolation_monotonic", "interpolation_rank_correlation"]
    keys += [f"{figure}_{method}" for method in ("encoder", "refined", "lora")
             for figure in ("likeness_unseen", "likeness_heldout", "prompt_followed")]  # fmt: skip
    keys += ["chosen_one_consistency_round1", "chosen_one_consistency_final"]
    shown = {key: plus_minus(spreads[key]) if key in spreads else "n/a" for key in keys}
    shown["seeds"] = str(spreads.get("likeness_heldout", {}).get("seeds", "?"))
    shown["paths"] = str(spreads.get("interpolation_monotonic", {}).get("paths", "?"))
    return shown
