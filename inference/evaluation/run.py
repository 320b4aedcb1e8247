"""``evaluate``: draw every method's images (resumable), score them, and write results.json, table.md, the grids,
the trade-off plot and report.html. The drawing may be shared over processes (``torchrun``, or ``--devices``: see
``sharing.py``); one process scores.

Memory: the pipeline, the encoder and the scorers; the drawn images' settings (small dicts), and the images of one
method and task at a time while they are scored (read back from disk). Shared, each drawing process holds the same
but the scorers, which only the scoring process loads (first, before any drawing: rank 0 of torchrun); the process
that spawned ``--devices`` holds only the scorers and the reference photos while they draw, then loads the models
to score, and a stamp (inode, size, time) per image file found before drawing, to tell reused images from drawn.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

import namespace
from namespace.files import atomic_write, check_new_output
from namespace.model_names import MINIATURE, parse_pipeline, resolve_device
from namespace.progress import Steps
from namespace.seed_spread import over_seeds

from .config import EvaluationConfig, ReferenceConfig
from .drawing import DrawnImage, Job, draw_images, generation_options, plan_jobs
from .inputs import CheckedEvaluation, check_evaluation
from .metrics import (
    face_detection_rate,
    frechet_distance,
    identity_consistency,
    kernel_distance,
    reference_embedding,
    reference_similarity,
)
from .sharing import (
    Share,
    barrier,
    image_stamps,
    last_barrier,
    leader_first,
    process_group,
    spawn_shares,
    torchrun_share,
)
from .table import results_table

METRICS = ("clip_ti", "fid", "kid", "reference_similarity", "identity_consistency", "face_detection_rate")
RESULTS = "results.json"  # written last: a folder holding it is a finished evaluation
OWN_ENTRIES = frozenset({"images", "grids", "table.md", "tradeoff.png", "report.html"})  # the rest evaluate writes


def prepared(config: EvaluationConfig) -> EvaluationConfig:
    """The config with ``reference_folders`` expanded into references and ``pipeline: miniature`` made the default
    world's folder (built with progress if it is not cached yet). Cheap unless the world must be built."""
    config = dataclasses.replace(config, references=list(config.references))
    if config.reference_folders:
        folder = Path(config.reference_folders)
        people = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        if not people:
            raise ValueError(f"--reference_folders: expected a folder with one subfolder per person, got {folder}")
        config.references += [ReferenceConfig(label=p.name, photos=str(p)) for p in people]
    if config.pipeline == MINIATURE:  # built here, so that the checks read its folder like any other world's
        config.pipeline = str(parse_pipeline(config.pipeline).world())
    return config


def check_output(output: Path, overwrite: bool) -> Path:
    """Refuses an existing ``--output`` unless ``overwrite``, but resumes an unfinished evaluation.

    An unfinished evaluation is a folder without ``results.json`` that holds only what ``evaluate`` writes (``images/``
    and the outputs written before ``results.json``; hidden temporary files): a killed run, resumed. A folder with
    ``results.json`` (a finished evaluation) or with anything else is refused without ``overwrite``.
    """
    output = Path(output)
    unfinished = output.is_dir() and not (output / RESULTS).exists()
    if unfinished and all(entry.name in OWN_ENTRIES or entry.name.startswith(".") for entry in output.iterdir()):
        return output  # empty, or an unfinished evaluation: resumed
    return check_new_output(output, "--output", overwrite, folder=True)


def evaluate(
    config: EvaluationConfig, output: Path, command: str | None = None, overwrite: bool = False
) -> dict | None:
    """Runs the evaluation into ``output``; returns what ``results.json`` holds.

    The drawing is shared over processes (``sharing.py``): under ``torchrun`` every process runs this and draws its
    share of the batches, then rank 0 scores and writes while the others return None; with ``config.devices``, one
    process per device is spawned to draw, then this one scores. The results are those of one process.

    Args:
        config: the evaluation.
        output: its folder; an unfinished evaluation there is resumed (see ``check_output``).
        command: the command line as typed, for the report (None: called from Python).
        overwrite: replace a finished evaluation (or write into another non-empty folder). Its images are still
            reused where their settings, which hold the encoder's and the references' hashes, are the same.
    """
    share = torchrun_share(config.device)  # None: not started by torchrun
    with process_group(share):
        return _evaluate(config, output, command, overwrite, share)


@dataclass
class Loaded:
    """What drawing needs, loaded on one device: the people (identities made), the methods and every job."""

    people: list
    methods: list
    jobs: list[Job]


