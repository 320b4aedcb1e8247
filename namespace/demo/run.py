"""``magicnaming demo``: MagicNaming end to end, every stage through its own command.

Tiny CLIP towers pre-trained on synthetic people → the miniature world (a tiny SDXL that knows the sample's famous
people by name, with an identity judge and attribute detectors; built once and cached) → the embedded LaionCele
sample built by the real data pipeline (local HTTP server, img2dataset, the probe on the tiny SDXL and the judge,
faiss cleaning, targets) → the name encoder trained by the real trainer and exported → identities from held-out
reference photos → images through the plugin → an interpolation between two identities → the likeness figures,
scored by the judge → report.html, metrics.json and encoder/ in the output folder. With the full-size configs
(configs/demo-sdxl.yaml) the same steps run on SDXL and the full-size CLIP towers.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..encoder.config import TowerConfig
from ..files import atomic_write
from ..miniature.world import MiniatureWorldConfig
from ..progress import Steps, library_progress_bars_off
from ..seeding import reproducible
from . import checks
from .commands import CommandLog, write_overlay
from .references import Person

MINIATURE_NOTE = (
    "The miniature world: a tiny SDXL (the same diffusers classes and prompt encoding as SDXL, 16-pixel images) "
    "trained here on drawn synthetic people, so that it knows the sample's famous people by name, as SDXL knows "
    "celebrities; an identity judge and attribute detectors trained on other synthetic people score every image. "
    "It shows the method doing its real job on models small enough for a CPU: it is not a face model, its people "
    "are coloured drawings, and its figures say nothing about likeness on real photos with SDXL."
)
TINY_MODELS_NOTE = (
    "Tiny random models produce noise images: the generation and interpolation grids show the machinery "
    "(identities from photos, names prepended into the prompt embeddings, interpolation), not likenesses. Real "
    "results need the full-size configs (configs/demo-sdxl.yaml for this demo; configs/data/laion.yaml and "
    "configs/train/sdxl.yaml for a real encoder) and the SDXL and CLIP weights."
)
FULL_SIZE_NOTE = (
    "The full-size models ran on the embedded sample of fictional people: SDXL knows none of their names, so the "
    "encoder learns names that carry no looks. Likenesses need an encoder trained on LaionCele built from real "
    "caption data (configs/data/laion.yaml, configs/train/sdxl.yaml)."
)
# the miniature world's prompts: its captions know scenes, emotions and styles
DEFAULT_PROMPTS = [
    "a photo of a person",
    "a photo of a person on a beach",
    "a photo of a person looking sad",
    "a watercolor painting of a person",
]
DATA_CONFIGS = ["configs/data/demo.yaml"]  # + configs/data/miniature.yaml on the miniature world


def demo(
    output: Path = Path("demo-output"),
    data_configs: list[Path] | None = None,
    train_configs: list[Path] | None = None,
    train_args: list[str] | None = None,
    likeness_args: list[str] | None = None,
    eval_config: Path | None = None,
    pipeline: str = "miniature",
    miniature: MiniatureWorldConfig | None = None,
    miniature_cache: Path | None = None,
    towers: list[TowerConfig] | None = None,
    tower_pretraining_steps: int = 400,
    num_train_identities: int = 2,
    num_unseen_identities: int = 1,
    references_per_identity: int = 3,
    prompts: list[str] | None = None,
    interpolation_steps: int = 5,
    num_inference_steps: int = 20,
    guidance_scale: float = 2.0,
    image_size: int = 16,
    seed: int = 0,
    device: str = "auto",
    threads: int = 2,
    overwrite: bool = False,
    command_line: str | None = None,
) -> dict:
    """Runs the whole demo into ``output`` and returns what metrics.json holds.

    Args:
        output: a new or empty folder (or, with ``overwrite``, a previous demo output, which is replaced).
        data_configs: ``magicnaming data build`` configs, applied in order (default: configs/data/demo.yaml, and
            configs/data/miniature.yaml on the miniature world).
        train_configs: ``magicnaming train fit`` configs, applied in order (default: configs/train/tiny.yaml).
        train_args: extra ``train fit`` arguments, e.g. ``["--trainer.max_epochs", "30"]``.
        likeness_args: extra ``magicnaming likeness`` arguments (miniature world), e.g. ``["--refine.steps", "50"]``.
        eval_config: the ``magicnaming evaluate`` config of the miniature world's evaluation step (default:
            configs/eval/demo.yaml); the demo gives it its encoder, world, reference photos and image settings.
        pipeline: the SDXL pipeline of the targets and the images (Hub id or folder); ``miniature``: the miniature
            world's tiny SDXL that knows the sample's famous people (built once and cached, with its identity judge:
            the probe uses the judge, and the likeness figures are measured); ``tiny``: the offline tiny pipeline of
            ``namespace.synthetic`` (random weights), saved into the output.
        miniature: the miniature world's settings (``pipeline: miniature``); None: the defaults.
        miniature_cache: where miniature worlds are cached (None: ``$MAGICNAMING_CACHE/miniature`` or
            ``~/.cache/magicnaming/miniature``).
        towers: the CLIP image towers of the feature cache and the encoder; None: tiny towers pre-trained here.
        tower_pretraining_steps: optimisation steps per tiny tower (when ``towers`` is None).
        num_train_identities: train people made into identities from held-out photos (the first two are
            interpolated).
        num_unseen_identities: people the encoder never saw, made into identities too.
        references_per_identity: most reference photos per identity.
        prompts: prompts every identity is drawn in.
        interpolation_steps: identities on the path between the first two (both ends included).
        num_inference_steps: denoising steps per image.
        guidance_scale: classifier-free guidance scale of the images.
        image_size: image side in pixels.
        seed: seeds the towers' pre-training, the tiny pipeline and the image noise (training: its config's seed).
        device: device of the identities and the images (auto, cpu, cuda, ...).
        threads: torch's intra-op threads for every step (the figures reproduce for a given count: a CPU matmul's
            float result depends on how many threads share it).
        overwrite: replace a previous demo output in ``output`` (a folder the demo did not write is never replaced).
        command_line: the command that ran the demo, as typed, for the report (``magicnaming demo`` passes it;
            not a command-line option); None: a Python call.
    """
    started = time.perf_counter()
    plan = check_settings(**{key: value for key, value in locals().items() if key != "started"})
    with reproducible(threads):  # every step in this process, and the processes it spawns
        run = start(plan)
        towers = plan.towers if plan.towers is not None else pretrain_towers(plan, run)
        models = prepare_models(plan, run)
        laioncele = build_laioncele(plan, run, models, towers)
        encoder = train_encoder(plan, run, laioncele, towers)
        identities = make_identities(plan, run, laioncele, encoder)
        images = draw_images(plan, run, models, encoder, identities)
        if plan.mini:
            measure_likeness(plan, run, models, laioncele, encoder)
            evaluate_encoder(plan, run, models, encoder)
        run.step("report", "figures, metrics.json and report.html")
        metrics = collect_metrics(plan, laioncele, encoder, identities)
        write_outputs(plan, run, metrics, laioncele, identities, images, started)
        return metrics


@dataclass(frozen=True)
class Plan:
    """The demo's settings, checked (``demo``'s arguments; the configs resolved to files)."""

    output: Path
    data_configs: list[Path]
    train_configs: list[Path]
    train_args: list[str]
    likeness_args: list[str]
    eval_config: Path
    pipeline: str
    world: MiniatureWorldConfig
    miniature_cache: Path | None
    towers: list[TowerConfig] | None
    tower_pretraining_steps: int
    num_train_identities: int
    num_unseen_identities: int
    references_per_identity: int
    prompts: list[str]
    interpolation_steps: int
    num_inference_steps: int
    guidance_scale: float
    image_size: int
    seed: int
    device: str
    threads: int
    command_line: str | None

    @property
    def mini(self) -> bool:
        return self.pipeline == "miniature"

    @property
    def tiny(self) -> bool:
        return self.pipeline == "tiny"

    @property
    def work(self) -> Path:
        return self.output / "work"

    @property
    def note(self) -> str:
        return MINIATURE_NOTE if self.mini else TINY_MODELS_NOTE if self.tiny else FULL_SIZE_NOTE

    def arguments(self) -> dict:
        """Every setting, as ``work/configs/demo.yaml`` holds them (a config that replays this run)."""
        arguments = {"data_configs": [str(p) for p in self.data_configs]}
        arguments |= {"train_configs": [str(p) for p in self.train_configs], "train_args": self.train_args}
        arguments |= {"likeness_args": self.likeness_args}
        arguments |= {"eval_config": str(self.eval_config), "pipeline": self.pipeline}
        arguments |= {"miniature": asdict(self.world) if self.mini else None}
        arguments |= {"miniature_cache": None if self.miniature_cache is None else str(self.miniature_cache)}
        arguments |= {"towers": None if self.towers is None else [asdict(t) for t in self.towers]}
        arguments |= {"tower_pretraining_steps": self.tower_pretraining_steps, "prompts": self.prompts}
        arguments |= {"seed": self.seed, "num_train_identities": self.num_train_identities}
        arguments |= {"num_unseen_identities": self.num_unseen_identities}
        arguments |= {"references_per_identity": self.references_per_identity, "image_size": self.image_size}
        arguments |= {"interpolation_steps": self.interpolation_steps, "num_inference_steps": self.num_inference_steps}
        return arguments | {"threads": self.threads, "guidance_scale": self.guidance_scale, "device": self.device}


@dataclass
class Run:
    """A running demo: its command log, its numbered steps, each step's start time and each step's command lines
    (for the report: ``towers`` a list, ``encode`` a dict per person, ``generate`` a list, the others a line)."""

    log: CommandLog
    steps: Steps
    demo_config: Path
    marks: dict[str, float] = field(default_factory=dict)
    lines: dict = field(default_factory=lambda: {"towers": []})

    def step(self, key: str, description: str) -> None:
        self.steps.start(description)
        self.marks[key] = time.perf_counter()


@dataclass(frozen=True)
class Models:
    """The SDXL pipeline of the targets and the images (a folder or Hub id), and the miniature world's folder."""

    pipeline: str
    world: Path | None = None


