"""The paper's fine-tuning baseline: DreamBooth-LoRA, a person bound to a rare token by a LoRA on the UNet.

DreamBooth (Ruiz et al., 2023) fine-tunes the generator on a few photos of a subject prompted with a rare token
("a photo of sks person"); its LoRA form (Hu et al., 2022; diffusers' ``train_dreambooth_lora_sdxl``) trains only
low-rank updates of the UNet's attention projections. MagicNaming's paper compares its encoder against such a LoRA
(its Table 2: more likeness, less prompt fidelity). Here the LoRA is trained with the frozen pipeline's own denoising
loss, the one name refinement uses (``refine.DenoisingObjective``), and applied only while a person is drawn: the
pipeline is left exactly as it was.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from PIL import Image

from namespace.images import as_image_list
from namespace.progress import progress
from namespace.seeding import seeded

from .refine import MAX_SEED, DenoisingObjective, frozen

LORA_SUBJECT = "sks person"  # DreamBooth's rare-token subject; replaces "a person" in prompts
TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")  # the attention projections (DreamBooth-LoRA's choice)
ADAPTER = "magicnaming_lora"  # the adapter's name while it is on the UNet
WEIGHT_DECAY = 1e-2  # AdamW's, as train_dreambooth_lora_sdxl's default
MAX_GRAD_NORM = 1.0  # gradient clipping, as train_dreambooth_lora_sdxl's default
_PERSON = re.compile(r"\ba person\b")


class LoraDiverged(RuntimeError):
    """The LoRA's loss became NaN or infinite: training stopped and returned no weights."""


@dataclass(frozen=True)
class LoraSettings:
    """How the LoRA is trained. The paper's Table 2 states no LoRA hyperparameters, so these are DreamBooth-LoRA's
    usual ones (diffusers' ``train_dreambooth_lora_sdxl``: rank 4, α = rank, learning rate 1e-4 constant, batch 1,
    500 steps, AdamW with weight decay 1e-2, gradients clipped at 1; no prior-preservation images).

    Attributes:
        steps: optimisation steps (≥ 1).
        rank: the LoRA's rank r (≥ 1); its α is r, so the update's scale is 1.
        learning_rate: AdamW's step size (> 0).
        batch_size: photos per step (≥ 1).
        seed: seeds the LoRA's initialisation and every draw of photo, timestep and noise.
        prompt: the instance prompt the photos are trained under; holds ``LORA_SUBJECT``.
    """

    steps: int = 500
    rank: int = 4
    learning_rate: float = 1e-4
    batch_size: int = 1
    seed: int = 0
    prompt: str = "a photo of sks person"

    def problems(self, prefix: str = "--lora.") -> list[str]:
        """Every bad setting, each named (``--lora.steps: expected at least 1, got 0``)."""

        def whole(value: object) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        found = []
        for name in ("steps", "rank", "batch_size"):
            value = getattr(self, name)
            if not (whole(value) and value >= 1):
                found.append(f"{prefix}{name}: expected at least 1, got {value!r}")
        rate = self.learning_rate
        if not (isinstance(rate, (int, float)) and not isinstance(rate, bool) and math.isfinite(rate) and rate > 0):
            found.append(f"{prefix}learning_rate: expected a finite number > 0, got {rate!r}")
        if not (whole(self.seed) and 0 <= self.seed <= MAX_SEED):
            found.append(f"{prefix}seed: expected an integer in [0, 2**63 - 1], got {self.seed!r}")
        if not (isinstance(self.prompt, str) and LORA_SUBJECT in self.prompt):
            found.append(f"{prefix}prompt: expected a prompt holding the subject {LORA_SUBJECT!r}, got {self.prompt!r}")
        return found


def peft_problems(argument: str = "--methods") -> list[str]:
    """The problem of a missing peft (the LoRA is trained with it), naming ``argument``; none when it is installed."""
    import importlib.util

    if importlib.util.find_spec("peft") is None:
        return [f"{argument}: lora trains a LoRA with peft, which is not installed (install magicnaming[eval])"]
    return []


def lora_prompt(prompt: str) -> str:
    """The prompt with its "a person" made the LoRA's subject: "a photo of a person at the beach" → "a photo of sks
    person at the beach" (a prompt without "a person" is returned as it is)."""
    return _PERSON.sub(LORA_SUBJECT, prompt)


