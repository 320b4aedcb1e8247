"""``magicnaming generate`` and ``magicnaming interpolate``: the plugin from the command line.

Every image is written with a JSON file beside it holding the settings that made it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

import torch

from namespace.command_line import run_command
from namespace.files import atomic_write, check_new_output
from namespace.images import as_image_list, image_grid, load_image
from namespace.model_names import parse_pipeline, parse_pipeline_config
from namespace.progress import Steps

from .generation_settings import GenerationSettings
from .inputs import InputCheck, dtype_and_device, encoder_config, identity_file, path_list
from .loading import Task, load_naming

IDENTITY_FILE = "identity.safetensors"
IMAGE_FILE = re.compile(r"\d{3,}-\d{2,}\.(png|json)")  # generate's own files: prompt-image.png and its settings


def _write_image(image, path: Path, settings: dict) -> None:
    """The PNG and its settings beside it as strict JSON (a NaN setting raises rather than writing ``NaN``)."""
    text = json.dumps(settings, indent=2, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda temporary: image.save(temporary, format="PNG"))
    atomic_write(path.with_suffix(".json"), lambda t: t.write_text(text))


def generate(
    encoder: str,
    pipeline: str,
    prompts: list[str] | str,
    output: Path = Path("generated"),
    overwrite: bool = False,
    references: list[Path] | Path | None = None,
    identity: Path | None = None,
    negative_prompt: str | None = None,
    num_images_per_prompt: int = 1,
    settings: GenerationSettings = GenerationSettings(),
    task: Task = "text2img",
    image: Path | None = None,
    mask: Path | None = None,
    strength: float = 0.6,
    dtype: str = "auto",
    device: str = "auto",
    pipeline_config: str | None = None,
) -> list[Path]:
    """Draws one identity in every prompt.

    Args:
        encoder: name-encoder folder or Hub id (tiny: the tiny encoder, with --pipeline tiny).
        pipeline: SDXL-family pipeline folder or Hub id, a single-file SDXL checkpoint (*.safetensors), a miniature
            world's folder, miniature or tiny.
        prompts: prompts to draw the identity in (one prompt, or a list).
        output: folder for the PNGs, their settings (JSON) and the identity file used; a new or empty folder.
        overwrite: write into a non-empty --output folder: the images, settings and identity file of an earlier
            generate there are removed first, other files are kept.
        references: reference images of the person (averaged): one image, a folder of images, or a list; or give
            --identity.
        identity: an identity file.
        negative_prompt: negative prompt for every image.
        num_images_per_prompt: images per prompt.
        settings: how the images are drawn (steps, guidance, size, δ, η, step window, seed); the images of prompt p
            use seed + p.
        task: text2img, img2img (needs --image) or inpaint (needs --image and --mask).
        image: the init image for img2img and inpainting.
        mask: the inpainting mask (white = repaint).
        strength: how much of the init image is repainted (img2img, inpaint).
        dtype: auto (fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16.
        device: auto, cpu, cuda, cuda:1, ...
        pipeline_config: for a single-file --pipeline: a diffusers pipeline folder (offline) or Hub id whose configs
            describe it; default: the one diffusers infers for the checkpoint, which needs that repository's configs in
            the local Hub cache when offline.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    with InputCheck() as check:
        person, pictures, extra = _generate_inputs(
            check, encoder, pipeline, pipeline_config, prompts, references, identity, task, image, mask, dtype, device
        )
        for problem in settings.problems(len(prompts)):
            check.problem(problem)
        _check_drawing(check, num_images_per_prompt, strength if task != "text2img" else None)
        check(check_new_output, output, "--output", overwrite, True)
    if task != "text2img":
        extra["strength"] = strength
    steps = Steps(total=2 + (pictures is not None) + len(prompts))
    naming = load_naming(encoder, pipeline, steps, task, dtype, device, pipeline_config)
    if pictures is not None:
        steps.start(f"encoding {len(pictures)} reference image(s)")
        person = naming.identity(pictures, label=path_list(references)[0].stem)
    output = Path(output)
    _clear_earlier_run(output)
    output.mkdir(parents=True, exist_ok=True)
    person.save(output / IDENTITY_FILE)
    written = []
    for p, prompt in enumerate(prompts):
        steps.start(f"image {p + 1}/{len(prompts)}" + (f" (×{num_images_per_prompt})" * (num_images_per_prompt > 1)))
        arguments = settings.call_arguments(p) | extra
        result = naming(
            prompt, person, negative_prompt=negative_prompt, num_images_per_prompt=num_images_per_prompt, **arguments
        )
        for k, picture in enumerate(result.images):
            path = output / f"{p:03d}-{k:02d}.png"
            record = {
                "prompt": prompt,
                "negative_prompt": negative_prompt,
                "identity": {"label": person.label, "source": person.source, "file": IDENTITY_FILE},
                **settings.record(naming),
                "seed": settings.seed + p,
                "image_index": k,
                "task": task,
                "strength": strength if task != "text2img" else None,
                "encoder": encoder,
                "pipeline": pipeline,
                "pipeline_config": pipeline_config,
            }
            _write_image(picture, path, record)
            written.append(path)
    steps.done(f"wrote {len(written)} image(s) to {output}/")
    return written


def _generate_inputs(
    check, encoder, pipeline, pipeline_config, prompts, references, identity, task, image, mask, dtype, device
):
    """Checks the models, the identity and the images of ``generate`` (into ``check``) before a model loads; returns
    the identity file's identity or the decoded reference images, and the pipeline's extra image inputs."""
    person = pictures = None
    extra = {}
    if not prompts:
        check.problem("--prompts: expected at least one prompt, got an empty list")
    config = check(encoder_config, encoder)
    if (references is None) == (identity is None):
        found = "both" if identity is not None else "neither"
        check.problem(f"give either --references (reference images) or --identity (an identity file), got {found}")
    elif identity is not None:
        person = check(identity_file, identity, config)
    else:
        pictures = check(as_image_list, references, "--references")
    if task != "text2img":
        if image is None:
            check.problem(f"--image: --task {task} needs an init image")
        else:
            extra["image"] = check(load_image, image, "--image")
    if task == "inpaint":
        if mask is None:
            check.problem("--mask: --task inpaint needs a mask image")
        else:
            extra["mask_image"] = check(load_image, mask, "--mask")
    check(parse_pipeline_config, pipeline_config, check(parse_pipeline, pipeline))
    check(dtype_and_device, dtype, device)
    return person, pictures, extra


def _check_drawing(check: InputCheck, num_images_per_prompt: int, strength: float | None) -> None:
    """``--num_images_per_prompt`` ≥ 1 and ``--strength`` (when used) in [0, 1]."""
    if num_images_per_prompt < 1:
        check.problem(f"--num_images_per_prompt: expected at least 1, got {num_images_per_prompt}")
    if strength is not None and not 0 <= strength <= 1:
        check.problem(f"--strength: expected a number from 0 to 1, got {strength}")


def _clear_earlier_run(output: Path) -> None:
    """Removes what an earlier ``generate`` wrote into ``output`` (``--overwrite``), so no image of it is taken
    for one of this run; other files stay."""
    if output.is_dir():
        for path in output.iterdir():
            if path.is_file() and (path.name == IDENTITY_FILE or IMAGE_FILE.fullmatch(path.name)):
                path.unlink()


def interpolate(
    encoder: str,
    pipeline: str,
    identities: list[Path] | Path,
    prompts: list[str] | str,
    output: Path = Path("interpolation.png"),
    steps: int = 5,
    method: Literal["lerp", "slerp"] = "lerp",
    settings: GenerationSettings = GenerationSettings(),
    dtype: str = "auto",
    device: str = "auto",
    overwrite: bool = False,
    pipeline_config: str | None = None,
) -> Path:
    """Draws the path between two identities: a PNG grid, a row per step (t = 0 … 1), a column per prompt.

    Args:
        encoder: name-encoder folder or Hub id (tiny: the tiny encoder, with --pipeline tiny).
        pipeline: SDXL-family pipeline folder or Hub id, a single-file SDXL checkpoint (*.safetensors), a miniature
            world's folder, miniature or tiny.
        identities: two identity files (t = 0 and t = 1).
        prompts: prompts, one column each (one prompt, or a list).
        output: the grid PNG; its settings go beside it as JSON.
        steps: rows of the grid, both ends included.
        method: lerp (default, as in the paper; after eq. 5 it walks slerp's arc at another speed) or slerp.
        settings: how the images are drawn; every step is scaled to η (eq. 5); column p uses seed + p, the same noise
            for every cell of a column, so only the identity changes down a column.
        dtype: auto, fp32, fp16 or bf16.
        device: auto, cpu, cuda, ...
        overwrite: replace an existing --output grid (and its settings JSON).
        pipeline_config: for a single-file --pipeline: a diffusers pipeline folder (offline) or Hub id whose configs
            describe it; default: the one diffusers infers for the checkpoint, which needs that repository's configs in
            the local Hub cache when offline.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    identities = path_list(identities)
    with InputCheck() as check:
        if len(identities) != 2:
            check.problem(f"--identities: expected two identity files, got {len(identities)}")
        if steps < 2:
            check.problem(f"--steps: expected at least 2 (both ends), got {steps}")
        if not prompts:
            check.problem("--prompts: expected at least one prompt, got an empty list")
        config = check(encoder_config, encoder)
        ends = [check(identity_file, path, config, f"--identities[{i}]") for i, path in enumerate(identities)]
        for problem in settings.problems(len(prompts)):
            check.problem(problem)
        check(parse_pipeline_config, pipeline_config, check(parse_pipeline, pipeline))
        check(dtype_and_device, dtype, device)
        check(check_new_output, output, "--output", overwrite)
    a, b = ends
    progress = Steps(total=2 + steps * len(prompts))
    naming = load_naming(encoder, pipeline, progress, "text2img", dtype, device, pipeline_config)
    ts = torch.linspace(0, 1, steps).tolist()
    rows = []
    for r, t in enumerate(ts):
        person = naming.interpolate(a, b, t, method=method)
        row = []
        for p, prompt in enumerate(prompts):
            progress.start(f"image {r * len(prompts) + p + 1}/{steps * len(prompts)}: t = {t:.2f}, prompt {p + 1}")
            row += naming(prompt, person, **settings.call_arguments(p)).images
        rows.append(row)
    record = {
        "identities": [str(path) for path in identities],
        "labels": [a.label, b.label],
        "rows_t": ts,
        "columns_prompts": prompts,
        "method": method,
        **settings.record(naming),
        "encoder": encoder,
        "pipeline": pipeline,
        "pipeline_config": pipeline_config,
    }
    _write_image(image_grid(rows), Path(output), record)
    progress.done(f"wrote {output} ({steps} steps × {len(prompts)} prompts)")
    return Path(output)


def main_generate(argv: list[str], prog: str = "magicnaming generate") -> int:
    run_command(generate, argv, prog)
    return 0


def main_interpolate(argv: list[str], prog: str = "magicnaming interpolate") -> int:
    run_command(interpolate, argv, prog)
    return 0