@dataclass(frozen=True)
class Identities:
    """The people made into identities (their reference photos) and their identity files, by identity id."""

    people: list[Person]
    files: dict[int, Path]


@dataclass(frozen=True)
class Images:
    """The generated images (a folder per person) and the interpolation grid."""

    generated: Path
    interpolation: Path


def check_settings(**settings) -> Plan:
    """``demo``'s arguments checked, every problem in one ValueError, the configs resolved to files."""
    problems: list[str] = []
    pipeline, towers = settings["pipeline"], settings["towers"]
    prompts = list(DEFAULT_PROMPTS if settings["prompts"] is None else settings["prompts"])
    data = settings["data_configs"] or _default_data_configs(pipeline)
    data_configs = [checks.config_path(path, f"data_configs[{i}]", problems) for i, path in enumerate(data)]
    train = settings["train_configs"] or ["configs/train/tiny.yaml"]
    train_configs = [checks.config_path(path, f"train_configs[{i}]", problems) for i, path in enumerate(train)]
    eval_config = checks.config_path(settings["eval_config"] or "configs/eval/demo.yaml", "eval_config", problems)
    minimum = {"num_train_identities": 2, "num_unseen_identities": 0, "references_per_identity": 1, "image_size": 8}
    minimum |= {"interpolation_steps": 2, "num_inference_steps": 1}
    minimum |= {"tower_pretraining_steps": 1 if towers is None else 0, "threads": 1}
    checks.check_numbers({key: (settings[key], least) for key, least in minimum.items()}, problems)
    if settings["image_size"] % 8:
        problems.append(f"image_size: expected a multiple of 8, got {settings['image_size']}")
    if not prompts:
        problems.append("prompts: expected at least one prompt, got an empty list")
    if towers is not None and not towers:
        problems.append("towers: expected at least one tower (or null to pre-train the tiny ones), got none")
    world = settings["miniature"] or MiniatureWorldConfig()
    if pipeline == "miniature":
        problems += [f"miniature.{problem}" for problem in world.check()]
        if settings["image_size"] != world.image_size:
            problems.append(
                f"image_size: expected the miniature world's {world.image_size}, got {settings['image_size']}"
            )
    output = Path(settings["output"])
    checks.check_output(output, settings["overwrite"], problems)
    checks.check_installed(problems)
    checks.raise_problems(problems)
    kept = {key: value for key, value in settings.items() if key in Plan.__dataclass_fields__}
    kept |= {"output": output, "data_configs": data_configs, "train_configs": train_configs, "world": world}
    return Plan(
        **kept
        | {"eval_config": eval_config, "prompts": prompts, "train_args": list(settings["train_args"] or [])}
        | {"likeness_args": list(settings["likeness_args"] or [])}
    )


