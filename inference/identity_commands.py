"""``magicnaming identity encode|mix|sample|from_text|refine|from_group``: make identity files."""

from __future__ import annotations

from pathlib import Path

from namespace import Identity
from namespace.command_line import run_command
from namespace.encoder.reference_crop import check_crop_mode, check_face_stack
from namespace.faces import CropMode, FaceConfig
from namespace.files import check_new_output
from namespace.images import as_image_list
from namespace.model_names import load_encoder, parse_pipeline
from namespace.progress import Steps

from . import group_identity
from .inputs import InputCheck, dtype_and_device, encoder_config, identity_file, path_list
from .loading import load_naming
from .plugin import reference_identity
from .refine import RefineSettings


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
    rounds: int = 1,
    num_inference_steps: int = 30,
    guidance_scale: float = 5.0,
    height: int | None = None,
    width: int | None = None,
    dtype: str = "auto",
    device: str = "auto",
    overwrite: bool = False,
) -> Path:
    """A consistent character from a description: generate candidates, encode, cluster (faiss), keep the mean of
    the cluster that agrees most (size and closeness of its names); with ``--rounds``, repeat with the current name
    prepended to the description while the agreement rises (The Chosen One, without training).

    Args:
        encoder: name-encoder folder or Hub id (tiny: the tiny encoder, with --pipeline tiny).
        pipeline: SDXL-family pipeline folder or Hub id, a miniature world's folder, miniature or tiny.
        description: what the person looks like.
        output: the identity file to write.
        num_candidates: images generated.
        num_clusters: k-means clusters.
        seed: seeds the candidates (each round's from the seed and the round) and the clustering.
        rounds: the round limit (1: one round, as without it); the best round's identity is written, every round's
            agreement in its metadata.
        num_inference_steps: denoising steps per candidate.
        guidance_scale: classifier-free guidance scale.
        height: candidate height (default: the pipeline's).
        width: candidate width (default: the pipeline's).
        dtype: auto, fp32, fp16 or bf16.
        device: auto, cpu, cuda, ...
        overwrite: replace an existing ``output`` (otherwise it is refused).
    """
    from .text_identity import check_rounds

    with InputCheck() as check:
        check(check_new_output, output, "--output", overwrite)
        check(encoder_config, encoder)
        check(parse_pipeline, pipeline)
        check(check_rounds, rounds, "--rounds")
        check(dtype_and_device, dtype, device)
    steps = Steps(total=3)
    naming = load_naming(encoder, pipeline, steps, "text2img", dtype, device)
    per_round = f" per round, up to {rounds} rounds" if rounds > 1 else ""
    steps.start(f"drawing {num_candidates} candidates{per_round}, naming and clustering them")
    identity = naming.identity_from_text(
        description,
        num_candidates=num_candidates,
        num_clusters=num_clusters,
        seed=seed,
        rounds=rounds,
        label=Path(output).stem,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        height=height,
        width=width,
    )
    identity.encoder = encoder
    path = identity.save(output)
    found = f"cluster of {identity.metadata['cluster_size']} of {num_candidates} candidates"
    if rounds > 1:
        meta = identity.metadata
        found += (f", round {meta['best_round']} of {meta['rounds_run']} run ({meta['stopped']}); "
                  f"agreement per round {meta['round_agreements']}")  # fmt: skip
    steps.done(f"wrote {path} ({found})")
    return path


def refine(
    encoder: str,
    pipeline: str,
    references: list[Path] | Path,
    output: Path,
    identity: Path | None = None,
    steps: int = RefineSettings.steps,
    learning_rate: float = RefineSettings.learning_rate,
    prior_weight: float = RefineSettings.prior_weight,
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


def from_group(
    encoder: str,
    image: Path,
    output: Path,
    label: str = "face",
    crop: CropMode | None = None,
    min_face_side: int = group_identity.MIN_FACE_SIDE,
    face: FaceConfig | None = None,
    device: str = "auto",
    overwrite: bool = False,
) -> list[Path]:
    """One identity per face of a group photo, numbered from the left (needs the face stack).

    LABEL-1.safetensors is the leftmost face (its box and index in the metadata), with the crop the encoder saw
    beside it (LABEL-1.png); then LABEL-2, ...

    Args:
        encoder: name-encoder folder or Hub id.
        image: the group photo.
        output: the folder to write the identity files and crops into.
        label: file and label prefix: LABEL-1, LABEL-2, ...
        crop: how each face is cropped: loose or aligned (default: the encoder's reference_crop, or loose for an
            encoder trained on whole portraits).
        min_face_side: faces smaller than this (pixels, the mean of the box's width and height) are left out; a photo
            with none larger is an error.
        face: the face stack's settings (upsample finds smaller faces, detection_side keeps large photos' detail).
        device: auto, cpu, cuda, ...
        overwrite: replace an earlier group of LABEL in the folder, all its files (otherwise it is refused).
    """
    with InputCheck() as check:
        for problem in group_identity.group_output_problems(output, label, overwrite):
            check.problem(problem)
        for problem in group_identity.check_group_options(label, min_face_side, "--"):
            check.problem(problem)
        config = check(encoder_config, encoder)
        picture = check(group_identity.one_photo, image, "--image")
        if crop is not None:
            check(group_identity.group_crop, crop, "none", "--crop")
        check(dtype_and_device, "auto", device)
    faces = group_identity.group_face_stack(face)  # FaceStackMissing names the extra, before the encoder loads
    found = group_identity.faces_left_to_right(picture, faces, min_face_side, "--image")
    mode = group_identity.group_crop(crop, config.reference_crop, "--crop")
    model = load_encoder(encoder, device)
    people = group_identity.encode_faces(model, picture, found, faces, mode, label, Path(image).name)
    for person in people:
        person.identity.encoder = encoder
    paths = group_identity.save_group(people, output, label, overwrite)
    boxes = "; ".join(f"{path.stem} at {person.box}" for path, person in zip(paths, people, strict=True))
    print(f"wrote {len(paths)} identities to {output}, left to right ({mode} crops beside them): {boxes}")
    return paths


def _saved(identity: Identity, output: Path) -> Path:
    path = identity.save(output)
    print(f"wrote {path} ({identity.source}, label {identity.label!r}, shape {tuple(identity.embedding.shape)})")
    return path


def main(argv: list[str], prog: str = "magicnaming identity") -> int:
    run_command([encode, mix, sample, from_text, refine, from_group], argv, prog, description=__doc__)
    return 0
