"""``magicnaming likeness``: does the method work on the miniature world? The demo's headline figures.

On a miniature world (``magicnaming miniature build``) and an encoder trained on a LaionCele built with it, every
figure is judged by the world's identity judge (not the encoder) and its attribute detectors:
- ``mini_model_name_accuracy``: "a photo of NAME" images the judge assigns to NAME, over the famous people;
- ``likeness_heldout``: images made from held-out photos of train people (identity from photos → prepended name)
  that the judge assigns to that person, over the prompts of every task; ``likeness_plain``: the same prompts and
  seeds without a name; ``likeness_chance``: 1 / the people the judge chooses from (the famous people);
- ``likeness_unseen`` / ``likeness_unseen_baseline``: mean judge cosine between the reference photos of people the
  encoder never saw and images made with their predicted identity / with a sampled identity;
- ``prompt_followed_magicnaming`` / ``prompt_followed_plain``: task prompts whose attribute the detector finds, with
  and without a prepended name;
- ``likeness_heldout_<method>``, ``prompt_followed_<method>``, ``likeness_unseen_<method>``: the same figures for the
  methods past the encoder (``likeness_methods``: ``refined``, the name refined on the photos; ``lora``, the paper's
  DreamBooth-LoRA baseline), with each method's seconds per identity under ``seconds_per_identity`` and the judge's
  same-person threshold (``judge_same_person_threshold``: the cosine at its equal error rate on people it never saw)
  beside ``likeness_unseen``;
- ``interpolation_monotonic``: interpolation paths along which the judge's similarity to A falls and to B rises
  (beyond the noise over seeds); ``interpolation_rank_correlation``: Spearman's correlation of the step with the
  similarity to B minus that to A, per path and seed (1: every step moves towards B).

Every figure is measured on each seed's images alone and reported as the mean over seeds, with its spread under
``spread`` (``namespace.seed_spread``: standard deviation, min, max and the per-seed values; for the interpolation
paths, judged on all seeds together, the leave-one-seed-out jackknife's standard error).

Memory: the pipeline, the encoder, the judges, and one person's images at a time (PNG files are written as made).
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, replace
from pathlib import Path

from PIL import Image

from namespace.files import atomic_write, output_problems
from namespace.laioncele import validation_samples
from namespace.miniature.captions import task_prompts
from namespace.progress import Steps

from .generation_settings import GenerationSettings
from .likeness_chosen_one import NEW_SEEDS, ChosenOneSettings, chosen_one_figures, chosen_one_problems
from .likeness_methods import encoder_method, lora_method, method_likeness, refined_method
from .likeness_metrics import (
    BASE_PROMPT,
    Drawing,
    Judging,
    draw_probe_examples,
    heldout_likeness,
    interpolation,
    name_accuracy,
    plain_images,
    unseen_likeness,
)
from .lora_baseline import LoraSettings, peft_problems
from .refine import RefineSettings

METHODS = ("refined", "lora", "chosen_one")  # the methods past the encoder, in the order they are measured
# the tiny UNet learns little at DreamBooth-LoRA's SDXL learning rate (1e-4: likeness of unseen people 0.30, as the
# encoder's; 1e-3: 0.71), so the miniature world's baseline trains at 1e-3, 200 steps (docs/demo.md)
MINIATURE_LORA = LoraSettings(steps=200, learning_rate=1e-3)

LIKENESS = "likeness.json"  # the figures, the settings and every judged image's details


def _reference_photos(laioncele: Path) -> dict[str, tuple[str, list[Image.Image]]]:
    """name → (``train`` or ``unseen``, photos): held-out photos of train people, photos of validation people."""
    people: dict[str, tuple[str, list[Image.Image]]] = {}
    for sample in validation_samples(laioncele):
        kind = {"heldout": "train", "val": "unseen"}.get(sample["split"])
        if kind:
            photos = people.setdefault(sample["name"], (kind, []))[1]
            photos.append(Image.open(io.BytesIO(sample["jpg"])).convert("RGB"))
    return people


def likeness(
    world: Path,
    encoder: Path,
    laioncele: Path,
    output: Path,
    probe_names: list[str] | None = None,
    seeds: int = 4,
    settings: GenerationSettings = GenerationSettings(num_inference_steps=20, guidance_scale=2.0),
    interpolation_steps: int = 5,
    interpolation_pairs: int = 28,
    interpolation_seeds: int = 6,
    methods: tuple[str, ...] = METHODS,
    method_people: int | None = None,
    refine: RefineSettings = RefineSettings(),
    lora: LoraSettings = MINIATURE_LORA,
    chosen_one: ChosenOneSettings = ChosenOneSettings(),
    device: str = "auto",
    overwrite: bool = False,
) -> dict:
    """Measures the method on a miniature world; writes ``likeness.json`` and the images into ``output``.

    Args:
        world: a miniature world folder (``magicnaming miniature build`` prints it).
        encoder: a name-encoder folder trained on ``laioncele``.
        laioncele: the LaionCele directory the encoder was trained on (its held-out and validation photos are the
            references).
        output: folder for ``likeness.json`` and the images.
        probe_names: names to draw one "a photo of NAME" example of each (the demo's probe figure).
        seeds: images per prompt and person; the k-th of each draws with seed + k (``settings.seed``).
        settings: how every image is drawn (height and width: the world's image side unless given; δ, η and the step
            window apply to the images with a name).
        interpolation_steps: identities on each path (both ends included).
        interpolation_pairs: most pairs of train people interpolated (every pair, in order: 1st and 2nd, 1st and 3rd…).
        interpolation_seeds: images per identity on a path; the judge's similarities are averaged over them.
        methods: the methods past the encoder to measure too (``refined``, ``lora``, ``chosen_one``; [] for none).
        method_people: the train people (the first ones; None: all) the ``refined`` and ``lora`` methods are
            measured on, with every person the encoder never saw; the encoder is measured again on the same people
            (``likeness_heldout_encoder`` …), the like-for-like baseline.
        refine: how the ``refined`` method refines each person's name.
        lora: how the ``lora`` method trains each person's LoRA (``MINIATURE_LORA``: DreamBooth-LoRA's settings at
            a learning rate the tiny UNet learns at).
        chosen_one: the identities made from words alone for the ``chosen_one`` figures (its descriptions,
            round limit and candidates per round).
        device: where the pipeline and encoder run.
        overwrite: write into a non-empty ``output`` (otherwise it is refused); its old likeness.json is removed
            before the first image is drawn, so a killed run leaves no likeness.json beside new images.
    """
    world, encoder, laioncele, output = Path(world), Path(encoder), Path(laioncele), Path(output)
    drawn = max(seeds * max(len(_famous(world)), 1), interpolation_seeds)  # plain images: seeds × train people
    if "chosen_one" in methods:  # the Chosen One's images start from seed + NEW_SEEDS, one seed per image
        drawn = max(drawn, NEW_SEEDS + seeds * (1 + len(task_prompts())))
    _check_arguments(world, laioncele, output, overwrite, settings.problems(drawn), seeds=seeds,
                     interpolation_steps=interpolation_steps, interpolation_pairs=interpolation_pairs,
                     interpolation_seeds=interpolation_seeds, methods=methods, refine=refine,
                     lora=lora, chosen_one=chosen_one, method_people=method_people)  # fmt: skip
    world_settings = json.loads((world / "world.json").read_text())
    famous = world_settings["famous"]
    references, train, unseen = _people(laioncele, famous)
    steps = Steps(total=9 + len(methods) + any(m != "chosen_one" for m in methods))
    drawing = _prepare(world, encoder, output, world_settings, seeds, settings, device, steps)
    spreads = name_accuracy(drawing, famous, steps)
    if probe_names:
        draw_probe_examples(drawing, probe_names)
    plain, plain_spreads = plain_images(drawing, len(train), steps)
    identities, people, heldout_spreads = heldout_likeness(drawing, train, references, plain, steps)
    unseen_people, unseen_spreads = unseen_likeness(drawing, unseen, references, steps)
    past = _past_the_encoder(drawing, methods, method_people, refine, lora, chosen_one, train, unseen, references,
                             steps)  # fmt: skip
    spreads |= past["spreads"]
    for name, details in past["people"].items():
        (people if name in train else unseen_people)[name] |= details
    paths, path_spreads = interpolation(drawing, train, identities, interpolation_pairs, interpolation_steps,
                                        interpolation_seeds, steps)  # fmt: skip
    spreads |= plain_spreads | heldout_spreads | unseen_spreads | path_spreads
    results = _results(drawing, famous, spreads, people, unseen_people, paths)
    results["judge_same_person_threshold"] = drawing.judging.judge.same_person_threshold
    results |= {key: past[key] for key in ("chosen_one", "seconds_per_identity") if key in past}
    results["settings"] |= {"methods": list(methods), "method_people": len(train[:method_people]),
                            "refine": asdict(refine), "lora": asdict(lora),
                            "chosen_one": asdict(chosen_one)}  # fmt: skip
    steps.start("likeness.json")
    text = json.dumps(results, indent=2) + "\n"
    atomic_write(output / LIKENESS, lambda path: path.write_text(text))
    steps.done(
        f"likeness of held-out photos {results['likeness_heldout']:.2f} (plain {results['likeness_plain']:.2f}, "
        f"chance {results['likeness_chance']:.2f}); the tiny SDXL draws its people by name "
        f"{results['mini_model_name_accuracy']:.2f}"
    )
    return results


def _past_the_encoder(
    drawing: Drawing, methods: tuple[str, ...], method_people: int | None, refine: RefineSettings, lora: LoraSettings,
    chosen_one: ChosenOneSettings, train: list[str], unseen: list[str], references: dict, steps: Steps,
) -> dict:  # fmt: skip
    """The methods past the encoder: ``refined`` and ``lora`` (with the encoder again, their baseline) on the first
    ``method_people`` train people and every unseen person, and the Chosen One's figures.

    Returns:
        ``spreads`` (every figure's), ``people`` (name → method → details), ``seconds_per_identity`` (method →
        mean seconds) when a method was measured, and ``chosen_one`` (per description) when it was.
    """
    made = {"encoder": lambda: encoder_method(drawing), "refined": lambda: refined_method(drawing, refine),
            "lora": lambda: lora_method(drawing, lora)}  # fmt: skip
    measured = [method for method in methods if method != "chosen_one"]
    past: dict = {"spreads": {}, "people": {}}
    if measured:
        past["seconds_per_identity"] = {}
    for method in ["encoder"] * bool(measured) + measured:
        details, spreads, seconds = method_likeness(drawing, method, made[method](), train[:method_people], unseen,
                                                    references, steps)  # fmt: skip
        past["spreads"] |= spreads
        past["seconds_per_identity"][method] = round(seconds, 3)
        for name, person in details.items():
            past["people"].setdefault(name, {})[method] = person
    if "chosen_one" in methods:
        past["chosen_one"], spreads = chosen_one_figures(drawing, list(chosen_one.descriptions), chosen_one.rounds,
                                                         chosen_one.candidates, steps)  # fmt: skip
        past["spreads"] |= spreads
    return past


def _famous(world: Path) -> list[str]:
    """The world's famous people; none if its world.json is missing or unreadable (``_check_arguments`` says so)."""
    try:
        return list(json.loads((world / "world.json").read_text()).get("famous", []))
    except (OSError, ValueError):
        return []