def start(plan: Plan) -> Run:
    """Empties (or makes) the output folder, writes the replayable ``work/configs/demo.yaml`` and says what runs."""
    checks.prepare_output(plan.output)
    demo_config = write_overlay(plan.work / "configs/demo.yaml", plan.arguments())
    print(f"magicnaming demo → {plan.output}/\n{plan.note}\n", file=sys.stderr)
    # data, train, identities, generate, interpolate, report; the towers; the world or the tiny pipeline; likeness
    # and evaluate on the world
    total = 6 + (plan.towers is None) + (plan.mini or plan.tiny) + (2 if plan.mini else 0)
    return Run(CommandLog(plan.work / "commands.sh"), Steps(total=total), demo_config)


def pretrain_towers(plan: Plan, run: Run) -> list[TowerConfig]:
    """The tiny CLIP towers, pre-trained on synthetic people outside the sample (``encoder pretrain_tiny``)."""
    from ..synthetic import commands, tiny_tower_configs

    run.step("towers", "pre-training the tiny CLIP towers on synthetic people outside the sample")
    folder, steps = plan.work / "towers", plan.tower_pretraining_steps
    run.lines["towers"] = [
        run.log.run(commands.main, "encoder pretrain_tiny", ["--output", folder, "--steps", steps, "--seed", plan.seed])
    ]
    towers = []
    for tower in tiny_tower_configs():
        checkpoint = (folder / f"{tower.model}.safetensors").resolve()  # absolute: the stages' configs name it
        if not checkpoint.is_file():
            raise RuntimeError(f"encoder pretrain_tiny did not write {checkpoint}")
        towers.append(TowerConfig(model=tower.model, pretrained=str(checkpoint), embed_dim=tower.embed_dim))
    return towers


