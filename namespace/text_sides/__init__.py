"""The seam for base-model families: everything a family's text side decides, behind one small interface.

A *text side* knows how a family of diffusers pipelines turns prompts into prompt embeddings: which parts a pipeline
must have, how wide its embeddings are, which of a name's channels it takes, its tokenizer, how it encodes prompts
(and the extra conditioning its UNet needs) and where a name's positions are. The plugin, the training target, the
input checks and name refinement (which calls the UNet itself) ask ``text_side(pipe)`` and never name a family's
parts. Today there is one family, SDXL (``sdxl.py``); another (SD 1.5, SD 3.5, FLUX) is one module implementing
:class:`TextSide`, added to ``_families``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch

DEFAULT_NUM_TOKENS = 8  # the paper's N: eight positions after the start token


@dataclass(frozen=True)
class NameSlice:
    """Channels of an (N, D) name that a pipeline's prompt embeddings take: ``name[..., start : start + width]``.

    Usually all of them (``start=0``); a family may take a part (the SDXL refiner takes the bigG channels).
    """

    start: int
    width: int

    def __call__(self, name):
        return name[..., self.start : self.start + self.width]


@dataclass(frozen=True)
class Encoded:
    """Prompts encoded as a pipeline encodes them: the keywords for ``pipe(**inputs)``, in the family's order.

    ``inputs`` holds ``prompt_embeds`` (B, L, D'), ``negative_prompt_embeds`` (B, L, D') and the family's extra
    conditioning under its diffusers keywords (SDXL: the pooled embeddings, (B, P) each).
    """

    inputs: dict[str, torch.Tensor]

    @property
    def prompt_embeds(self) -> torch.Tensor:
        """(B, L, D') the prompts' embeddings."""
        return self.inputs["prompt_embeds"]

    @property
    def negative_prompt_embeds(self) -> torch.Tensor:
        """(B, L, D') the negative prompts' embeddings (classifier-free guidance)."""
        return self.inputs["negative_prompt_embeds"]

    def replaced(self, prompt_embeds: torch.Tensor, negative_prompt_embeds: torch.Tensor) -> dict[str, torch.Tensor]:
        """The keywords for ``pipe(**...)`` with both prompt embeddings replaced (names put in), the rest as encoded."""
        new = {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds}
        return {key: new.get(key, value) for key, value in self.inputs.items()}


class TextSide(Protocol):
    """One family's text side. Its members take a pipeline that ``check`` accepted."""

    family: str  # a short name, e.g. "sdxl"

    def check(self, pipe: object, argument: str = "pipe") -> None:
        """Raises TypeError naming ``pipe``'s class and the parts it lacks unless it is a pipeline of this family."""

    def components(self) -> dict[str, type]:
        """The pipeline parts the text side reads: diffusers name → class (Modular Diffusers' component specs)."""

    def check_folder(self, folder: Path, name_width: int | None, argument: str, name_argument: str) -> None:
        """The same for a pipeline folder, read from its configs without loading a model (TypeError), and, when
        ``name_width`` is given, whether its prompt embeddings take names that wide (ValueError)."""

    def width(self, pipe: object) -> int:
        """D', the width of the pipeline's prompt embeddings."""

    def name_slice(self, pipe: object, name_width: int) -> NameSlice:
        """The channels of a (N, ``name_width``) name that ``pipe`` takes; ValueError if it takes none."""

    def width_hint(self, width: int) -> str:
        """A hint for prompt embeddings ``width`` wide that refused a name ("" when this family has none)."""

    def tokenizer(self, pipe: object):
        """The tokenizer whose token positions the prompt embeddings follow."""

    def token_counts(self, pipe: object, texts: list[str]) -> list[int]:
        """Tokens per text, start and end tokens included, before truncation."""

    def encode(
        self, pipe: object, prompts: list[str], negative_prompt=None, clip_skip: int | None = None, **options
    ) -> Encoded:
        """Encodes B prompts with classifier-free guidance, as ``pipe`` does (``options``: the family's own prompt
        keywords, e.g. SDXL's ``prompt_2``)."""

    def unet_conditioning(self, pipe: object, encoded: Encoded, height: int, width: int) -> dict[str, object]:
        """The keywords ``pipe.unet`` takes beside ``encoder_hidden_states`` for the B prompts of ``encoded`` (its
        positive side) at a ``height`` × ``width`` image, as the pipeline makes them (SDXL: ``added_cond_kwargs``)."""

    def name_embeddings(self, pipe: object, names: list[str], num_tokens: int, batch_size: int) -> torch.Tensor:
        """(B, N, D') the embeddings of B checked names at the N positions a name takes in a prompt."""


def _families() -> tuple[TextSide, ...]:
    from .sdxl import SDXL  # imported at use: the family modules import torch

    return (SDXL,)


def text_side(pipe: object, argument: str = "pipe") -> TextSide:
    """The text side of a loaded diffusers pipeline; TypeError naming its class when no family fits it."""
    refusals = []
    for side in _families():
        try:
            side.check(pipe, argument)
        except TypeError as error:
            refusals.append(str(error))
        else:
            return side
    raise TypeError(_refused(refusals, argument, type(pipe).__name__))


def text_side_for_folder(
    folder: str | Path, name_width: int | None = None, argument: str = "pipe", name_argument: str = "the encoder"
) -> TextSide:
    """The text side of a diffusers pipeline folder, from its configs alone (no model is loaded).

    Args:
        folder: a pipeline folder with ``model_index.json``.
        name_width: D of the names to be used with it; when given, checks that its prompt embeddings take them.
        argument: how error messages name the folder (e.g. ``--pipeline``).
        name_argument: how error messages name the names' source (e.g. ``--encoder``).

    Raises:
        ValueError: no family fits the folder, or its prompt embeddings take no names ``name_width`` wide.
    """
    refusals = []
    for side in _families():
        try:
            side.check_folder(Path(folder), name_width, argument, name_argument)
        except TypeError as error:
            refusals.append(str(error))
        else:
            return side
    raise ValueError(_refused(refusals, argument, str(folder)))


def width_hint(width: int) -> str:
    """A hint for prompt embeddings ``width`` wide that refused a name, from every family ("" if none has one)."""
    return "".join(side.width_hint(width) for side in _families())


def name_embeddings(
    pipe: object, names: str | Sequence[str], num_tokens: int = DEFAULT_NUM_TOKENS, batch_size: int = 64
) -> torch.Tensor:
    """Embeds names exactly as the pipeline embeds prompts and keeps the N positions after the start token.

    The training target: the names' prompt embeddings as the pipeline's text side makes them (for SDXL, both
    tokenizers and text encoders, the penultimate hidden layer, CLIP-L ‖ OpenCLIP-bigG on the last axis: 768 + 1280
    = 2048; the refiner gives 1280), so the targets the encoder learns and the names the plugin prepends agree.

    Args:
        pipe: an SDXL-family diffusers pipeline.
        names: one name or a list of names, e.g. ``["Taylor Swift"]``.
        num_tokens: N, the number of positions kept (8 in the paper). Names longer than N tokens are cut (warned).
        batch_size: names encoded per forward pass.

    Returns:
        (B, N, D) float tensor on the pipeline's device, in its text encoders' dtype.
    """
    side = text_side(pipe)
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("names: expected at least one name, got an empty list")
    not_strings = [repr(name) for name in names if not isinstance(name, str) or not name.strip()]
    if not_strings:
        raise ValueError(f"names: expected non-empty strings, got {', '.join(not_strings[:5])}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive number, got {batch_size}")
    return side.name_embeddings(pipe, names, num_tokens, batch_size)


def _refused(refusals: list[str], argument: str, what: str) -> str:
    if len(refusals) == 1:
        return refusals[0]
    return f"{argument}: no text side fits {what}: " + "; ".join(refusals)


__all__ = [
    "DEFAULT_NUM_TOKENS",
    "Encoded",
    "NameSlice",
    "TextSide",
    "name_embeddings",
    "text_side",
    "text_side_for_folder",
    "width_hint",
]