def train_identity_lora(
    pipe: object,
    photos: Sequence[Image.Image],
    settings: LoraSettings = LoraSettings(),
    height: int | None = None,
    width: int | None = None,
    *,
    gradient_checkpointing: bool = True,
    progress_every: int = 50,
) -> dict[str, torch.Tensor]:
    """Trains a LoRA on the UNet's attention projections (``TARGET_MODULES``) on one person's photos.

    Each step draws (seeded) ``batch_size`` photos, a timestep and noise each, noises the photos' latents with the
    scheduler's training schedule and asks the UNet, prompted with ``settings.prompt``, for its prediction; the loss
    is the mean squared error against the scheduler's ``prediction_type`` target (``refine.DenoisingObjective``, the
    loss name refinement uses, with no name prepended). AdamW moves the LoRA alone: the text encoders, the VAE and
    the UNet's own weights are frozen, and the adapter is removed before returning, so the pipeline is left as it
    was (its weights, gradient flags, train/eval modes and checkpointing).

    Memory and time: the LoRA at rank r on SDXL's UNet (2.57 B parameters) holds 1.45 M·r parameters, 5.8 M at
    r = 4 (counted with peft on SDXL's UNet config on the meta device): 23 MB in fp32, about 93 MB with its gradient
    and AdamW's two moments. The rest is a step of name refinement (``refine.refine_identity``): the photos' latents,
    and one UNet forward and backward at ``batch_size``; the backward now also forms the LoRA's weight gradients
    (about 2 · 5.8 M · tokens multiply-adds, small beside the UNet's). Estimated, not measured (no GPU was lent):
    14 TFLOP a step at 1024², batch 1 (21 with gradient checkpointing), about 0.07 s (0.1 s) at a sustained
    200 TFLOP/s on an H100 in bf16: 35 to 50 s for the default 500 steps; about 10 GB at batch 1 checkpointed,
    30 GB more without checkpointing.

    Args:
        pipe: an SDXL-family pipeline holding no adapter on its UNet.
        photos: the person's reference photos, center-cropped and resized to ``height`` × ``width``.
        settings: steps, rank, learning rate, batch size, seed and instance prompt.
        height: the photos' height in pixels (None: the pipeline's default size).
        width: the photos' width in pixels (None: the pipeline's default size).
        gradient_checkpointing: recompute the UNet's activations in the backward pass (less memory, a third more
            time); the UNet's own setting is restored after.
        progress_every: a line with the mean loss every K steps on stderr (0: none).

    Returns:
        The adapter's weights (peft's ``get_peft_model_state_dict`` keys: ``<module>.lora_A.weight`` (r, in) and
        ``<module>.lora_B.weight`` (out, r)), float32 on the CPU; ``lora_applied`` puts them on a pipeline.

    Raises:
        ValueError: a bad setting (naming it), no photo, a UNet that already holds adapters.
        LoraDiverged: the loss became NaN or infinite (the pipeline is restored; no weights are returned).
    """
    problems = settings.problems(prefix="settings.")
    if not (isinstance(progress_every, int) and progress_every >= 0):
        problems.append(f"progress_every: expected an integer ≥ 0, got {progress_every!r}")
    if len(photos) == 0:
        problems.append("photos: expected at least one reference photo, got none")
    if problems:
        raise ValueError("; ".join(problems))
    _check_no_adapter(pipe.unet)
    objective = DenoisingObjective(pipe, as_image_list(list(photos), "photos"), [settings.prompt], 0.0, height, width)
    config = _lora_config(settings.rank, list(TARGET_MODULES))
    generator = torch.Generator().manual_seed(settings.seed)
    with frozen(pipe, gradient_checkpointing), _adapter(pipe.unet, config, settings.seed):
        _optimise(pipe.unet, objective, settings, generator, progress_every)
        return _adapter_weights(pipe.unet)