def prepare_models(plan: Plan, run: Run) -> Models:
    """The miniature world (built once and cached, through ``miniature build``), the tiny pipeline saved into the
    output, or the pipeline given."""
    if plan.mini:
        run.step("world", "the miniature world: a tiny SDXL that learns the sample's famous people by name")
        world = _miniature_world(run.log, plan.work / "configs/miniature.yaml", plan.world, plan.miniature_cache)
        run.lines["world"] = run.log.lines[-1:]
        return Models(pipeline=str(world / "pipeline"), world=world)
    if plan.tiny:
        run.step("pipeline", "saving the tiny SDXL pipeline (random weights)")
        return Models(pipeline=_save_tiny_pipeline(plan.work / "models/tiny-sdxl", plan.seed))
    return Models(pipeline=plan.pipeline)


def build_laioncele(plan: Plan, run: Run, models: Models, towers: list[TowerConfig]) -> Path:
    """The embedded LaionCele sample built by the data pipeline (``data build``) into ``work/laioncele``."""
    from namespace.data_pipeline.commands import main as data

    run.step("data", "building LaionCele with the data pipeline")
    laioncele = plan.work / "laioncele"
    overlay = {"data": {"pipeline": models.pipeline, "features": {"towers": [asdict(t) for t in towers]}}}
    if plan.mini:  # the sample names the world's famous people; the probe judges with the world's identity judge
        sample = {"num_identities": plan.world.famous, "seed": plan.world.cast_seed}
        overlay["data"]["source"] = {"sample": sample}
        probe = {"embedder": f"judge:{models.world / 'judge'}", "min_consistency": None}  # the judge's threshold
        overlay["data"]["probe"] = probe | {"image_size": plan.world.image_size}
    overlay = write_overlay(plan.work / "configs/data.yaml", overlay)
    run.lines["data"] = run.log.run(
        data, "data", ["build", *_configs(plan.data_configs, overlay), "--output", laioncele]
    )
    return laioncele


def train_encoder(plan: Plan, run: Run, laioncele: Path, towers: list[TowerConfig]) -> Path:
    """The name encoder trained by the trainer (``train fit``, logging CSV metrics) and exported to ``encoder/``."""
    from namespace.train.commands import main as train
    from namespace.train.results import last_checkpoint

    run.step("train", "training the name encoder, then exporting it")
    training, encoder = plan.work / "training", plan.output / "encoder"
    logger = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(training), "name": "logs"},
    }
    overlay = {"trainer": {"logger": logger}, "model": {"encoder": {"towers": [asdict(t) for t in towers]}}}
    overlay = write_overlay(plan.work / "configs/train.yaml", overlay)
    fit = ["fit", *_configs(plan.train_configs, overlay), "--data.data_dir", laioncele]
    fit += ["--trainer.default_root_dir", training]
    fit += ["--trainer.enable_progress_bar", str(sys.stderr.isatty()).lower(), *plan.train_args]
    run.lines["train"] = run.log.run(train, "train", fit)
    export = ["export", "--checkpoint", last_checkpoint(training), "--output", encoder]
    run.lines["export"] = run.log.run(train, "train", export)
    return encoder