def _people(laioncele: Path, famous: list[str]) -> tuple[dict, list[str], list[str]]:
    """The reference photos (``_reference_photos``), the famous train people with held-out photos, and the people
    the encoder never saw."""
    references = _reference_photos(laioncele)
    train = [name for name, (kind, _) in references.items() if kind == "train" and name in famous]
    unseen = [name for name, (kind, _) in references.items() if kind == "unseen"]
    if not train:
        raise ValueError(f"laioncele: no held-out photos of a famous person of the world in {laioncele}")
    return references, train, unseen


def _results(
    drawing: Drawing, famous: list[str], spreads: dict, people: dict, unseen_people: dict, paths: list[dict]
) -> dict:
    """``likeness.json``: the settings, the per-person and per-path details, every figure (the mean over seeds) and
    its spread."""
    drawn = drawing.settings
    settings = {"seeds": drawing.seeds, "num_inference_steps": drawn.num_inference_steps,
                "guidance_scale": drawn.guidance_scale, "prompts": drawing.prompts, "famous": famous}  # fmt: skip
    results = {"settings": settings, "likeness_chance": 1 / len(famous), "train_people": people}
    if unseen_people:
        results["unseen_people"] = unseen_people
    if paths:
        results["interpolation_paths"] = paths
    results |= {key: spread["mean"] for key, spread in spreads.items()}
    results["spread"] = spreads
    return results