def _evaluate(
    config: EvaluationConfig, output: Path, command: str | None, overwrite: bool, share: Share | None
) -> dict | None:
    output = check_output(output, overwrite)  # before the miniature world may be built
    with leader_first(share):  # rank 0 builds the miniature world, the others find it in the cache
        config = prepared(config)
    checked = check_evaluation(config)  # every input, before any model loads
    spawned = share is None and config.devices is not None and len(config.devices) > 1
    if share is None:
        share = Share(0, 1, config.devices[0] if config.devices and not spawned else config.device)
    world = len(config.devices) if spawned else share.world
    leader = share.rank == 0
    steps = Steps(total=5, stream=None if leader else io.StringIO())  # the numbered steps are rank 0's only
    scorers, references, stamps = {}, {}, {}
    if leader:
        from .methods import prepare_people

        steps.start("loading the scorers and reading the people's reference photos")
        scorers = _scorers(checked, config, str(resolve_device(config.device if spawned else share.device)))
        people = prepare_people(checked.references, None, check_faces=False)  # photos only: no identity yet
        references = reference_embeddings(scorers["identity"], people)  # a person without a face fails here
        output.mkdir(parents=True, exist_ok=True)
        (output / RESULTS).unlink(missing_ok=True)  # overwritten: a run killed from here on leaves an unfinished one
        stamps = image_stamps(output / "images") if world > 1 else {}  # which images an earlier run wrote
    barrier(share)  # no process draws before the references are checked and the earlier images noted
    loaded = None
    if spawned:
        steps.start(f"drawing over {world} processes ({', '.join(config.devices)})")
        spawn_shares(_draw_share, (config, str(output)), config.devices)
    else:
        steps.start(f"loading the pipeline, the encoder and the people on {share.device}")
        loaded = _load(config, checked, share.device)
        names = ", ".join(m.name for m in loaded.methods)
        steps.start(f"drawing {len(loaded.jobs)} images ({names})" + (f", shared over {world} processes" * (world > 1)))
        drawn = _draw(loaded, config, output, share)
        _save_seconds(loaded, output, share.rank)
    last_barrier(share)  # every share drawn; rank 0 scores alone
    if not leader:
        return None
    if world > 1:
        if loaded is None:
            steps.start(f"loading the pipeline, the encoder and the people on {config.device}, to score")
            loaded = _load(config, checked, config.device)
        drawn = _draw(loaded, config, output, Share(0, 1, share.device))  # every image found drawn, read back
        drawn = [dataclasses.replace(image, drawn=_written_since(image, stamps, output)) for image in drawn]
    steps.start("scoring")
    scores = score(drawn, checked.suite, scorers, references)
    steps.start("writing results.json, table.md, the figures and report.html")
    results = {
        "magicnaming_version": namespace.__version__,
        "settings": dataclasses.asdict(config),
        "tasks": list(checked.suite.tasks),
        "people": [person.label for person in loaded.people],
        "images": len(drawn),
        "reused_images": [str(image.path.relative_to(output)) for image in drawn if not image.drawn],
        "seconds_per_identity": _gathered_seconds(output, world),
        **scores,
    }
    write_outputs(results, drawn, output, command)
    steps.done(f"evaluation written to {output}: results.json, table.md, report.html")
    return results


def _load(config: EvaluationConfig, checked: CheckedEvaluation, device: str) -> Loaded:
    """The pipeline and the encoder on ``device``, the people (identities made), the methods and the jobs."""
    from namespace.inference import MagicNaming
    from namespace.model_names import load_encoder, load_pipeline

    from .methods import build_methods, prepare_people

    pipe = load_pipeline(checked.pipeline, "text2img", config.dtype, device)
    encoder = load_encoder(config.encoder, str(pipe.device), pipe)
    naming = MagicNaming(pipe, encoder)
    people = prepare_people(checked.references, naming, config.check_faces)
    methods = build_methods(config, pipe, naming)
    return Loaded(people, methods, plan_jobs(methods, checked.suite, people, config.seeds))


def _draw(loaded: Loaded, config: EvaluationConfig, output: Path, share: Share) -> list[DrawnImage]:
    common = {"pipeline": config.pipeline}
    return draw_images(loaded.jobs, loaded.methods, loaded.people, output / "images", generation_options(config),
                       config.batch_size, common, share=(share.rank, share.world), label=share.label)  # fmt: skip