def make_identities(plan: Plan, run: Run, laioncele: Path, encoder: Path) -> Identities:
    """Identity files (``identity encode``) from reference photos the encoder never trained on."""
    from namespace.inference.identity_commands import main as identity

    from .references import write_references

    run.step("identities", "identities from reference photos the encoder never trained on")
    people = write_references(
        laioncele,
        plan.work / "references",
        plan.num_train_identities,
        plan.num_unseen_identities,
        plan.references_per_identity,
    )
    files, run.lines["encode"] = {}, {}
    for person in people:
        files[person.identity_id] = plan.output / "identities" / f"{person.slug}.safetensors"
        photos = json.dumps([str(path) for path in person.photos])
        encode = ["encode", "--encoder", encoder, "--images", photos]
        encode += ["--output", files[person.identity_id], "--label", person.name, "--device", plan.device]
        encode += ["--check_faces", "false"]  # synthetic people: no face a real face detector knows
        run.lines["encode"][person.name] = run.log.run(identity, "identity", encode)
    return Identities(people, files)


def draw_images(plan: Plan, run: Run, models: Models, encoder: Path, identities: Identities) -> Images:
    """Every identity in every prompt (``generate``), and the path between the first two (``interpolate``)."""
    from namespace.inference.commands import main_generate, main_interpolate

    people, files, work = identities.people, identities.files, plan.work
    images = ["--encoder", encoder, "--pipeline", models.pipeline, "--prompts", json.dumps(plan.prompts)]
    images += ["--num_inference_steps", plan.num_inference_steps, "--height", plan.image_size]
    images += ["--width", plan.image_size, "--guidance_scale", plan.guidance_scale, "--seed", plan.seed]
    images += ["--device", plan.device]
    run.step("generate", f"drawing {len(people)} identities in {len(plan.prompts)} prompt(s) through the plugin")
    run.lines["generate"] = [
        run.log.run(
            main_generate,
            "generate",
            [*images, "--identity", files[p.identity_id], "--output", work / "generated" / p.slug],
        )
        for p in people
    ]
    run.step("interpolate", f"interpolating between {people[0].name} and {people[1].name}")
    pair = json.dumps([str(files[person.identity_id]) for person in people[:2]])
    interpolation = work / "interpolation.png"
    interpolate = [*images, "--identities", pair, "--steps", plan.interpolation_steps, "--output", interpolation]
    run.lines["interpolate"] = run.log.run(main_interpolate, "interpolate", interpolate)
    return Images(work / "generated", interpolation)


def measure_likeness(plan: Plan, run: Run, models: Models, laioncele: Path, encoder: Path) -> None:
    """Likeness, prompt following and interpolation on the miniature world (``likeness``), into ``work/likeness``."""
    from namespace.data_pipeline.results import probe_results
    from namespace.inference.likeness import main as likeness

    run.step("likeness", "likeness, prompt following and interpolation, scored by the world's identity judge")
    probed = json.dumps([row.name for row in probe_results(laioncele)])  # every name drawn: the report's examples
    measure = ["--world", models.world, "--encoder", encoder, "--laioncele", laioncele]
    measure += ["--output", plan.work / "likeness", "--probe_names", probed]
    measure += ["--num_inference_steps", plan.num_inference_steps, "--guidance_scale", plan.guidance_scale]
    measure += ["--device", plan.device, *plan.likeness_args]
    run.lines["likeness"] = run.log.run(likeness, "likeness", measure)


