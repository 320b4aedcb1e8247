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
from dataclasses import asdict
from pathlib import Path

from ..encoder.config import TowerConfig
from ..files import atomic_write
from ..miniature.world import MiniatureWorldConfig
from ..progress import Steps, library_progress_bars_off
from ..seeding import reproducible
from . import checks
from .commands import CommandLog, write_overlay

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
    output, prompts, problems = Path(output), list(DEFAULT_PROMPTS if prompts is None else prompts), []
    data_configs = [
        checks.config_path(path, f"data_configs[{i}]", problems)
        for i, path in enumerate(data_configs or _default_data_configs(pipeline))
    ]
    train_configs = [
        checks.config_path(path, f"train_configs[{i}]", problems)
        for i, path in enumerate(train_configs or ["configs/train/tiny.yaml"])
    ]
    eval_config = checks.config_path(eval_config or "configs/eval/demo.yaml", "eval_config", problems)
    numbers = {"num_train_identities": (num_train_identities, 2), "num_unseen_identities": (num_unseen_identities, 0)}
    numbers |= {"references_per_identity": (references_per_identity, 1), "image_size": (image_size, 8)}
    numbers |= {"interpolation_steps": (interpolation_steps, 2), "num_inference_steps": (num_inference_steps, 1)}
    numbers |= {
        "tower_pretraining_steps": (tower_pretraining_steps, 1 if towers is None else 0),
        "threads": (threads, 1),
    }
    checks.check_numbers(numbers, problems)
    if image_size % 8:
        problems.append(f"image_size: expected a multiple of 8, got {image_size}")
    if not prompts:
        problems.append("prompts: expected at least one prompt, got an empty list")
    if towers is not None and not towers:
        problems.append("towers: expected at least one tower (or null to pre-train the tiny ones), got none")
    mini, tiny = pipeline == "miniature", pipeline == "tiny"
    world_config = miniature or MiniatureWorldConfig()
    if mini:
        problems += [f"miniature.{problem}" for problem in world_config.check()]
        if image_size != world_config.image_size:
            problems.append(f"image_size: expected the miniature world's {world_config.image_size}, got {image_size}")
    checks.check_output(output, overwrite, problems)
    checks.check_installed(problems)
    checks.raise_problems(problems)

    with reproducible(threads):  # every step in this process, and the processes it spawns
        checks.prepare_output(output)
        work = output / "work"
        arguments = {"data_configs": [str(p) for p in data_configs], "train_configs": [str(p) for p in train_configs]}
        arguments |= {"train_args": list(train_args or []), "eval_config": str(eval_config), "pipeline": pipeline}
        arguments |= {"miniature": asdict(world_config) if mini else None}
        arguments |= {"miniature_cache": None if miniature_cache is None else str(miniature_cache)}
        arguments |= {"towers": None if towers is None else [asdict(t) for t in towers]}
        arguments |= {"tower_pretraining_steps": tower_pretraining_steps, "prompts": prompts, "seed": seed}
        arguments |= {key: value for key, (value, _) in numbers.items()}
        arguments |= {"guidance_scale": guidance_scale, "device": device, "threads": threads}
        demo_config = write_overlay(work / "configs/demo.yaml", arguments)  # replays this run
        note = MINIATURE_NOTE if mini else TINY_MODELS_NOTE if tiny else FULL_SIZE_NOTE
        print(f"magicnaming demo → {output}/\n{note}\n", file=sys.stderr)
        # data, train, identities, generate, interpolate, report; the towers; the world or the tiny pipeline; likeness
        # and evaluate on the world
        total = 6 + (towers is None) + (mini or tiny) + (2 if mini else 0)
        log, steps, marks = CommandLog(work / "commands.sh"), Steps(total=total), {}

        def step(key: str, description: str) -> None:
            steps.start(description)
            marks[key] = time.perf_counter()

        lines: dict = {"towers": []}
        if towers is None:
            step("towers", "pre-training the tiny CLIP towers on synthetic people outside the sample")
            towers = _pretrain_tiny_towers(log, work / "towers", tower_pretraining_steps, seed)
            lines["towers"] = log.lines[-1:]
        if mini:
            step("world", "the miniature world: a tiny SDXL that learns the sample's famous people by name")
            world = _miniature_world(log, work / "configs/miniature.yaml", world_config, miniature_cache)
            pipeline, lines["world"] = str(world / "pipeline"), log.lines[-1:]
        if tiny:
            step("pipeline", "saving the tiny SDXL pipeline (random weights)")
            pipeline = _save_tiny_pipeline(work / "models/tiny-sdxl", seed)
        tower_settings = [asdict(tower) for tower in towers]

        step("data", "building LaionCele with the data pipeline")
        laioncele = work / "laioncele"
        overlay = {"data": {"pipeline": pipeline, "features": {"towers": tower_settings}}}
        if mini:  # the sample names the world's famous people; the probe judges with the world's identity judge
            sample = {"num_identities": world_config.famous, "seed": world_config.cast_seed}
            overlay["data"]["source"] = {"sample": sample}
            probe = {
                "embedder": f"judge:{world / 'judge'}",
                "min_consistency": None,
            }  # the judge's calibrated threshold
            overlay["data"]["probe"] = probe | {"image_size": world_config.image_size}
        overlay = write_overlay(work / "configs/data.yaml", overlay)
        lines["data"] = log.run(["data", "build", *_configs(data_configs, overlay), "--output", laioncele])

        step("train", "training the name encoder, then exporting it")
        logger = {
            "class_path": "lightning.pytorch.loggers.CSVLogger",
            "init_args": {"save_dir": str(work / "training"), "name": "logs"},
        }
        overlay = {"trainer": {"logger": logger}, "model": {"encoder": {"towers": tower_settings}}}
        overlay = write_overlay(work / "configs/train.yaml", overlay)
        fit = ["train", "fit", *_configs(train_configs, overlay), "--data.data_dir", laioncele]
        fit += ["--trainer.default_root_dir", work / "training"]
        fit += ["--trainer.enable_progress_bar", str(sys.stderr.isatty()).lower(), *(train_args or [])]
        lines["train"] = log.run(fit)
        checkpoint = _last_checkpoint(work / "training")
        lines["export"] = log.run(["train", "export", "--checkpoint", checkpoint, "--output", output / "encoder"])

        step("identities", "identities from reference photos the encoder never trained on")
        from .references import write_references

        people = write_references(
            laioncele, work / "references", num_train_identities, num_unseen_identities, references_per_identity
        )
        files, lines["encode"] = {}, {}
        for person in people:
            files[person.identity_id] = output / "identities" / f"{person.slug}.safetensors"
            photos = json.dumps([str(path) for path in person.photos])
            encode = ["identity", "encode", "--encoder", output / "encoder", "--images", photos]
            encode += ["--output", files[person.identity_id], "--label", person.name, "--device", device]
            encode += ["--check_faces", "false"]  # synthetic people: no face a real face detector knows
            lines["encode"][person.name] = log.run(encode)

        images = ["--encoder", output / "encoder", "--pipeline", pipeline, "--prompts", json.dumps(prompts)]
        images += ["--num_inference_steps", num_inference_steps, "--height", image_size, "--width", image_size]
        images += ["--guidance_scale", guidance_scale, "--seed", seed, "--device", device]
        step("generate", f"drawing {len(people)} identities in {len(prompts)} prompt(s) through the plugin")
        lines["generate"] = [
            log.run(["generate", *images, "--identity", files[p.identity_id], "--output", work / "generated" / p.slug])
            for p in people
        ]

        step("interpolate", f"interpolating between {people[0].name} and {people[1].name}")
        pair = json.dumps([str(files[person.identity_id]) for person in people[:2]])
        interpolation = work / "interpolation.png"
        interpolate = ["interpolate", *images, "--identities", pair, "--steps", interpolation_steps]
        lines["interpolate"] = log.run([*interpolate, "--output", interpolation])

        if mini:
            step("likeness", "likeness, prompt following and interpolation, scored by the world's identity judge")
            likeness = ["likeness", "--world", world, "--encoder", output / "encoder", "--laioncele", laioncele]
            likeness += ["--output", work / "likeness", "--probe_names", json.dumps(_probed_names(laioncele))]
            likeness += ["--num_inference_steps", num_inference_steps, "--guidance_scale", guidance_scale]
            lines["likeness"] = log.run([*likeness, "--device", device])

            step("evaluate", "the paper's evaluation: plain against MagicNaming per task, the δ/η sweep, a report")
            evaluation = ["evaluate", "--config", eval_config, "--encoder", output / "encoder", "--pipeline", world]
            evaluation += ["--reference_folders", work / "references", "--image_size", image_size]
            evaluation += ["--num_inference_steps", num_inference_steps, "--guidance_scale", guidance_scale]
            lines["evaluate"] = log.run([*evaluation, "--device", device, "--output", output / "evaluation"])

        step("report", "figures, metrics.json and report.html")
        from .report import write_report
        from .report_figures import make_figures
        from .results import metrics_csv, read_metrics

        log_file = metrics_csv(work / "training")
        rows = read_metrics(log_file)
        metrics = _metrics(rows, laioncele, files, output / "encoder", note)
        if mini:
            metrics |= _miniature_metrics(laioncele, work / "likeness", world_config)
            metrics["evaluation"] = json.loads((output / "evaluation/results.json").read_text())["methods"]
        inputs = {"laioncele": laioncele, "rows": rows, "metrics_csv": log_file.relative_to(output), "people": people}
        inputs |= {"generated": work / "generated", "interpolation": interpolation, "prompts": prompts}
        inputs |= {"image_size": image_size, "tiny": tiny}
        figures = make_figures(output / "figures", inputs, lines, metrics)
        if mini:  # the report leads with the likeness
            from .likeness_figures import miniature_figures

            figures = miniature_figures(output / "figures", work / "likeness", metrics, lines) + figures
        metrics["seconds"] = _durations(marks, started)
        text = json.dumps(metrics, indent=2, allow_nan=False) + "\n"
        atomic_write(output / "metrics.json", lambda temporary: temporary.write_text(text))
        replay = ["magicnaming", "demo", "--config", str(demo_config), "--output", str(output), "--overwrite", "true"]
        replay = shlex.join(replay)
        evaluation = (output / "evaluation/table.md").read_text() if mini else None
        write_report(
            output / "report.html", command_line, replay, metrics, figures, people, metrics["note"], evaluation
        )
        likeness = _likeness_line(metrics) if mini else ""
        steps.done(
            likeness
            + f"held-out photos of train people: top-1 retrieval {metrics['retrieval_top1_heldout_images']:.3f} "
            f"(chance {metrics['chance']:.3f}); unseen people: {metrics['retrieval_top1_unseen_identities']:.3f}\n"
            f"wrote {output / 'report.html'}, metrics.json and encoder/ in {metrics['seconds']['total'] / 60:.1f} "
            f"minutes.\n{metrics['note']}"
        )
        return metrics


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