def _check_arguments(
    world: Path,
    laioncele: Path,
    output: Path,
    overwrite: bool,
    problems: list[str],
    methods: tuple[str, ...],
    refine: RefineSettings,
    lora: LoraSettings,
    chosen_one: ChosenOneSettings,
    **counts: int,
) -> None:
    """Every count at its least, the world and the LaionCele directory where they are said to be, ``output`` free
    (or ``overwrite``), and the drawing settings' ``problems``: one error listing every problem, before anything
    loads."""
    least = {"seeds": 1, "interpolation_steps": 2, "interpolation_pairs": 0, "interpolation_seeds": 1}
    if counts.get("method_people") is None:
        counts.pop("method_people", None)
    else:
        least["method_people"] = 0
    problems = [f"--{arg}: expected at least {least[arg]}, got {value}" for arg, value in counts.items()
                if value < least[arg]] + problems  # fmt: skip
    problems += [f"--methods: expected some of {', '.join(METHODS)}, got {method!r}" for method in methods
                 if method not in METHODS]  # fmt: skip
    if "refined" in methods:
        problems += refine.problems(prefix="--refine.")
    if "lora" in methods:
        problems += lora.problems(prefix="--lora.")
        problems += peft_problems()
    if "chosen_one" in methods:
        problems += chosen_one_problems(list(chosen_one.descriptions), chosen_one.rounds, chosen_one.candidates,
                                        prefix="--chosen_one.")  # fmt: skip
    if not (world / "world.json").is_file():
        problems.append(f"world: expected a miniature world folder (with world.json), got {world}")
    if not (laioncele / "manifest.json").is_file():
        problems.append(f"laioncele: expected a LaionCele directory (with manifest.json), got {laioncele}")
    problems += output_problems(output, "--output", overwrite, folder=True)
    if problems:
        raise ValueError("\n".join(problems))