def evaluate_encoder(plan: Plan, run: Run, models: Models, encoder: Path) -> None:
    """The paper's evaluation on the miniature world (``evaluate``), into ``evaluation/``."""
    from namespace.inference.evaluation.commands import main as evaluate

    run.step("evaluate", "the paper's evaluation: plain against MagicNaming per task, the δ/η sweep, a report")
    evaluation = ["--config", plan.eval_config, "--encoder", encoder, "--pipeline", models.world]
    evaluation += ["--reference_folders", plan.work / "references", "--image_size", plan.image_size]
    evaluation += ["--num_inference_steps", plan.num_inference_steps, "--guidance_scale", plan.guidance_scale]
    evaluation += ["--device", plan.device, "--output", plan.output / "evaluation"]
    run.lines["evaluate"] = run.log.run(evaluate, "evaluate", evaluation)


def collect_metrics(plan: Plan, laioncele: Path, encoder: Path, identities: Identities) -> dict:
    """What metrics.json holds (the step timings are added last)."""
    from ..laioncele import read_manifest
    from .results import encoder_delta, final_metrics, metrics_csv, nearest_names, read_metrics

    counts = read_manifest(laioncele)["counts"]
    rows = read_metrics(metrics_csv(plan.work / "training"))
    metrics = {"format": "magicnaming-demo", "format_version": 1, **final_metrics(rows)}
    metrics |= {"identities": counts["identities"], "train_identities": counts["train_identities"]}
    metrics |= {"unseen_identities": counts["val_identities"], "photos": counts["images"]}
    metrics |= {"identity_files": nearest_names(laioncele, identities.files), "delta": encoder_delta(encoder)}
    metrics |= {"note": plan.note}
    if plan.mini:
        metrics |= _miniature_metrics(laioncele, plan.work / "likeness", plan.world)
        from namespace.inference.evaluation.run import read_results

        metrics["evaluation"] = read_results(plan.output / "evaluation")["methods"]
    return metrics


def write_outputs(
    plan: Plan, run: Run, metrics: dict, laioncele: Path, identities: Identities, images: Images, started: float
) -> None:
    """The figures, metrics.json (with the step timings) and report.html; the closing lines in the terminal."""
    from .report import write_report
    from .report_figures import make_figures
    from .results import metrics_csv, read_metrics

    output, people = plan.output, identities.people
    log_file = metrics_csv(plan.work / "training")
    inputs = {"laioncele": laioncele, "rows": read_metrics(log_file), "metrics_csv": log_file.relative_to(output)}
    inputs |= {"people": people, "generated": images.generated, "interpolation": images.interpolation}
    inputs |= {"prompts": plan.prompts, "image_size": plan.image_size, "tiny": plan.tiny}
    figures = make_figures(output / "figures", inputs, run.lines, metrics)
    if plan.mini:  # the report leads with the likeness
        from .likeness_figures import miniature_figures

        figures = miniature_figures(output / "figures", plan.work / "likeness", metrics, run.lines) + figures
    metrics["seconds"] = _durations(run.marks, started)
    if plan.mini:  # each method's seconds per identity (likeness): timings, not figures that reproduce
        from namespace.inference.likeness import read_likeness

        metrics["seconds"]["per_identity"] = read_likeness(plan.work / "likeness").get("seconds_per_identity", {})
    text = json.dumps(metrics, indent=2, allow_nan=False) + "\n"
    atomic_write(output / "metrics.json", lambda temporary: temporary.write_text(text))
    replay = ["magicnaming", "demo", "--config", str(run.demo_config), "--output", str(output), "--overwrite", "true"]
    evaluation = (output / "evaluation/table.md").read_text() if plan.mini else None
    write_report(
        output / "report.html",
        plan.command_line,
        shlex.join(replay),
        metrics,
        figures,
        people,
        metrics["note"],
        evaluation,
    )
    likeness = _likeness_line(metrics) if plan.mini else ""
    run.steps.done(
        likeness + f"held-out photos of train people: top-1 retrieval {metrics['retrieval_top1_heldout_images']:.3f} "
        f"(chance {metrics['chance']:.3f}); unseen people: {metrics['retrieval_top1_unseen_identities']:.3f}\n"
        f"wrote {output / 'report.html'}, metrics.json and encoder/ in {metrics['seconds']['total'] / 60:.1f} "
        f"minutes.\n{metrics['note']}"
    )