def _metrics(rows: list[dict[str, float]], laioncele: Path, files: dict[int, Path], encoder: Path, note: str) -> dict:
    """What metrics.json holds (the step timings are added last)."""
    from .results import encoder_delta, final_metrics, nearest_names

    counts = json.loads((laioncele / "manifest.json").read_text())["counts"]
    metrics = {"format": "magicnaming-demo", "format_version": 1, **final_metrics(rows)}
    metrics |= {"identities": counts["identities"], "train_identities": counts["train_identities"]}
    metrics |= {"unseen_identities": counts["val_identities"], "photos": counts["images"]}
    metrics |= {"identity_files": nearest_names(laioncele, files), "delta": encoder_delta(encoder)}
    return metrics | {"note": note}


def _miniature_metrics(laioncele: Path, likeness: Path, world: MiniatureWorldConfig) -> dict:
    """The likeness figures (``magicnaming likeness``'s flat numbers) and the probe's: the famous names it kept and
    the others (unknown to the tiny SDXL) it dropped."""
    import pyarrow.parquet as pq

    measured = json.loads((likeness / "likeness.json").read_text())
    metrics = {key: value for key, value in measured.items() if isinstance(value, float)}
    metrics["spread"] = measured["spread"]  # every figure's mean, standard deviation and per-seed values
    probe = pq.read_table(laioncele / "work/probe/probe.parquet").to_pylist()
    famous = set(_famous_names(world))
    kept = [row["passed"] for row in probe if row["name"] in famous]
    dropped = [not row["passed"] for row in probe if row["name"] not in famous]
    metrics["probe_known_kept"] = sum(kept) / max(1, len(kept))
    metrics["probe_unknown_dropped"] = sum(dropped) / max(1, len(dropped))
    names = {row["name"]: {"consistency": row["consistency"], "kept": row["passed"]} for row in probe}
    return metrics | {"probe_names": {name: row | {"famous": name in famous} for name, row in names.items()}}


