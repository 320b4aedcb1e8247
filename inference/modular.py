"""MagicNaming as a Modular Diffusers block: a step that puts an identity's name into SDXL's prompt embeddings.

``MagicNamingStep`` runs right after the SDXL text-encoder step of ``diffusers.modular_pipelines``: it reads the
step's ``prompt_embeds`` / ``negative_prompt_embeds`` and the prompt (to count its tokens), and writes the prompt
embeddings back with the name after the start token (eq. 1), guided (eq. 4) and scaled (eq. 5) by the plugin's own
functions, so the modular pipeline draws what ``MagicNaming`` draws. Its one component is the name encoder (its
statistics give F_mean, the default δ and η).

Its inputs are ``identity``, ``name_delta``, ``name_eta`` and ``negative_name``: SDXL's blocks already take an ``eta``
(the DDIM scheduler's η), so the name's δ and η carry a ``name_`` prefix.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from diffusers.modular_pipelines import (
    ComponentSpec,
    InputParam,
    ModularPipeline,
    ModularPipelineBlocks,
    OutputParam,
    PipelineState,
    SequentialPipelineBlocks,
    StableDiffusionXLAutoBlocks,
)

import namespace as ns
from namespace import Identity, NameEncoder
from namespace.checks import check_delta, check_eta
from namespace.text_sides.sdxl import SDXL

from .plugin import checked_identity, mean_name, pipeline_name

TEXT_ENCODER_STEP = "text_encoder"  # the name of SDXL's text-encoder step in its auto blocks
STEP_NAME = "magicnaming"
DENOISER_INPUTS = "denoiser_input_fields"  # the kwargs type SDXL's denoise step collects its conditioning by


class MagicNamingStep(ModularPipelineBlocks):
    """Prepends an identity's name to the prompt embeddings of SDXL's text-encoder step (no identity: unchanged).

    Place it right after the text-encoder step (:func:`magicnaming_blocks` does). Inputs: ``identity`` (one
    ``namespace.Identity`` for every prompt, one per prompt, or None), ``name_delta`` (eq. 4; None: the encoder's
    calibrated δ), ``name_eta`` (eq. 5; None: the encoder's mean name norm) and ``negative_name`` (``"mean"``: the
    mean name on the negative side, as ``MagicNaming(negative_name="mean")``).
    """

    model_name = "stable-diffusion-xl"

    @property
    def description(self) -> str:
        return (
            "MagicNaming step: puts an identity's name after the start token of the prompt embeddings made by the "
            "text-encoder step (place it right after that step)"
        )

    @property
    def expected_components(self) -> list[ComponentSpec]:
        return [
            ComponentSpec("name_encoder", NameEncoder),
            # the text-encoder step's own: their widths say which channels of a name the embeddings take, and the
            # tokenizer counts the prompt's tokens
            *(ComponentSpec(name, kind) for name, kind in SDXL.components().items()),
        ]

    @property
    def inputs(self) -> list[InputParam]:
        return [
            InputParam("identity", description="namespace.Identity (or one per prompt); None: no name"),
            InputParam("name_delta", type_hint=float, description="name guidance δ (eq. 4); None: the encoder's"),
            InputParam("name_eta", type_hint=float, description="name norm η (eq. 5); None: the encoder's"),
            InputParam("negative_name", type_hint=str, default="none", description="'none' or 'mean'"),
            InputParam("prompt"),
            InputParam("clip_skip"),
            InputParam("prompt_embeds", type_hint=torch.Tensor, description="from the text-encoder step"),
            InputParam("negative_prompt_embeds", type_hint=torch.Tensor, description="from the text-encoder step"),
        ]

    @property
    def intermediate_outputs(self) -> list[OutputParam]:
        return [
            OutputParam(
                "prompt_embeds",
                type_hint=torch.Tensor,
                kwargs_type=DENOISER_INPUTS,
                description="text embeddings with the identity's name after the start token",
            ),
            OutputParam(
                "negative_prompt_embeds",
                type_hint=torch.Tensor,
                kwargs_type=DENOISER_INPUTS,
                description="negative text embeddings (with the mean name when negative_name='mean')",
            ),
        ]

    @torch.no_grad()
    def __call__(self, components, state: PipelineState):
        block_state = self.get_block_state(state)
        embeds = block_state.prompt_embeds  # (B, L, D')
        identities = _checked_inputs(block_state, components, batch=embeds.shape[0])
        if identities is not None and any(identity is not None for identity in identities):
            encoder = components.name_encoder
            name_slice = SDXL.name_slice(components, encoder.config.width)
            delta = block_state.name_delta
            delta = encoder.statistics.delta if delta is None else check_delta(delta, "name_delta")
            prompts = [block_state.prompt] if isinstance(block_state.prompt, str) else list(block_state.prompt)
            lengths = SDXL.token_counts(components, prompts)
            rows = []
            for row, identity, length in zip(embeds, identities, lengths, strict=True):
                if identity is None:
                    rows.append(row)
                else:
                    name = pipeline_name(encoder, identity, name_slice, delta, block_state.name_eta)  # (N, D')
                    rows.append(ns.prepend(row[None], name, [length])[0])
            block_state.prompt_embeds = torch.stack(rows)
            if block_state.clip_skip is not None:
                warnings.warn(
                    f"clip_skip={block_state.clip_skip}: names live in the penultimate text-encoder layer "
                    "(clip_skip=None); prompt embeddings from another layer weaken the identity",
                    UserWarning,
                    stacklevel=2,
                )
        negative = block_state.negative_prompt_embeds  # None when the guider needs no unconditional pass
        if block_state.negative_name == "mean" and negative is not None:
            encoder = components.name_encoder
            name_slice = SDXL.name_slice(components, encoder.config.width)
            block_state.negative_prompt_embeds = ns.prepend(
                negative, mean_name(encoder, name_slice, block_state.name_eta)
            )
        self.set_block_state(state, block_state)
        return components, state


def _checked_inputs(block_state, components, batch: int) -> list[Identity | None] | None:
    """The identity per prompt (None: no identity given); raises one ValueError naming every bad input."""
    problems = []
    if block_state.name_delta is not None:
        _collect(problems, lambda: check_delta(block_state.name_delta, "name_delta"))
    if block_state.name_eta is not None:
        _collect(problems, lambda: check_eta(block_state.name_eta, "name_eta"))
    if block_state.negative_name not in ("none", "mean"):
        problems.append(f"negative_name: expected 'none' or 'mean', got {block_state.negative_name!r}")
    identity = block_state.identity
    encoder = getattr(components, "name_encoder", None)
    if (identity is not None or block_state.negative_name == "mean") and not isinstance(encoder, NameEncoder):
        problems.append(
            "name_encoder: the MagicNaming step needs the name encoder as a component, got "
            f"{type(encoder).__name__} (pipeline.update_components(name_encoder=encoder))"
        )
    identities = None
    if isinstance(identity, Identity):
        identities = [identity] * batch
    elif identity is not None:
        identities = list(identity) if isinstance(identity, Sequence) and not isinstance(identity, str) else [identity]
        if len(identities) != batch:
            problems.append(f"identity: expected one identity or {batch} (one per prompt), got {len(identities)}")
    if identities is not None and block_state.prompt is None:
        problems.append("prompt: the MagicNaming step counts the prompt's tokens, got None")
    if identities is not None and isinstance(encoder, NameEncoder):
        for index, each in enumerate(identities):
            argument = "identity" if isinstance(identity, Identity) else f"identity[{index}]"
            if each is not None:
                _collect(problems, lambda each=each, argument=argument: checked_identity(each, encoder, argument))
    if problems:
        raise ValueError("MagicNaming step: " + "; ".join(problems))
    return identities


def _collect(problems: list[str], check) -> None:
    """Runs a check that names its argument, keeping its message instead of raising."""
    try:
        check()
    except (TypeError, ValueError) as error:
        problems.append(str(error))


def magicnaming_blocks(blocks: SequentialPipelineBlocks | None = None) -> SequentialPipelineBlocks:
    """SDXL's auto blocks (or ``blocks``, which must have SDXL's text-encoder step) with :class:`MagicNamingStep`
    inserted right after the text-encoder step, under the name ``"magicnaming"``."""
    blocks = StableDiffusionXLAutoBlocks() if blocks is None else blocks
    names = list(blocks.sub_blocks)
    if TEXT_ENCODER_STEP not in names:
        raise ValueError(f"blocks: expected a step named {TEXT_ENCODER_STEP!r} (SDXL's text encoder), got {names}")
    blocks.sub_blocks.insert(STEP_NAME, MagicNamingStep(), names.index(TEXT_ENCODER_STEP) + 1)
    return blocks


def magicnaming_pipeline(
    pipe: object, encoder: NameEncoder, blocks: SequentialPipelineBlocks | None = None
) -> ModularPipeline:
    """A modular pipeline of :func:`magicnaming_blocks` that shares the components of a loaded SDXL pipeline.

    Nothing is loaded or copied: the modular pipeline holds the same modules as ``pipe`` and the name encoder.
    Diffusers' modular guider is its own component, ``ClassifierFreeGuidance(guidance_scale=7.5)`` by default
    (``pipe`` defaults to 5.0): ``pipeline.update_components(guider=...)`` changes it.

    Args:
        pipe: a loaded SDXL diffusers pipeline (e.g. ``StableDiffusionXLPipeline``).
        encoder: the name encoder.
        blocks: blocks to insert the step into (None: ``StableDiffusionXLAutoBlocks()``).

    Returns:
        a ``StableDiffusionXLModularPipeline``; call it with ``prompt=..., identity=..., output="images"``.
    """
    if not isinstance(encoder, NameEncoder):
        raise TypeError(f"encoder: expected a namespace.NameEncoder, got {type(encoder).__name__}")
    SDXL.check(pipe)
    modular = magicnaming_blocks(blocks).init_pipeline()
    expected = set(modular.component_names)
    shared = {name: part for name, part in pipe.components.items() if part is not None and name in expected}
    modular.update_components(**shared, name_encoder=encoder)
    SDXL.name_slice(modular, encoder.config.width)  # the encoder's names fit the pipeline's embeddings, or an error
    return modular


__all__ = ["MagicNamingStep", "magicnaming_blocks", "magicnaming_pipeline"]