def _likeness_line(metrics: dict) -> str:
    """The console's likeness line: each figure as its mean ± standard deviation over seeds."""
    from ..seed_spread import plus_minus

    spread = metrics["spread"]
    return (
        f"likeness (judge): held-out photos {plus_minus(spread['likeness_heldout'])}, "
        f"no name {plus_minus(spread['likeness_plain'])}, chance {metrics['likeness_chance']:.2f}; "
        f"interpolation monotonic {plus_minus(spread['interpolation_monotonic'])}; "
        f"the tiny SDXL by name {plus_minus(spread['mini_model_name_accuracy'])} (over seeds)\n"
    )


def _default_data_configs(pipeline: str) -> list[str]:
    return [*DATA_CONFIGS, "configs/data/miniature.yaml"] if pipeline == "miniature" else list(DATA_CONFIGS)


def _miniature_metrics(laioncele: Path, likeness: Path, world: MiniatureWorldConfig) -> dict:
    """The likeness figures (``magicnaming likeness``'s flat numbers) and the probe's: the famous names it kept and
    the others (unknown to the tiny SDXL) it dropped."""
    from namespace.data_pipeline.results import probe_results
    from namespace.inference.likeness import read_likeness

    measured = read_likeness(likeness)
    metrics = {key: value for key, value in measured.items() if isinstance(value, float)}
    metrics["spread"] = measured["spread"]  # every figure's mean, standard deviation and per-seed values
    probe = probe_results(laioncele)
    famous = set(_famous_names(world))
    kept = [row.passed for row in probe if row.name in famous]
    dropped = [not row.passed for row in probe if row.name not in famous]
    metrics["probe_known_kept"] = sum(kept) / max(1, len(kept))
    metrics["probe_unknown_dropped"] = sum(dropped) / max(1, len(dropped))
    names = {row.name: {"consistency": row.consistency, "kept": row.passed} for row in probe}
    return metrics | {"probe_names": {name: row | {"famous": name in famous} for name, row in names.items()}}


def _famous_names(world: MiniatureWorldConfig) -> list[str]:
    from ..synthetic.people import cast_names

    return cast_names(world.cast_seed)[: world.famous]


def _miniature_world(log: CommandLog, overlay: Path, config: MiniatureWorldConfig, cache: Path | None) -> Path:
    """Builds (or finds in the cache) the miniature world through ``magicnaming miniature build``."""
    from ..miniature.commands import main as miniature
    from ..miniature.world import default_cache_root

    settings = write_overlay(overlay, {"world": asdict(config), "cache_root": None if cache is None else str(cache)})
    log.run(miniature, "miniature", ["build", "--config", settings])
    folder = (Path(cache) if cache is not None else default_cache_root()) / config.key()
    if not (folder / "world.json").is_file():
        raise RuntimeError(f"miniature build did not write {folder / 'world.json'}")
    return folder.resolve()


def _configs(paths: list[Path], overlay: Path) -> list:
    return [item for path in [*paths, overlay] for item in ("--config", path)]


def _save_tiny_pipeline(folder: Path, seed: int) -> str:
    from ..synthetic import tiny_sdxl_pipeline

    with library_progress_bars_off():  # transformers' "Writing model shards" bars, one per text encoder
        tiny_sdxl_pipeline(seed=seed).save_pretrained(folder)
    print(f"  wrote {folder} (tiny SDXL, random weights)", file=sys.stderr)
    return str(folder)


def _durations(marks: dict[str, float], started: float) -> dict[str, float]:
    """Seconds per step from the steps' start times (each ends where the next starts), and the total."""
    now = time.perf_counter()
    ends = [*list(marks.values())[1:], now]
    durations = {key: round(end - start, 1) for (key, start), end in zip(marks.items(), ends, strict=True)}
    return {**durations, "total": round(now - started, 1)}


def main(argv: list[str], prog: str = "magicnaming demo") -> int:
    """Parses ``argv`` (and its ``--config`` YAMLs) against ``demo``'s signature and runs it, handing it the command
    line as typed for the report."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    from ..help_format import PlainHelpFormatter

    parser = ArgumentParser(prog=prog, description=__doc__, formatter_class=PlainHelpFormatter)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML of demo settings (later ones overlay)")
    parser.add_function_arguments(demo, as_group=False, skip={"command_line"}, sub_configs=True)
    # `instantiate` since jsonargparse 4.49; the older versions this package allows have `instantiate_classes`
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    settings = instantiate(parser.parse_args(argv))
    settings.pop("config", None)
    demo(**settings, command_line=shlex.join([*prog.split(), *argv]))
    return 0