def _famous_names(world: MiniatureWorldConfig) -> list[str]:
    from ..synthetic.people import cast_names

    return cast_names(world.cast_seed)[: world.famous]


def _probed_names(laioncele: Path) -> list[str]:
    """Every name the probe drew (kept or not), for the report's probe examples."""
    import pyarrow.parquet as pq

    return pq.read_table(laioncele / "work/probe/probe.parquet").column("name").to_pylist()


def _miniature_world(log: CommandLog, overlay: Path, config: MiniatureWorldConfig, cache: Path | None) -> Path:
    """Builds (or finds in the cache) the miniature world through ``magicnaming miniature build``."""
    from ..miniature.world import default_cache_root

    settings = write_overlay(overlay, {"world": asdict(config), "cache_root": None if cache is None else str(cache)})
    log.run(["miniature", "build", "--config", settings])
    folder = (Path(cache) if cache is not None else default_cache_root()) / config.key()
    if not (folder / "world.json").is_file():
        raise RuntimeError(f"miniature build did not write {folder / 'world.json'}")
    return folder.resolve()


def _configs(paths: list[Path], overlay: Path) -> list:
    return [item for path in [*paths, overlay] for item in ("--config", path)]


def _pretrain_tiny_towers(log: CommandLog, folder: Path, steps: int, seed: int) -> list[TowerConfig]:
    from ..synthetic import tiny_tower_configs

    log.run(["encoder", "pretrain_tiny", "--output", folder, "--steps", steps, "--seed", seed])
    towers = []
    for tower in tiny_tower_configs():
        checkpoint = (folder / f"{tower.model}.safetensors").resolve()  # absolute: the stages' configs name it
        if not checkpoint.is_file():
            raise RuntimeError(f"encoder pretrain_tiny did not write {checkpoint}")
        towers.append(TowerConfig(model=tower.model, pretrained=str(checkpoint), embed_dim=tower.embed_dim))
    return towers


def _save_tiny_pipeline(folder: Path, seed: int) -> str:
    from ..synthetic import tiny_sdxl_pipeline

    with library_progress_bars_off():  # transformers' "Writing model shards" bars, one per text encoder
        tiny_sdxl_pipeline(seed=seed).save_pretrained(folder)
    print(f"  wrote {folder} (tiny SDXL, random weights)", file=sys.stderr)
    return str(folder)


def _last_checkpoint(training: Path) -> Path:
    found = sorted(training.glob("*/version_*/checkpoints/last.ckpt"), key=lambda p: int(p.parents[1].name[8:]))
    if not found:
        raise RuntimeError(f"no last.ckpt under {training}: the train config needs ModelCheckpoint(save_last=true)")
    return found[-1]


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
