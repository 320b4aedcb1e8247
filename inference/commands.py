"""``magicnaming generate`` and ``magicnaming interpolate``: the plugin from the command line.

Every image is written with a JSON file beside it holding the settings that made it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch

from namespace.files import atomic_write
from namespace.images import image_grid
from namespace.progress import progress

from .loading import Task, load_encoder, load_pipeline
from .plugin import MagicNaming


def _write_image(image, path: Path, settings: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda temporary: image.save(temporary, format="PNG"))
    atomic_write(path.with_suffix(".json"), lambda t: t.write_text(json.dumps(settings, indent=2) + "\n"))


def _identity(naming: MagicNaming, references: list[Path] | None, identity: Path | None):
    if (references is None) == (identity is None):
        raise ValueError("give either references (reference images) or identity (an identity file), not both or none")
    if identity is not None:
        return naming.load(str(identity))
    if not references:
        raise ValueError("references: expected at least one image, got an empty list")
    return naming.identity(references, label=Path(references[0]).stem)


def generate(
    encoder: str,
    pipeline: str,
    prompts: list[str],
    output: Path = Path("generated"),
    references: list[Path] | None = None,
    identity: Path | None = None,
    negative_prompt: str | None = None,
    delta: float | None = None,
    eta: float | None = None,
    step_window: tuple[float, float] | None = None,
    num_images_per_prompt: int = 1,
    num_inference_steps: int = 30,
    guidance_scale: float = 5.0,
    height: int | None = None,
    width: int | None = None,
    task: Task = "text2img",
    image: Path | None = None,
    mask: Path | None = None,
    strength: float = 0.6,
    seed: int = 0,
    dtype: str = "auto",
    device: str = "auto",
) -> list[Path]:
    """Draws one identity in every prompt.

    Args:
        encoder: name-encoder folder or Hub id.
        pipeline: SDXL-family pipeline folder or Hub id.
        prompts: prompts to draw the identity in.
        output: folder for the PNGs, their settings (JSON) and the identity file used.
        references: reference images of the person (averaged); or give ``identity``.
        identity: an identity file.
        negative_prompt: negative prompt for every image.
        delta: name guidance δ (default: 1.0, names as predicted).
        eta: name norm η (default: the encoder's mean training-name norm).
        step_window: (start, end) fractions of the steps in which the name is applied (default: all).
        num_images_per_prompt: images per prompt.
        num_inference_steps: denoising steps.
        guidance_scale: classifier-free guidance scale.
        height: image height (default: the pipeline's).
        width: image width (default: the pipeline's).
        task: text2img, img2img (needs ``image``) or inpaint (needs ``image`` and ``mask``).
        image: the init image for img2img and inpainting.
        mask: the inpainting mask (white = repaint).
        strength: how much of the init image is repainted (img2img, inpaint).
        seed: seeds the noise; image k of prompt p uses seed + p.
        dtype: auto (fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16.
        device: auto, cpu, cuda, cuda:1, ...
    """
    from namespace.images import load_image

    if task != "text2img" and image is None:
        raise ValueError(f"image: task {task!r} needs an init image")
    if task == "inpaint" and mask is None:
        raise ValueError("mask: task 'inpaint' needs a mask image")
    naming = MagicNaming(load_pipeline(pipeline, task, dtype, device), load_encoder(encoder, device))
    person = _identity(naming, references, identity)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    person.save(output / "identity.safetensors")
    extra = {}
    if task != "text2img":
        extra = {"image": load_image(image, "image"), "strength": strength}
        if task == "inpaint":
            extra["mask_image"] = load_image(mask, "mask")
    written = []
    for p, prompt in enumerate(progress(prompts, desc="prompts", unit="prompt")):
        result = naming(
            prompt,
            person,
            negative_prompt=negative_prompt,
            delta=delta,
            eta=eta,
            step_window=step_window,
            num_images_per_prompt=num_images_per_prompt,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            height=height,
            width=width,
            generator=torch.Generator().manual_seed(seed + p),
            **extra,
        )
        for k, picture in enumerate(result.images):
            path = output / f"{p:03d}-{k:02d}.png"
            settings = {
                "prompt": prompt,
                "negative_prompt": negative_prompt,
                "identity": {"label": person.label, "source": person.source, "file": "identity.safetensors"},
                "delta": naming.delta if delta is None else delta,
                "eta": naming.encoder.statistics.norm if eta is None else eta,
                "step_window": list(step_window) if step_window else None,
                "seed": seed + p,
                "image_index": k,
                "num_inference_steps": num_inference_steps,
                "guidance_scale": guidance_scale,
                "task": task,
                "strength": strength if task != "text2img" else None,
                "encoder": encoder,
                "pipeline": pipeline,
            }
            _write_image(picture, path, settings)
            written.append(path)
    print(f"wrote {len(written)} image(s) to {output}/")
    return written


def interpolate(
    encoder: str,
    pipeline: str,
    identities: list[Path],
    prompts: list[str],
    output: Path = Path("interpolation.png"),
    steps: int = 5,
    method: Literal["lerp", "slerp"] = "slerp",
    delta: float | None = None,
    eta: float | None = None,
    num_inference_steps: int = 30,
    guidance_scale: float = 5.0,
    height: int | None = None,
    width: int | None = None,
    seed: int = 0,
    dtype: str = "auto",
    device: str = "auto",
) -> Path:
    """Draws the path between two identities: a PNG grid, a row per step (t = 0 … 1), a column per prompt.

    Args:
        encoder: name-encoder folder or Hub id.
        pipeline: SDXL-family pipeline folder or Hub id.
        identities: two identity files (t = 0 and t = 1).
        prompts: prompts, one column each.
        output: the grid PNG; its settings go beside it as JSON.
        steps: rows of the grid, both ends included.
        method: slerp (default) or lerp.
        delta: name guidance δ.
        eta: name norm η (default: the encoder's); every step is scaled to it (eq. 5).
        num_inference_steps: denoising steps.
        guidance_scale: classifier-free guidance scale.
        height: image height (default: the pipeline's).
        width: image width (default: the pipeline's).
        seed: the same noise for every cell of a column, so only the identity changes down a column.
        dtype: auto, fp32, fp16 or bf16.
        device: auto, cpu, cuda, ...
    """
    if len(identities) != 2:
        raise ValueError(f"identities: expected two identity files, got {len(identities)}")
    if steps < 2:
        raise ValueError(f"steps: expected at least 2 (both ends), got {steps}")
    naming = MagicNaming(load_pipeline(pipeline, "text2img", dtype, device), load_encoder(encoder, device))
    a, b = (naming.load(str(path)) for path in identities)
    ts = torch.linspace(0, 1, steps).tolist()
    rows = []
    for t in progress(ts, desc="steps", unit="step"):
        person = naming.interpolate(a, b, t, method=method)
        row = []
        for p, prompt in enumerate(prompts):
            generator = torch.Generator().manual_seed(seed + p)
            row += naming(
                prompt,
                person,
                delta=delta,
                eta=eta,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                height=height,
                width=width,
                generator=generator,
            ).images
        rows.append(row)
    settings = {
        "identities": [str(path) for path in identities],
        "labels": [a.label, b.label],
        "rows_t": ts,
        "columns_prompts": prompts,
        "method": method,
        "delta": naming.delta if delta is None else delta,
        "eta": naming.encoder.statistics.norm if eta is None else eta,
        "seed": seed,
        "num_inference_steps": num_inference_steps,
        "guidance_scale": guidance_scale,
        "encoder": encoder,
        "pipeline": pipeline,
    }
    _write_image(image_grid(rows), Path(output), settings)
    print(f"wrote {output} ({steps} steps × {len(prompts)} prompts)")
    return Path(output)


def main_generate(argv: list[str], prog: str = "magicnaming generate") -> int:
    from jsonargparse import CLI

    CLI(generate, args=argv, prog=prog, as_positional=False)
    return 0


def main_interpolate(argv: list[str], prog: str = "magicnaming interpolate") -> int:
    from jsonargparse import CLI

    CLI(interpolate, args=argv, prog=prog, as_positional=False)
    return 0