def _optimise(
    unet: torch.nn.Module,
    objective: DenoisingObjective,
    settings: LoraSettings,
    generator: torch.Generator,
    progress_every: int,
) -> None:
    """The training loop: AdamW on the adapter's parameters (float32 master copies, as DreamBooth-LoRA keeps them
    under fp16), the loss scaled against fp16's underflow when the UNet runs in fp16."""
    parameters = [parameter for parameter in unet.parameters() if parameter.requires_grad]  # the adapter's alone
    for parameter in parameters:
        parameter.data = parameter.data.float()
    optimizer = torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=WEIGHT_DECAY)
    scaler = torch.amp.GradScaler(unet.device.type, enabled=unet.dtype == torch.float16)
    window: list[float] = []
    bar = progress(range(1, settings.steps + 1), desc="training the LoRA", unit="step")
    for step in bar:
        loss = objective.loss(None, objective.draw(generator, settings.batch_size))
        if not torch.isfinite(loss):
            raise LoraDiverged(
                f"the LoRA diverged at step {step} of {settings.steps}: the loss is {loss.item()}; no weights were "
                f"made (try a smaller learning_rate than {settings.learning_rate:g})"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(parameters, MAX_GRAD_NORM)
        scaler.step(optimizer)
        scaler.update()
        window.append(loss.item())
        if progress_every and (step % progress_every == 0 or step == settings.steps):
            mean = sum(window) / len(window)
            bar.write(f"LoRA step {step}/{settings.steps}: denoising loss {mean:.5f} (mean of {len(window)})",
                      file=sys.stderr)  # fmt: skip
            window = []


@contextmanager
def lora_applied(pipe: object, weights: dict[str, torch.Tensor], scale: float = 1.0) -> Iterator[None]:
    """The pipeline's UNet with the LoRA ``weights`` (from ``train_identity_lora``) for the duration of the block.

    The adapter is added (its rank and modules read from ``weights``) at ``scale`` (1: as trained; 0: no effect) and
    removed after, also when the block raises; the models' gradient flags and modes are restored.

    Raises:
        ValueError: ``weights`` holds no LoRA matrices or ones the UNet has no place for; a UNet that already holds
            adapters.
    """
    modules = sorted({key.rsplit(".lora_", 1)[0] for key in weights if ".lora_" in key})
    ranks = {int(value.shape[0]) for key, value in weights.items() if key.endswith(".lora_A.weight")}
    if not modules or len(ranks) != 1 or len(modules) * 2 != len(weights):
        raise ValueError(f"weights: expected a LoRA's lora_A and lora_B matrices of one rank (train_identity_lora's), "
                         f"got {len(weights)} tensors, ranks {sorted(ranks)}")  # fmt: skip
    if not (isinstance(scale, (int, float)) and math.isfinite(scale)):
        raise ValueError(f"scale: expected a finite number, got {scale!r}")
    _check_no_adapter(pipe.unet)
    unet = pipe.unet
    with frozen(pipe, False), _adapter(unet, _lora_config(ranks.pop(), modules), seed=0):
        from peft.utils import set_peft_model_state_dict

        loaded = set_peft_model_state_dict(unet, weights, adapter_name=ADAPTER)
        unexpected = list(loaded.unexpected_keys)
        missing = [key for key in loaded.missing_keys if ".lora_" in key]
        if unexpected or missing:
            raise ValueError(f"weights: do not fit this UNet: unexpected {unexpected[:3]}, missing {missing[:3]}")
        if scale != 1.0:
            unet.set_adapters([ADAPTER], weights=[float(scale)])
        yield


def _lora_config(rank: int, modules: list[str]):
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=modules)


def _check_no_adapter(unet: torch.nn.Module) -> None:
    """Another adapter's layers would stay wrapped after ours is removed: refused, so the UNet is always restored."""
    if getattr(unet, "peft_config", None):
        raise ValueError(f"pipe.unet: already holds the adapters {sorted(unet.peft_config)}; unload them first "
                         "(pipe.unload_lora_weights())")  # fmt: skip


@contextmanager
def _adapter(unet: torch.nn.Module, config, seed: int) -> Iterator[None]:
    """The adapter on the UNet (initialised from ``seed``, the caller's random state untouched), removed after:
    peft's layers are replaced by the original modules again (``unload_lora``)."""
    try:
        with seeded(seed):  # peft initialises lora_A on the CPU, then moves it to the UNet's device and dtype
            unet.add_adapter(config, adapter_name=ADAPTER)
        yield
    finally:
        if getattr(unet, "peft_config", None):
            unet.unload_lora()


def _adapter_weights(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(unet, adapter_name=ADAPTER)
    return {key: value.detach().float().cpu().clone() for key, value in state.items()}


__all__ = [
    "LORA_SUBJECT",
    "LoraDiverged",
    "LoraSettings",
    "lora_applied",
    "lora_prompt",
    "train_identity_lora",
]