def _draw_share(rank: int, devices: list[str], config: EvaluationConfig, output: str) -> None:
    """A process spawned for ``--devices``: draws the groups ``rank::len(devices)`` on ``devices[rank]``."""
    share = Share(rank, len(devices), devices[rank])
    checked = check_evaluation(config)
    loaded = _load(config, checked, share.device)
    _draw(loaded, config, Path(output), share)
    _save_seconds(loaded, Path(output), rank)


def _save_seconds(loaded: Loaded, output: Path, rank: int) -> None:
    """Each method's seconds per identity made by this process (``.seconds-<rank>.json``, gathered by the scoring
    process): method → person → seconds; people whose images were all reused took none and are not listed."""
    seconds = {method.name: method.seconds_per_identity for method in loaded.methods}
    text = json.dumps(seconds, indent=2) + "\n"
    atomic_write(output / f".seconds-{rank}.json", lambda temporary: temporary.write_text(text))


def _gathered_seconds(output: Path, processes: int) -> dict[str, dict[str, float]]:
    """The seconds per identity every drawing process saved (``_save_seconds``), merged; their files removed."""
    gathered: dict[str, dict[str, float]] = {}
    for rank in range(processes):
        path = output / f".seconds-{rank}.json"
        if path.is_file():
            for method, people in json.loads(path.read_text()).items():
                gathered.setdefault(method, {}).update({person: round(value, 3) for person, value in people.items()})
            path.unlink()
    return gathered


