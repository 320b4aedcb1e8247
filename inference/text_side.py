"""What the plugin needs to know about a pipeline's text side: which part of a name it takes, and token counts.

Only the documented surface is used: the tokenizers, the text encoders' configs and ``encode_prompt``.
"""

from __future__ import annotations

from dataclasses import dataclass

from namespace.prompt_encoding import check_sdxl_pipeline, prompt_embedding_width


@dataclass(frozen=True)
class NameSlice:
    """Channels of an (N, D) name that a pipeline's prompt embeddings take.

    SDXL base takes all of CLIP-L ‖ bigG (``start=0``); the refiner, which has only the bigG text encoder, takes the
    last 1280 channels.
    """

    start: int
    width: int

    def __call__(self, name):
        return name[..., self.start : self.start + self.width]


def name_slice(pipe: object, name_width: int) -> NameSlice:
    """Works out which channels of a ``name_width``-wide name fit ``pipe``, or raises a clear error."""
    check_sdxl_pipeline(pipe)
    width = prompt_embedding_width(pipe)
    if width == name_width:
        return NameSlice(0, width)
    only_second_encoder = getattr(pipe, "text_encoder", None) is None
    if only_second_encoder and width < name_width:  # the refiner: its embeddings are the bigG part alone
        return NameSlice(name_width - width, width)
    raise ValueError(
        f"the encoder predicts names of width {name_width}, but {type(pipe).__name__}'s prompt embeddings have width "
        f"{width}: the encoder was trained for another model family (SDXL names are 2048 wide: CLIP-L 768 ‖ bigG 1280)"
    )


def main_tokenizer(pipe: object):
    """The tokenizer whose token positions the prompt embeddings follow (the refiner has only ``tokenizer_2``)."""
    return getattr(pipe, "tokenizer", None) or pipe.tokenizer_2


def token_counts(pipe: object, prompts: list[str]) -> list[int]:
    """Tokens per prompt, start and end tokens included, before truncation."""
    return [len(ids) for ids in main_tokenizer(pipe)(prompts).input_ids]
