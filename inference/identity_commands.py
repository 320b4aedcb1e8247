"""``magicnaming identity encode|mix|sample|from_text|refine``: make identity files."""

from __future__ import annotations

from pathlib import Path

from namespace import Identity
from namespace.command_line import run_command
from namespace.encoder.reference_crop import check_crop_mode, check_face_stack
from namespace.faces import CropMode
from namespace.files import check_new_output
from namespace.images import as_image_list
from namespace.model_names import load_encoder, parse_pipeline
from namespace.progress import Steps

from .inputs import InputCheck, dtype_and_device, encoder_config, identity_file, path_list
from .loading import load_naming
from .plugin import reference_identity


def encode(
    encoder: str,
    images: list[Path] | Path,
    output: Path,
    label: str | None = None,
    crop: CropMode | None = None,
    check_faces: bool = True,
    device: str = "auto",
    overwrite: bool = False,
) -> Path:
    """Encodes reference images of one person into an identity file (their names are averaged). With the face
    stack installed, a reference with no face or several faces is warned about.

    Args:
        encoder: name-encoder folder or Hub id.
        images: reference images: one image, a folder of images, or a list.
        output: the identity file to write (.safetensors).
        label: the identity's label (default: the output file's name).
        crop: crop each reference to its face first: none, loose or aligned (default: the encoder's
            reference_crop, what it was trained with).
        check_faces: warn about references with no face or several (false: no check, e.g. for synthetic people).
        device: auto, cpu, cuda, ...
        overwrite: replace an existing ``output`` (otherwise it is refused).
    """
    with InputCheck() as check:
        check(check_new_output, output, "--output", overwrite)
        config = check(encoder_config, encoder)
        pictures = check(as_image_list, images, "--images")
        if crop is not None:
            check(check_crop_mode, crop, "--crop")
        check(dtype_and_device, "auto", device)
    check_face_stack(crop or config.reference_crop, "--crop")  # before the encoder loads
    model = load_encoder(encoder, device)
    identity = reference_identity(model, pictures, label or Path(output).stem, crop, "--images", check_faces)
    identity.encoder = encoder
    return _saved(identity, output)