def _written_since(image: DrawnImage, stamps: dict[str, tuple[int, int, int]], output: Path) -> bool:
    """Whether a process of this run drew ``image``: its PNG is not the file ``image_stamps`` found before drawing."""
    stat = image.path.stat()
    return stamps.get(str(image.path.relative_to(output / "images"))) != (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def reference_embeddings(identity_scorer, people) -> dict[str, np.ndarray]:
    """Each person's reference identity row (the mean of their photos' rows with a face); raises naming a person in
    none of whose photos the identity scorer finds a face (people given by an identity file only have none)."""
    references = {}
    for index, person in enumerate(people):
        if not person.photos:
            continue
        rows = identity_scorer.embed(person.photos)
        if np.isnan(rows).any(axis=1).all():
            raise ValueError(f"--references[{index}] ({person.label}): no face found in any of its {len(rows)} "
                             "reference photos, so nothing to compare its images with")  # fmt: skip
        references[person.label] = reference_embedding(rows)
    return references


def score(drawn: list[DrawnImage], suite, scorers: dict, references: dict[str, np.ndarray]) -> dict:
    """Every metric, per method (its default setting) and task and overall, and the sweep's points."""
    groups: dict[tuple[str, str], list[DrawnImage]] = defaultdict(list)  # (method, setting slug) → images
    default_of: dict[str, str] = {}
    for image in drawn:
        setting = image.settings["setting"]
        slug = _slug(setting)
        groups[(image.settings["method"], slug)].append(image)
        if setting.get("default", True):
            default_of.setdefault(image.settings["method"], slug)
    plain = groups.get(("plain", default_of.get("plain", "")), [])
    plain_features = _distance_features(scorers, plain) if plain else None
    tasks = list(suite.tasks)
    methods = {}
    spread = {}
    for method, slug in default_of.items():
        methods[method] = _method_scores(groups[(method, slug)], tasks, scorers, references, plain, plain_features)
        spread[method] = _spread_over_seeds(groups[(method, slug)], scorers, references)
    sweep = []
    for (method, slug), images in groups.items():
        if method != "magicnaming":
            continue
        setting = images[0].settings["setting"]
        values = _method_scores(images, [], scorers, references, None, None)
        sweep.append({"delta": setting.get("delta"), "eta": setting.get("eta"), "default": slug == default_of[method],
                      "clip_ti": values["clip_ti"]["all"],
                      "reference_similarity": values["reference_similarity"]["all"]})  # fmt: skip
    return {"methods": methods, "spread": spread, "sweep": sweep, "scorers": scorers["description"],
            "notes": scorers["notes"]}  # fmt: skip


def _slug(setting: dict) -> str:
    return json.dumps({k: setting.get(k) for k in ("delta", "eta")}, sort_keys=True)


def _method_scores(images, tasks, scorers, references, plain, plain_features) -> dict:
    """One method's metrics: ``{metric: {task: value, ..., "all": value}}``."""
    values: dict[str, dict] = {metric: {} for metric in METRICS}
    by_task = defaultdict(list)
    for image in images:
        by_task[image.settings["task"]].append(image)
    for task in [*tasks, "all"]:
        chosen = images if task == "all" else by_task[task]
        if not chosen:
            continue
        pictures = [Image.open(image.path).convert("RGB") for image in chosen]
        texts = [image.settings["text"] for image in chosen]
        values["clip_ti"][task] = scorers["text_image"](pictures, texts)
        embeddings = scorers["identity"].embed(pictures)
        values["face_detection_rate"][task] = (
            face_detection_rate(embeddings) if scorers["identity"].detects_faces else None
        )
        values["reference_similarity"][task] = _per_person(chosen, embeddings, references, reference_similarity)
        values["identity_consistency"][task] = _per_person(chosen, embeddings, None, identity_consistency)
        if plain is not None and images is not plain:
            values["fid"][task], values["kid"][task] = _distances(chosen, pictures, plain, plain_features, scorers)
        else:
            values["fid"][task] = values["kid"][task] = None  # the plain pipeline is the reference set
    return values


def _spread_over_seeds(images, scorers, references) -> dict:
    """Each seed's images scored alone: ``{metric: over_seeds(...)}`` for CLIP-TI, reference similarity and identity
    consistency over every task (how much the method's figures move with the seeds drawn)."""
    by_seed = defaultdict(list)
    for image in images:
        by_seed[image.settings["seed"]].append(image)
    per_seed: dict[str, list[float]] = {"clip_ti": [], "reference_similarity": [], "identity_consistency": []}
    for seed in sorted(by_seed):
        chosen = by_seed[seed]
        pictures = [Image.open(image.path).convert("RGB") for image in chosen]
        per_seed["clip_ti"].append(scorers["text_image"](pictures, [image.settings["text"] for image in chosen]))
        embeddings = scorers["identity"].embed(pictures)
        per_seed["reference_similarity"].append(_per_person(chosen, embeddings, references, reference_similarity))
        per_seed["identity_consistency"].append(_per_person(chosen, embeddings, None, identity_consistency))
    return {metric: over_seeds(values) for metric, values in per_seed.items() if values and None not in values}


def _per_person(images, embeddings: np.ndarray, references: dict | None, metric) -> float | None:
    """The mean over people of ``metric`` on each person's images (with their reference, when given)."""
    rows = defaultdict(list)
    for row, image in enumerate(images):
        rows[image.settings["person"]].append(row)
    values = []
    for person, indices in rows.items():
        if references is None:
            values.append(metric(embeddings[indices]))
        elif person in references:
            values.append(metric(embeddings[indices], references[person]))
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else None


def _distances(chosen, pictures, plain, plain_features, scorers) -> tuple[float | None, float | None]:
    """FID and KID of these images against the plain pipeline's images of the same prompts and seeds."""
    keys = {(i.settings["person"], i.settings["task"], i.settings["prompt_index"], i.settings["seed"]) for i in chosen}
    rows = [r for r, i in enumerate(plain) if (i.settings["person"], i.settings["task"], i.settings["prompt_index"],
                                                i.settings["seed"]) in keys]  # fmt: skip
    if len(rows) < 2 or len(pictures) < 2:
        return None, None
    from .scorers import distance_features

    real, fake = plain_features[rows], distance_features(scorers["distance"], pictures)
    subset = min(scorers["kid_subset_size"], len(rows), len(pictures))
    return frechet_distance(real, fake), kernel_distance(real, fake, subset)[0]


def _distance_features(scorers, images):
    from .scorers import distance_features

    return distance_features(scorers["distance"], [Image.open(i.path).convert("RGB") for i in images])


def _scorers(checked: CheckedEvaluation, config: EvaluationConfig, device: str) -> dict:
    """The scorers the config asks for ("auto": the miniature world's own on a world, else the real ones), CLIP's on
    ``device``; loaded before any image is drawn, so that a scorer that cannot load fails first."""
    from .identity_scorers import FaceIdentityScorer, JudgeIdentityScorer
    from .scorers import AttributeScorer, ClipTextImageScorer, image_distance_extractor

    scoring, world = config.scoring, checked.world
    text_image = scoring.text_image if scoring.text_image != "auto" else ("attributes" if world else "ViT-L-14")
    identity = scoring.identity if scoring.identity != "auto" else ("judge" if world else "face")
    distance = scoring.distance_features
    if distance == "auto":
        distance = "encoder" if world else "inception"
    if (text_image == "attributes" or identity == "judge") and world is None:
        raise ValueError("--scoring: 'attributes' and 'judge' need a miniature world as --pipeline")
    notes = []
    if text_image == "attributes":
        scorer = AttributeScorer(world)
        text_scorer = scorer.score
        notes.append("CLIP-TI here is its miniature analogue: 100 × the share of images in which the world's "
                     "attribute detectors find what the prompt asked (scene, emotion, style).")  # fmt: skip
    else:
        clip = ClipTextImageScorer(text_image, scoring.text_image_pretrained, device)
        text_scorer = clip.score
    if identity == "judge":
        loaded = scorer.detector if text_image == "attributes" else None  # the world's detector, loaded once
        identity_scorer = JudgeIdentityScorer(world, detector=loaded)
        if identity_scorer.detects_faces:
            notes.append("Identity: the miniature world's identity judge (not the encoder); its attribute detector's "
                         "person head finds the images that show a person (the face-detection rate), and images "
                         "without one are left out of the similarities, as the face stack's are.")  # fmt: skip
        else:
            notes.append(
                "Identity: the miniature world's identity judge (not the encoder). This world was built "
                "before its detector had a person head: the face-detection rate is not measured (–)."
            )
    else:
        identity_scorer = FaceIdentityScorer()
    if distance == "encoder":
        tower = checked.encoder.towers[0]  # its config: the encoder need not be loaded
        extractor = image_distance_extractor(tower.model, tower.pretrained)
        notes.append(f"FID and KID compare features of the evaluated encoder's first image tower ({tower.model}), "
                     "not Inception: comparable within this evaluation only.")  # fmt: skip
    else:
        extractor = image_distance_extractor(distance, scoring.distance_pretrained)
    description = {"text_image": text_image, "identity": identity, "distance_features": distance}
    return {"text_image": text_scorer, "identity": identity_scorer, "distance": extractor,
            "kid_subset_size": scoring.kid_subset_size, "description": description, "notes": notes}  # fmt: skip


def write_outputs(results: dict, drawn: list[DrawnImage], output: Path, command: str | None) -> None:
    """table.md, a grid per task, the trade-off plot, report.html and, last, results.json (text files atomically)."""
    from .report import write_evaluation_report
    from .tradeoff import plot_tradeoff

    table = results_table(results)
    atomic_write(output / "table.md", lambda path: path.write_text(table))
    grids = task_grids(drawn, results["tasks"], output / "grids")
    tradeoff = None
    measured = [p for p in results["sweep"] if p["clip_ti"] is not None and p["reference_similarity"] is not None]
    if len(measured) > 1:  # a setting whose images showed no face has no similarity to plot
        plot_tradeoff(measured, output / "tradeoff.png")
        tradeoff = "tradeoff.png"
    relative = {task: str(path.relative_to(output)) for task, path in grids.items()}
    write_evaluation_report(output / "report.html", results, relative, tradeoff, command, results["notes"])
    text = json.dumps(results, indent=2, sort_keys=True, default=_jsonable) + "\n"
    atomic_write(output / RESULTS, lambda path: path.write_text(text))


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


def task_grids(drawn: list[DrawnImage], tasks: list[str], folder: Path) -> dict[str, Path]:
    """A grid per task: a row per method (its default setting), a column per person and prompt, the first seed."""
    from namespace.figures import plot_grid

    folder.mkdir(parents=True, exist_ok=True)
    grids = {}
    for task in tasks:
        chosen = [i for i in drawn if i.settings["task"] == task and i.settings["setting"].get("default", True)]
        if not chosen:
            continue
        first_seed = min(i.settings["seed"] for i in chosen)
        chosen = [i for i in chosen if i.settings["seed"] == first_seed]
        methods = list(dict.fromkeys(i.settings["method"] for i in chosen))
        columns = list(dict.fromkeys((i.settings["person"], i.settings["prompt_index"]) for i in chosen))
        by_key = {(i.settings["method"], i.settings["person"], i.settings["prompt_index"]): i for i in chosen}
        rows = [[Image.open(by_key[(m, *c)].path).convert("RGB") for c in columns] for m in methods]
        prompt_of = {(i.settings["person"], i.settings["prompt_index"]): i.settings["prompt"] for i in chosen}
        labels = [f"{person}: {prompt_of[(person, index)].replace('{person}', '…')}" for person, index in columns]
        grids[task] = plot_grid(rows, methods, labels, f"Task: {task} (seed {first_seed})", folder / f"{task}.png")
    return grids


def read_results(output: Path) -> dict:
    """The ``results.json`` of a finished evaluation in ``output`` (``methods.<method>.<metric>.<task|all>``, ...)."""
    return json.loads((Path(output) / RESULTS).read_text())
