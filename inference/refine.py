"""Refining a name: gradient descent on the frozen pipeline's own denoising loss, the generator untouched.

The encoder predicts a name from photos in one pass. Refinement then moves that (N, D) name so that the pipeline,
prompted with it, denoises the reference photos better: textual inversion, but in the text encoders' output space
(where names live) and held near the name space by a prior from the encoder's statistics. Only the name changes: the
UNet, the VAE and the text encoders are frozen (no gradient, eval mode; both restored after) and the result is an
ordinary identity.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from PIL import Image, ImageOps
from torchvision.transforms.functional import pil_to_tensor, to_pil_image

import namespace as ns
from namespace import Identity
from namespace.faces import Face
from namespace.faces.packages import PACKAGES, require
from namespace.images import ImageInput, as_image_list
from namespace.progress import progress
from namespace.statistics import NameSpaceStatistics
from namespace.text_sides import text_side

from .plugin import checked_identity, guided_name

if TYPE_CHECKING:  # the plugin imports this module lazily; the annotation only names it
    from .plugin import MagicNaming

# prompts the name is prepended to (eq. 1), as a user's prompts are: the name stands before "a photo of a person"
DEFAULT_PROMPTS = (
    "a photo of a person",
    "a portrait photo of a person",
    "a close-up photo of a person's face",
    "a photo of a person, natural light",
)
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
EVALUATION_DRAWS = 4  # the fixed draws the start and final loss are measured on
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed's range (non-negative here)


@dataclass(frozen=True)
class RefineSettings:
    """The options of :func:`refine_identity` that a run fixes once for many people (``magicnaming likeness``'s and
    ``magicnaming evaluate``'s ``refined`` method; ``--refine.steps`` and so on), at ``refine_identity``'s defaults.

    The defaults were chosen on the miniature world (``docs/plugin.md``, "Refining a name"): with prior weight 1 the
    refined name stays a name, so prompts are followed as with the encoder's name, while the likeness of people the
    encoder never saw rises past the judge's same-person threshold; with 0.1 the likeness rises further but prompts
    are followed less.

    Attributes:
        steps: optimisation steps (≥ 1).
        learning_rate: Adam's step size relative to the name's RMS entry (> 0).
        prior_weight: weight of the name-space prior (≥ 0).
        seed: seeds every draw of the refinement.
    """

    steps: int = 200
    learning_rate: float = 1e-2
    prior_weight: float = 1.0
    seed: int = 0

    def problems(self, prefix: str = "--refine.") -> list[str]:
        """Every bad setting, each named after ``prefix``."""
        problems = refine_problems(self.steps, self.learning_rate, self.prior_weight, 0.0, prefix=prefix)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            problems.append(f"{prefix}seed: expected an integer in [0, 2**63 - 1], got {self.seed!r}")
        return problems


class RefinementDiverged(RuntimeError):
    """The loss or the name became NaN or infinite: the refinement stopped and made no identity."""


def refine_identity(
    naming: MagicNaming,
    identity: Identity | None,
    images: ImageInput | Sequence[ImageInput],
    steps: int = RefineSettings.steps,
    learning_rate: float = RefineSettings.learning_rate,
    prior_weight: float = RefineSettings.prior_weight,
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    face_weight: float = 0.0,
    batch_size: int = 1,
    seed: int = 0,
    gradient_checkpointing: bool = True,
    height: int | None = None,
    width: int | None = None,
    label: str | None = None,
    progress_every: int = 25,
) -> Identity:
    """Refines ``identity``'s name on reference photos by the frozen pipeline's denoising loss.

    Each step draws (seeded) a photo, a prompt of ``prompts``, a timestep and noise per batch element, noises the
    photo's latents (the scheduler's training schedule), and asks the UNet for its prediction with the name prepended
    to the prompt as the plugin prepends it (eq. 4, eq. 5, eq. 1, differentiably); the loss is the mean squared error
    against the scheduler's ``prediction_type`` target (noise, velocity or sample), weighted ``1 + face_weight`` on
    the face's box where the face stack finds one, plus ``prior_weight`` times the prior. Adam moves the name alone.

    The prior acts on the name as the pipeline receives it, all D channels: ``F'' = η·G/‖G‖`` with
    ``G = F_mean + δ·(F − F_mean)`` (eq. 4 and eq. 5 at use, as the plugin applies them). With ``x = vec(F'' −
    F_mean)`` (P = N·D values), ``c = U·x`` its coordinates on the K principal directions U and ``r = x − Uᵀ·c`` the
    part outside them::

        prior = (Σ_k c_k² / λ_k  +  ‖r‖² / λ_K) / P

    a Mahalanobis term inside the PCA subspace plus the part outside it, penalised as if every direction outside had
    the variance λ_K of the weakest direction inside (an upper bound: the variances fall). About 1 or less for a
    training name, the scale of the per-element denoising error.

    Memory and time: the photos' latents (R·4·h·w values: 128 KB a photo at 1024² in bf16), the prompts'
    embeddings, and one UNet forward and backward at batch ``batch_size``; the weights get no gradient, so there is
    no weight-gradient memory and no optimizer state but the name's. For SDXL at 1024² on one GPU these are
    estimates (no GPU was lent), counted with torch's FlopCounterMode and saved-tensor hooks on SDXL's UNet config
    on the meta device (2.57 B parameters): a forward is 6.8 TFLOP at batch 1 and the backward into the name 7.3
    (attention counted as plain matmuls), 14 TFLOP a step, 21 with gradient checkpointing's second forward; at an
    assumed sustained 200 TFLOP/s in bf16 on an H100, about 0.07 s a step (0.1 s checkpointed), 15 to 20 s for
    200 steps. The pipeline's weights take about 7 GB in bf16; the activations a backward keeps are about 29 GB a
    photo without checkpointing (an upper bound: fused attention keeps no attention matrices) and 0.5 GB with it,
    plus one block's recomputation: about 10 GB in all at batch 1, checkpointed.

    Args:
        naming: the plugin (its pipeline, its encoder's statistics and δ).
        identity: the start, an identity of the encoder's (N, D); None: the encoder's prediction from ``images``.
        images: reference photos of the person (files, a folder, PIL images or tensors), center-cropped and resized
            to ``height`` × ``width``.
        steps: optimisation steps (≥ 1).
        learning_rate: Adam's step size relative to the start name's RMS entry (> 0).
        prior_weight: weight of the prior (≥ 0; 0: none).
        prompts: the prompts the name is prepended to.
        face_weight: extra loss weight on the face's box (≥ 0; above 0 needs the face stack).
        batch_size: draws per step.
        seed: seeds every draw; the same seed gives the same name.
        gradient_checkpointing: recompute the UNet's activations in the backward pass (less memory, a third more
            time); the UNet's own setting is restored after.
        height: the photos' height in pixels (None: the pipeline's default size).
        width: the photos' width in pixels (None: the pipeline's default size).
        label: the refined identity's label (None: the start's).
        progress_every: a line with the mean loss every K steps on stderr (0: none).

    Returns:
        An ordinary identity; its metadata records refined, from (the start's label and source), steps, the
        denoising loss on 4 fixed draws before and after (start_loss, final_loss), prior weight, learning rate, seed
        and the δ the name was refined under (its default guidance, ``naming.delta``).

    Raises:
        ValueError: a bad option (naming it), an identity of another (N, D), no usable reference.
        FaceStackMissing: ``face_weight`` > 0 without the face stack (naming the extra to install).
        RefinementDiverged: the loss became NaN or infinite (nothing is returned).
    """
    problems = refine_problems(steps, learning_rate, prior_weight, face_weight, batch_size, progress_every)
    if identity is not None:
        identity = checked_identity(identity, naming.encoder, "identity")
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        problems.append(f"prompts: expected a non-empty list of strings, got {prompts!r}")
    if prior_weight and naming.encoder.statistics.components.shape[0] == 0:
        problems.append("prior_weight: the encoder's statistics hold no principal components; pass 0")
    if problems:
        raise ValueError("; ".join(problems))
    references = as_image_list(images, "images")
    check_face_stack(face_weight)
    objective = DenoisingObjective(
        naming.pipe, references, prompts, face_weight, height, width, naming.encoder.config.num_tokens
    )
    start = identity if identity is not None else naming.identity(references, label=label or "identity")
    delta = naming.delta
    with frozen(naming.pipe, gradient_checkpointing):
        embedding, losses = _optimise(
            naming, objective, start.embedding, steps, learning_rate, prior_weight, batch_size, seed, progress_every
        )
    metadata = {
        "refined": "true",
        "from": f"{start.label} ({start.source})",
        "steps": str(steps),
        "start_loss": f"{losses[0]:.6f}",
        "final_loss": f"{losses[1]:.6f}",
        "prior_weight": f"{prior_weight:g}",
        "learning_rate": f"{learning_rate:g}",
        "face_weight": f"{face_weight:g}",
        "batch_size": str(batch_size),
        "seed": str(seed),
        "delta": f"{delta:g}",
        "num_references": str(len(references)),
    }
    return Identity(embedding, label or start.label, "images", start.encoder, metadata)


def _optimise(
    naming: MagicNaming,
    objective: DenoisingObjective,
    start: torch.Tensor,
    steps: int,
    learning_rate: float,
    prior_weight: float,
    batch_size: int,
    seed: int,
    progress_every: int,
) -> tuple[torch.Tensor, tuple[float, float]]:
    """The refinement loop on the frozen pipeline: the (N, D) refined embedding on the CPU and the denoising loss on
    fixed draws before and after."""
    encoder, statistics, delta = naming.encoder, naming.encoder.statistics, naming.delta
    has_components = statistics.components.shape[0] > 0
    scale = float(start.square().mean().sqrt())  # Adam's steps are relative to the name's entries
    parameter = torch.nn.Parameter(start.to(statistics.mean.device) / scale)
    optimizer = torch.optim.Adam([parameter], lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    evaluation = [objective.draw(generator, 1) for _ in range(EVALUATION_DRAWS)]
    start_loss = objective.mean_loss(naming.name_slice(guided_name(encoder, start, delta)), evaluation)
    window: list[tuple[float, float]] = []
    bar = progress(range(1, steps + 1), desc="refining the name", unit="step")
    for step in bar:
        used = guided_name(encoder, parameter * scale, delta)  # (N, D) as the pipeline receives it
        denoising = objective.loss(naming.name_slice(used), objective.draw(generator, batch_size))
        prior = name_space_prior(used, statistics) if has_components else used.new_zeros(())
        loss = denoising + prior_weight * prior
        if not torch.isfinite(loss):
            raise RefinementDiverged(_diverged(step, steps, f"the loss is {loss.item()}", learning_rate))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if not bool(torch.isfinite(parameter).all()):
            raise RefinementDiverged(_diverged(step, steps, "the name holds NaN or infinity", learning_rate))
        window.append((denoising.item(), prior.item()))
        if progress_every and (step % progress_every == 0 or step == steps):
            bar.write(_report(step, steps, window), file=sys.stderr)
            window = []
    embedding = (parameter.detach() * scale).cpu()
    final_loss = objective.mean_loss(naming.name_slice(guided_name(encoder, embedding, delta)), evaluation)
    return embedding, (start_loss, final_loss)


def refine_problems(
    steps: int,
    learning_rate: float,
    prior_weight: float,
    face_weight: float,
    batch_size: int = 1,
    progress_every: int = 0,
    prefix: str = "",
) -> list[str]:
    """Every bad refinement option, each naming it (``prefix``: ``"--"`` for the command line's flags)."""

    def whole(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def number(value: object) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    checks = {
        "steps": (whole(steps) and steps >= 1, "an integer ≥ 1", steps),
        "learning_rate": (number(learning_rate) and learning_rate > 0, "a finite number > 0", learning_rate),
        "prior_weight": (number(prior_weight) and prior_weight >= 0, "a finite number ≥ 0", prior_weight),
        "face_weight": (number(face_weight) and face_weight >= 0, "a finite number ≥ 0", face_weight),
        "batch_size": (whole(batch_size) and batch_size >= 1, "an integer ≥ 1", batch_size),
        "progress_every": (whole(progress_every) and progress_every >= 0, "an integer ≥ 0", progress_every),
    }
    return [f"{prefix}{name}: expected {what}, got {value!r}" for name, (ok, what, value) in checks.items() if not ok]


def check_face_stack(face_weight: float, argument: str = "face_weight") -> None:
    """Raises FaceStackMissing naming ``argument`` and the extra when ``face_weight`` > 0 and the face stack is not
    installed (imports only)."""
    if face_weight > 0:
        for module in PACKAGES:
            require(module, f"{argument}={face_weight:g} (weighting the loss to the face)")


def name_space_prior(name: torch.Tensor, statistics: NameSpaceStatistics) -> torch.Tensor:
    """The prior of :func:`refine_identity` on a name as the pipeline receives it: ``(Σ c²/λ + ‖r‖²/λ_K) / P``.

    Args:
        name: (N, D) name after eq. 4 and eq. 5.
        statistics: the encoder's statistics (F_mean, U, λ), with at least one component.

    Returns:
        () float32, differentiable in ``name``.
    """
    inside, outside = name_space_coordinates(name, statistics)  # (K,), (P,)
    variances = statistics.variances.float()
    smallest = variances[-1].clamp_min(1e-12 * float(variances[0]) + 1e-30)  # λ_K, never 0
    mahalanobis = (inside.square() / variances.clamp_min(smallest)).sum()
    return (mahalanobis + outside.square().sum() / smallest) / outside.numel()


def name_space_coordinates(name: torch.Tensor, statistics: NameSpaceStatistics) -> tuple[torch.Tensor, torch.Tensor]:
    """``c = U·x`` (K,) and ``r = x − Uᵀ·c`` (P,) of ``x = vec(name − F_mean)``: the name's coordinates on the
    principal directions and its part outside them (‖r‖, its distance to the PCA subspace)."""
    centred = (name.float() - statistics.mean.float().to(name.device)).flatten()  # (P,)
    components = statistics.components.float().to(name.device)  # (K, P)
    inside = components @ centred
    return inside, centred - components.T @ inside


@dataclass(frozen=True)
class Draw:
    """One batch's random choices: photos, prompts, timesteps (B,) and noise (B, C, h, w) on the CPU."""

    photos: torch.Tensor
    prompts: torch.Tensor
    timesteps: torch.Tensor
    noise: torch.Tensor


class DenoisingObjective:
    """The frozen pipeline's denoising loss of a name (or of the prompts alone) on reference photos.

    Holds the photos' latents (R, C, h, w), their loss weights (R, 1, h, w), the prompts' embeddings (T, L, D'),
    the UNet's other conditioning (T rows) and the training noise schedule (``DDPMScheduler`` from the pipeline's
    scheduler config; the pipeline's own scheduler is left alone). Name refinement and the LoRA baseline
    (``lora_baseline``) share it: ``num_tokens`` is the name's N when names are prepended (None: none are).
    """

    def __init__(
        self,
        pipe: object,
        references: list[Image.Image | torch.Tensor],
        prompts: list[str],
        face_weight: float = 0.0,
        height: int | None = None,
        width: int | None = None,
        num_tokens: int | None = None,
    ) -> None:
        from diffusers import DDPMScheduler

        side = text_side(pipe)
        self.unet, factor = pipe.unet, pipe.vae_scale_factor
        default = self.unet.config.sample_size * factor
        height, width = height or default, width or default
        if min(height, width) < factor or height % factor or width % factor:
            raise ValueError(f"height, width: expected positive multiples of {factor}, got {height} × {width}")
        self.prediction_type = pipe.scheduler.config.get("prediction_type", "epsilon")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"the pipeline's scheduler predicts {self.prediction_type!r}; expected {PREDICTION_TYPES}")
        self.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        photos = [ImageOps.fit(_as_pil(image), (width, height), Image.BICUBIC) for image in references]
        self.latents = photo_latents(pipe, photos)  # (R, C, h, w)
        self.weights = torch.ones(len(photos), 1, *self.latents.shape[-2:], device=self.latents.device)
        if face_weight > 0:
            self.weights = face_weights(photos, face_weight, factor).to(self.latents.device)
        encoded = side.encode(pipe, prompts)
        self.prompt_embeds = encoded.prompt_embeds  # (T, L, D')
        self.conditioning = side.unet_conditioning(pipe, encoded, height, width)
        if num_tokens is not None:
            probe = torch.ones(num_tokens, self.prompt_embeds.shape[-1])
            ns.prepend(self.prompt_embeds, probe, side.token_counts(pipe, prompts))  # warns once: prompts cut short

    def draw(self, generator: torch.Generator, batch_size: int) -> Draw:
        """``batch_size`` random photos, prompts, timesteps and noise from ``generator`` (on the CPU)."""
        photos = torch.randint(len(self.latents), (batch_size,), generator=generator)
        prompts = torch.randint(len(self.prompt_embeds), (batch_size,), generator=generator)
        timesteps = torch.randint(self.scheduler.config.num_train_timesteps, (batch_size,), generator=generator)
        noise = torch.randn((batch_size, *self.latents.shape[1:]), generator=generator)
        return Draw(photos, prompts, timesteps, noise)

    def loss(self, name: torch.Tensor | None, draw: Draw) -> torch.Tensor:
        """() float32 weighted mean squared error of the UNet's prediction with the (N, D') ``name`` prepended (None:
        the prompts as they are)."""
        device = self.latents.device
        latents = self.latents[draw.photos.to(device)]  # (B, C, h, w)
        noise, timesteps = draw.noise.to(latents), draw.timesteps.to(device)
        rows = draw.prompts.to(device)
        embeds = self.prompt_embeds[rows] if name is None else ns.prepend(self.prompt_embeds[rows], name)  # (B, L, D')
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        conditioning = _rows(self.conditioning, rows)
        prediction = self.unet(noisy, timesteps, encoder_hidden_states=embeds, **conditioning, return_dict=False)[0]
        if self.prediction_type == "epsilon":
            target = noise
        elif self.prediction_type == "v_prediction":
            target = self.scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = latents
        error = (prediction.float() - target.float()).square()  # (B, C, h, w)
        weights = self.weights[draw.photos.to(device)]  # (B, 1, h, w)
        return (error * weights).mean() / weights.mean()

    @torch.no_grad()
    def mean_loss(self, name: torch.Tensor | None, draws: list[Draw]) -> float:
        """The mean loss of ``name`` over fixed ``draws`` (no gradient)."""
        return sum(float(self.loss(name, draw)) for draw in draws) / len(draws)


@torch.no_grad()
def photo_latents(pipe: object, photos: list[Image.Image]) -> torch.Tensor:
    """(R, C, h, w) the VAE's latents of equally sized photos, scaled as the pipeline's latents are (the mean of
    the latent distribution, once), in the UNet's dtype on its device."""
    vae = pipe.vae
    config, dtype = vae.config, vae.dtype
    upcast = dtype == torch.float16 and config.get("force_upcast", False)  # the SDXL VAE overflows in fp16
    if upcast:
        vae.to(torch.float32)
    try:
        chunks = []
        for photo in photos:
            pixels = pil_to_tensor(photo)[None].float().div(127.5).sub(1).to(vae.device, vae.dtype)  # (1, 3, H, W)
            chunks.append(vae.encode(pixels).latent_dist.mode())
    finally:
        if upcast:
            vae.to(dtype)
    latents = torch.cat(chunks)  # (R, C, h, w)
    mean, std = config.get("latents_mean"), config.get("latents_std")
    if mean is not None and std is not None:  # VAEs with per-channel statistics (as the pipeline decodes them)
        shape = (1, -1, 1, 1)
        latents = (latents - torch.tensor(mean).view(shape).to(latents)) / torch.tensor(std).view(shape).to(latents)
    else:
        latents = latents - (config.get("shift_factor") or 0.0)
    return (latents * config.scaling_factor).to(pipe.unet.device, pipe.unet.dtype)


def face_weights(photos: list[Image.Image], face_weight: float, factor: int, faces=None) -> torch.Tensor:
    """(R, 1, h, w) loss weights: ``1 + face_weight`` on the largest face's box (in latent cells, ``factor`` pixels
    each), 1 elsewhere; a photo where ``faces`` (default: the face stack) finds none is weighted evenly, warned."""
    import warnings

    if faces is None:
        from namespace.encoder.reference_crop import face_stack

        faces = face_stack()
    width, height = photos[0].size
    weights = torch.ones(len(photos), 1, height // factor, width // factor)
    for index, photo in enumerate(photos):
        found: list[Face] = faces.detect(photo)
        if not found:
            warnings.warn(f"images[{index}]: no face found; its loss is weighted evenly", UserWarning, stacklevel=3)
            continue
        x0, y0, x1, y1 = found[0].box
        columns = slice(max(int(x0 // factor), 0), max(math.ceil(x1 / factor), 0))
        rows = slice(max(int(y0 // factor), 0), max(math.ceil(y1 / factor), 0))
        weights[index, :, rows, columns] += face_weight
    return weights


@contextmanager
def frozen(pipe: object, gradient_checkpointing: bool) -> Iterator[None]:
    """The pipeline's models without gradients and in eval mode (and the UNet checkpointing its activations when
    asked); each model's flags, mode and checkpointing are restored after."""
    models = [model for model in pipe.components.values() if isinstance(model, torch.nn.Module)]
    flags = [(parameter, parameter.requires_grad) for model in models for parameter in model.parameters()]
    modes = [(module, module.training) for model in models for module in model.modules()]
    unet = pipe.unet
    switch = gradient_checkpointing and not unet.is_gradient_checkpointing
    try:
        for model in models:
            model.requires_grad_(False).eval()
        if switch:
            unet.enable_gradient_checkpointing()
        yield
    finally:
        if switch:
            unet.disable_gradient_checkpointing()
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
        for module, training in modes:
            module.training = training


def _rows(value: object, rows: torch.Tensor) -> object:
    """``value`` (a tensor, or dicts of tensors) with its first axis indexed by ``rows``."""
    if isinstance(value, torch.Tensor):
        return value[rows]
    if isinstance(value, dict):
        return {key: _rows(item, rows) for key, item in value.items()}
    return value


def _as_pil(image: Image.Image | torch.Tensor) -> Image.Image:
    return image if isinstance(image, Image.Image) else to_pil_image(image.detach().float().clamp(0, 1).cpu())


def _diverged(step: int, steps: int, what: str, learning_rate: float) -> str:
    return (
        f"the refinement diverged at step {step} of {steps}: {what}; no identity was made (try a smaller "
        f"learning_rate than {learning_rate:g})"
    )


def _report(step: int, steps: int, window: list[tuple[float, float]]) -> str:
    """A progress line: the mean denoising loss and prior over the steps since the last line."""
    denoising = sum(d for d, _ in window) / len(window)
    prior = sum(p for _, p in window) / len(window)
    return f"refine step {step}/{steps}: denoising loss {denoising:.5f}, prior {prior:.5f} (mean of {len(window)})"