def mix(
    identities: list[Path] | Path,
    output: Path,
    weights: list[float] | None = None,
    label: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Mixes several identity files into one (weighted mean; weights default to equal).

    Args:
        identities: identity files of one encoder.
        output: the identity file to write.
        weights: one weight per identity; they need not sum to 1 (they are normalised).
        label: the identity's label (default: the output file's name).
        overwrite: replace an existing ``output`` (otherwise it is refused).
    """
    from namespace import mix as mix_names

    check_new_output(output, "--output", overwrite)
    identities = path_list(identities)
    if not identities:
        raise ValueError("--identities: expected at least one identity file, got none")
    first = identity_file(identities[0], None, "--identities[0]")
    shape = first.num_tokens, first.width
    with InputCheck() as check:
        rest = [check(_same_shape, path, shape, f"--identities[{i}]") for i, path in enumerate(identities[1:], 1)]
    parts = [first, *rest]
    metadata = {"parts": ",".join(part.label for part in parts), "weights": str(weights or [])}
    mixed = Identity(
        mix_names([p.embedding for p in parts], weights), label or Path(output).stem, "mix", metadata=metadata
    )
    return _saved(mixed, output)


def _same_shape(path: Path, shape: tuple[int, int], argument: str) -> Identity:
    identity = identity_file(path, None, argument)
    if (identity.num_tokens, identity.width) != shape:
        raise ValueError(
            f"{argument}: {path} has shape (N, D) = {(identity.num_tokens, identity.width)}, the first identity {shape}"
        )
    return identity


def sample(
    encoder: str,
    output: Path,
    num: int = 1,
    seed: int = 0,
    temperature: float = 1.0,
    label: str = "sampled",
    overwrite: bool = False,
) -> list[Path]:
    """Samples new, fictional identities from the encoder's name-space statistics.

    Args:
        encoder: name-encoder folder or Hub id (must hold statistics, as exported by training).
        output: a folder; identity k is written as ``{label}-{k}.safetensors``.
        num: identities to sample.
        seed: seeds the sampling.
        temperature: spread around the mean name (1 = as in training; below 1 closer to the average person).
        label: label prefix.
        overwrite: replace existing identity files of those names (otherwise they are refused).
    """
    paths = [Path(output) / f"{label}-{k}.safetensors" for k in range(num)]
    with InputCheck() as check:
        for path in paths:
            check(check_new_output, path, "--output", overwrite)
        check(encoder_config, encoder)  # names --encoder if it is not an encoder folder
    model = load_encoder(encoder, "cpu", load_towers=False)
    identities = Identity.sampled(model.statistics, num, seed, temperature, label, encoder_id=encoder)
    return [_saved(identity, path) for path, identity in zip(paths, identities, strict=True)]


def from_text(
    encoder: str,
    pipeline: str,
    description: str,
    output: Path,
    num_candidates: int = 16,
    num_clusters: int = 3,
    seed: int = 0,
    num_inference_steps: int = 30,
    guidance_scale: float = 5.0,
    height: int | None = None,
    width: int | None = None,
    dtype: str = "auto",
    device: str = "auto",
    overwrite: bool = False,
) -> Path:
    """A consistent character from a description: generate candidates, encode, cluster (faiss), keep the mean of
    the cluster that agrees most (size and closeness of its names).

    Args:
        encoder: name-encoder folder or Hub id (tiny: the tiny encoder, with --pipeline tiny).
        pipeline: SDXL-family pipeline folder or Hub id, a miniature world's folder, miniature or tiny.
        description: what the person looks like.
        output: the identity file to write.
        num_candidates: images generated.
        num_clusters: k-means clusters.
        seed: seeds the candidates and the clustering.
        num_inference_steps: denoising steps per candidate.
        guidance_scale: classifier-free guidance scale.
        height: candidate height (default: the pipeline's).
        width: candidate width (default: the pipeline's).
        dtype: auto, fp32, fp16 or bf16.
        device: auto, cpu, cuda, ...
        overwrite: replace an existing ``output`` (otherwise it is refused).
    """
    with InputCheck() as check:
        check(check_new_output, output, "--output", overwrite)
        check(encoder_config, encoder)
        check(parse_pipeline, pipeline)
        check(dtype_and_device, dtype, device)
    steps = Steps(total=3)
    naming = load_naming(encoder, pipeline, steps, "text2img", dtype, device)
    steps.start(f"drawing {num_candidates} candidates, naming and clustering them")
    identity = naming.identity_from_text(
        description,
        num_candidates=num_candidates,
        num_clusters=num_clusters,
        seed=seed,
        label=Path(output).stem,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        height=height,
        width=width,
    )
    identity.encoder = encoder
    path = identity.save(output)
    steps.done(f"wrote {path} (cluster of {identity.metadata['cluster_size']} of {num_candidates} candidates)")
    return path


def refine(
    encoder: str,
    pipeline: str,
    references: list[Path] | Path,
    output: Path,
    identity: Path | None = None,
    steps: int = 200,
    learning_rate: float = 5e-3,
    prior_weight: float = 0.1,
    face_weight: float = 0.0,
    batch_size: int = 1,
    seed: int = 0,
    gradient_checkpointing: bool = True,
    label: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    overwrite: bool = False,
) -> Path:
    """Refines a name on reference photos by the frozen pipeline's own denoising loss.

    Only the name changes (no model weight is trained); a prior from the encoder's statistics holds it near the
    name space. Writes an ordinary identity file whose metadata records the refinement.

    Args:
        encoder: name-encoder folder or Hub id (tiny: the tiny encoder, with --pipeline tiny).
        pipeline: SDXL-family pipeline folder or Hub id, a miniature world's folder, miniature or tiny.
        references: photos of the person: one image, a folder of images, or a list.
        output: the identity file to write (.safetensors).
        identity: the identity file to start from (default: the encoder's prediction from the references).
        steps: optimisation steps.
        learning_rate: Adam's step size, relative to the start name's RMS entry.
        prior_weight: weight of the name-space prior (0: none).
        face_weight: extra loss weight on each photo's face box (above 0 needs the face stack).
        batch_size: photos (with a prompt, timestep and noise each) per step.
        seed: seeds every draw; the same seed gives the same identity.
        gradient_checkpointing: recompute the UNet's activations in the backward pass (less memory, more time).
        label: the identity's label (default: the output file's name).
        dtype: auto, fp32, fp16 or bf16 (on a GPU bf16 keeps small gradients that fp16 may lose).
        device: auto, cpu, cuda, ...
        overwrite: replace an existing ``output`` (otherwise it is refused).
    """
    from .refine import check_face_stack, refine_problems

    with InputCheck() as check:
        check(check_new_output, output, "--output", overwrite)
        config = check(encoder_config, encoder)
        check(parse_pipeline, pipeline)
        pictures = check(as_image_list, references, "--references")
        start = None if identity is None else check(identity_file, identity, config, "--identity")
        for problem in refine_problems(steps, learning_rate, prior_weight, face_weight, batch_size, 0, "--"):
            check.problem(problem)
        check(dtype_and_device, dtype, device)
    check_face_stack(face_weight, "--face_weight")  # before anything loads
    progress = Steps(total=4 if start is None else 3)
    naming = load_naming(encoder, pipeline, progress, "text2img", dtype, device)
    label = label or Path(output).stem
    if start is None:
        progress.start(f"encoding {len(pictures)} reference(s): the start")
        start = reference_identity(naming.encoder, pictures, label, None, "--references")
        start.encoder = encoder
    progress.start(f"refining the name on {len(pictures)} reference(s): {steps} steps")
    refined = naming.refine(
        start,
        pictures,
        steps=steps,
        learning_rate=learning_rate,
        prior_weight=prior_weight,
        face_weight=face_weight,
        batch_size=batch_size,
        seed=seed,
        gradient_checkpointing=gradient_checkpointing,
        label=label,
    )
    refined.encoder = refined.encoder or encoder
    path = refined.save(output)
    loss = f"loss {refined.metadata['start_loss']} -> {refined.metadata['final_loss']} on fixed draws"
    progress.done(f"wrote {path} (refined {steps} steps, {loss})")
    return path


def _saved(identity: Identity, output: Path) -> Path:
    path = identity.save(output)
    print(f"wrote {path} ({identity.source}, label {identity.label!r}, shape {tuple(identity.embedding.shape)})")
    return path


def main(argv: list[str], prog: str = "magicnaming identity") -> int:
    run_command([encode, mix, sample, from_text, refine], argv, prog, description=__doc__)
    return 0
