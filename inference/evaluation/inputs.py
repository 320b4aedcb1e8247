"""Every bad input of ``magicnaming evaluate``, found before any model loads or any image is drawn.

Reads only small files: the prompt suite, the encoder's ``config.json``, identity files, the reference photos (each
decoded once, to fail on a broken file now), the pipeline's ``model_index.json`` and text encoders' ``config.json``,
and the IP-Adapter folder's listing. Problems are gathered into one ``ValueError`` naming each option as typed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from namespace import Identity
from namespace.encoder import NameEncoderConfig
from namespace.images import as_image_list, folder_images
from namespace.model_names import MINIATURE, is_local, parse_pipeline
from namespace.text_sides import text_side_for_folder

from ..inputs import InputCheck, dtype_and_device, encoder_config, identity_file
from ..refine import MAX_SEED
from ..step_window import check_window
from .config import METHODS, EvaluationConfig, ReferenceConfig
from .sharing import check_devices
from .suite import PromptSuite, resolve_suite

LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")  # a label is part of file names


@dataclass
class Reference:
    """A person, checked: the reference photos' paths, or the identity file's identity."""

    label: str
    name: str | None
    photos: list[Path] | None
    identity: Identity | None


@dataclass
class CheckedEvaluation:
    """What the checks read, for the run: the suite, the encoder's config, the people and the pipeline folder.

    Attributes:
        world: the miniature world folder when ``--pipeline`` named one (its judges score the images), else None.
    """

    suite: PromptSuite
    encoder: NameEncoderConfig
    references: list[Reference]
    pipeline: str
    world: Path | None


def check_evaluation(config: EvaluationConfig) -> CheckedEvaluation:
    """Checks every setting of ``config`` and reads the small files; raises one ``ValueError`` listing every problem.

    Raises:
        ValueError: every problem, each naming its option (``--seeds``, ``--references[1].photos``, ...).
    """
    with InputCheck() as check:
        suite = check(resolve_suite, config.suite)
        encoder = check(encoder_config, config.encoder) if config.encoder else None
        if not config.encoder:
            check.problem("--encoder: expected a name-encoder folder or Hub id, got nothing")
        _check_numbers(config, check)
        _check_methods(config, check)
        references = _check_references(config, encoder, check)
        if config.step_window is not None:
            check(check_window, config.step_window, "--step_window")
        pipeline, world = _check_pipeline(config, encoder, check)
        if "ip_adapter" in config.methods:
            _check_ip_adapter(config, check)
        _check_trained_methods(config, check)
        check(dtype_and_device, config.dtype, config.device)
        check(check_devices, config.devices)
    return CheckedEvaluation(suite, encoder, references, pipeline, world)


def _check_pipeline(
    config: EvaluationConfig, encoder: NameEncoderConfig | None, check: InputCheck
) -> tuple[str, Path | None]:
    """The folder or Hub id the pipeline loads from (a miniature world's ``pipeline/``) and the world, if any."""
    pipeline, world = config.pipeline, None
    name = check(parse_pipeline, config.pipeline)  # ``prepared`` made ``miniature`` the default world's folder
    if name is not None and name.kind in (MINIATURE, "world"):
        world = check(name.world, False)  # an unbuilt default world: a problem here, not a build
        pipeline = name.location(build=False) if world is not None else pipeline
        name = check(parse_pipeline, pipeline) if world is not None else None  # its pipeline/: a diffusers folder
    if name is not None and name.kind == "folder" and {"magicnaming", "refined", "lora"} & set(config.methods):
        check(_check_pipeline_folder, Path(pipeline), encoder)
    return pipeline, world


def _check_numbers(config: EvaluationConfig, check: InputCheck) -> None:
    if not config.seeds:
        check.problem("--seeds: expected at least one seed, got an empty list")
    bad = [s for s in config.seeds if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= MAX_SEED]
    if bad:
        check.problem(f"--seeds: expected integers in [0, 2**63 - 1], got {bad}")
    if len(set(config.seeds)) != len(config.seeds):
        check.problem(f"--seeds: expected distinct seeds (a repeated seed draws the same image), got {config.seeds}")
    for argument, value in (("--num_inference_steps", config.num_inference_steps), ("--batch_size", config.batch_size)):
        if value < 1:
            check.problem(f"{argument}: expected at least 1, got {value}")
    if config.image_size is not None and (config.image_size < 8 or config.image_size % 8):
        check.problem(
            f"--image_size: expected a positive multiple of 8 (or null: the pipeline's), got {config.image_size}"
        )
    if not (config.guidance_scale >= 0 and math.isfinite(config.guidance_scale)):
        check.problem(f"--guidance_scale: expected a finite number ≥ 0, got {config.guidance_scale}")
    deltas = [("--delta", config.delta)] * (config.delta is not None)
    deltas += [(f"--sweep.delta[{i}]", value) for i, value in enumerate(config.sweep.delta)]
    for argument, value in deltas:
        if not math.isfinite(value):
            check.problem(f"{argument}: expected a finite name guidance δ, got {value}")
    etas = [("--eta", config.eta)] * (config.eta is not None)
    etas += [(f"--sweep.eta[{i}]", value) for i, value in enumerate(config.sweep.eta)]
    for argument, value in etas:
        if not (value > 0 and math.isfinite(value)):
            check.problem(f"{argument}: expected a name norm η > 0, got {value}")


def _check_methods(config: EvaluationConfig, check: InputCheck) -> None:
    if not config.methods:
        check.problem(f"--methods: expected at least one of {', '.join(METHODS)}, got an empty list")
    unknown = [m for m in config.methods if m not in METHODS]
    if unknown:
        check.problem(f"--methods: expected {', '.join(METHODS)}, got {unknown}")
    if len(set(config.methods)) != len(config.methods):
        check.problem(f"--methods: expected each method once, got {config.methods}")
    if (config.sweep.delta or config.sweep.eta) and "magicnaming" not in config.methods:
        check.problem(f"--sweep: sweeps MagicNaming's δ and η, but --methods has no magicnaming: {config.methods}")


def _check_references(config: EvaluationConfig, encoder: NameEncoderConfig | None, check: InputCheck):
    if not config.references:
        check.problem("--references: expected at least one person (label and photos or identity), got none")
    labels = [r.label for r in config.references]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        check.problem(f"--references: expected distinct labels, got {repeated} more than once")
    return [_reference(reference, encoder, config, i, check.problems) for i, reference in enumerate(config.references)]


def _reference(
    reference: ReferenceConfig, encoder, config: EvaluationConfig, index: int, problems: list[str]
) -> Reference | None:
    """One person: exactly one of photos and identity; photos a folder of readable images; the identity's (N, D) the
    encoder's; photos when IP-Adapter is asked for. Adds each problem to ``problems`` (then returns None)."""
    argument, found = f"--references[{index}]", len(problems)
    if not isinstance(reference.label, str) or not LABEL.fullmatch(reference.label):
        problems.append(f"{argument}.label: expected letters, digits, '-' or '_', starting with a letter, got "
                        f"{reference.label!r}")  # fmt: skip
    if reference.name is not None and not reference.name.strip():
        problems.append(f"{argument}.name: expected the name the pipeline knows the person by, or null, got ''")
    photos = identity = None
    if (reference.photos is None) == (reference.identity is None):
        found = "both" if reference.photos is not None else "neither"
        problems.append(f"{argument}: give either photos (a folder of photos) or identity (an identity file), got "
                        f"{found}")  # fmt: skip
    elif reference.photos is not None:
        photos = _photos(reference.photos, f"{argument}.photos", problems)
    else:
        try:
            identity = identity_file(Path(reference.identity), encoder, f"{argument}.identity")
        except (ValueError, OSError) as error:
            problems.append(str(error))
        if "ip_adapter" in config.methods:
            problems.append(f"{argument}: IP-Adapter (in --methods) needs reference photos, got only an identity file")
        for method in ("refined", "lora"):
            if method in config.methods:
                problems.append(f"{argument}: {method} (in --methods) trains on reference photos, got only an "
                                "identity file")  # fmt: skip
    return None if len(problems) > found else Reference(reference.label, reference.name, photos, identity)


def _photos(folder: str, argument: str, problems: list[str]) -> list[Path] | None:
    path = Path(folder).expanduser()
    if not path.is_dir():
        problems.append(f"{argument}: {folder!r} is not a folder of reference photos")
        return None
    try:
        paths = folder_images(path, argument)
        as_image_list(paths, argument)  # decodes each: a broken file fails now, named
        return paths
    except (ValueError, OSError) as error:
        problems.append(str(error))
        return None


def _check_pipeline_folder(folder: Path, encoder: NameEncoderConfig | None) -> None:
    """MagicNaming needs a pipeline whose text side it knows (``namespace.text_sides``: SDXL today) whose prompt
    embeddings take the encoder's names (all of them, or the family's part): read from the folder's configs."""
    text_side_for_folder(folder, None if encoder is None else encoder.width, "--pipeline", "--encoder")


def _check_trained_methods(config: EvaluationConfig, check: InputCheck) -> None:
    """The ``refined`` method's refinement settings and the ``lora`` method's training settings (and peft)."""
    if "refined" in config.methods:
        for problem in config.refine.problems():
            check.problem(problem)
    if "lora" in config.methods:
        from ..lora_baseline import peft_problems

        for problem in config.lora.problems() + peft_problems():
            check.problem(problem)


def _check_ip_adapter(config: EvaluationConfig, check: InputCheck) -> None:
    settings = config.ip_adapter
    if settings.weights is None:
        check.problem("--ip_adapter.weights: --methods has ip_adapter, which needs its weights (a folder or Hub id)")
        return
    if not (settings.scale >= 0 and math.isfinite(settings.scale)):
        check.problem(f"--ip_adapter.scale: expected a finite number ≥ 0, got {settings.scale}")
    if not is_local(settings.weights):
        return  # a Hub id: checked when it loads
    root = Path(settings.weights).expanduser()
    weights = root / settings.subfolder / settings.weight_name
    if not weights.is_file():
        check.problem(f"--ip_adapter.weights: {str(weights)!r} does not exist (--ip_adapter.subfolder "
                      f"{settings.subfolder!r}, --ip_adapter.weight_name {settings.weight_name!r})")  # fmt: skip
    # load_ip_adapter's rule: a bare name is inside the subfolder, a path with "/" starts at the weights' root
    image_encoder = settings.image_encoder
    encoder_folder = root / settings.subfolder / image_encoder if "/" not in image_encoder else root / image_encoder
    if not (encoder_folder / "config.json").is_file():
        check.problem(f"--ip_adapter.image_encoder: {str(encoder_folder)!r} holds no CLIP image encoder "
                      "(config.json)")  # fmt: skip


__all__ = ["CheckedEvaluation", "Reference", "check_evaluation"]