def _prepare(
    world: Path,
    encoder: Path,
    output: Path,
    world_settings: dict,
    seeds: int,
    settings: GenerationSettings,
    device: str,
    steps: Steps,
) -> Drawing:
    """Loads the pipeline with the encoder and the world's judges, and empties ``output`` of its old likeness.json
    (written last, atomically: the folder loads once finished). Images are the world's size unless ``settings``
    give one."""
    from .loading import load_naming

    naming = load_naming(str(encoder), str(world / "pipeline"), steps, device=device)
    steps.start("loading the identity judge and the attribute detectors")
    judging = Judging(world, world_settings["famous"], world_settings["config"]["cast_seed"])
    output.mkdir(parents=True, exist_ok=True)
    (output / LIKENESS).unlink(missing_ok=True)
    tasks = task_prompts()
    prompts = [BASE_PROMPT] + [prompt for prompt, _ in tasks.values()]
    wanted = [None] + [attribute for _, attribute in tasks.values()]
    size = world_settings["config"]["image_size"]
    settings = replace(settings, height=settings.height or size, width=settings.width or size)
    return Drawing(naming, judging, output, settings, seeds, prompts, wanted)


def main(argv: list[str], prog: str = "magicnaming likeness") -> int:
    from namespace.command_line import run_command

    run_command(likeness, argv, prog, description=__doc__)
    return 0


__all__ = ["likeness", "main"]


def read_likeness(output: Path) -> dict:
    """The ``likeness.json`` that ``likeness`` wrote into ``output`` (its figures, spreads, people and paths)."""
    return json.loads((Path(output) / LIKENESS).read_text())
