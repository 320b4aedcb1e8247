"""The training target: a name's embedding, taken from an SDXL pipeline's own prompt encoding.

One function serves the data pipeline (targets) and the tests (equivalence with ``encode_prompt``), so the targets
the encoder learns and the embeddings the plugin prepends can never drift apart.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

DEFAULT_NUM_TOKENS = 8  # the paper's N: eight positions after the start token


def check_sdxl_pipeline(pipe: object, argument: str = "pipe") -> None:
    """Raises unless ``pipe`` encodes prompts the SDXL way (two tokenizers and text encoders, ``encode_prompt``)."""
    missing = [part for part in ("tokenizer_2", "text_encoder_2", "encode_prompt") if getattr(pipe, part, None) is None]
    if missing:
        raise TypeError(
            f"{argument}: expected an SDXL-family diffusers pipeline (two tokenizers and text encoders), got "
            f"{type(pipe).__name__} without {', '.join(missing)}; SD 1.5/2.x pipelines have no name space of this shape"
        )


def prompt_embedding_width(pipe: object) -> int:
    """D of the pipeline's prompt embeddings: the summed widths of its text encoders (2048 SDXL, 1280 refiner)."""
    check_sdxl_pipeline(pipe)
    encoders = [getattr(pipe, name, None) for name in ("text_encoder", "text_encoder_2")]
    return sum(encoder.config.hidden_size for encoder in encoders if encoder is not None)


def name_embeddings(
    pipe: object, names: str | Sequence[str], num_tokens: int = DEFAULT_NUM_TOKENS, batch_size: int = 64
) -> torch.Tensor:
    """Embeds names exactly as the pipeline embeds prompts and keeps the N positions after the start token.

    Uses ``pipe.encode_prompt``: both tokenizers (each with its own padding), both text encoders, the penultimate
    hidden layer, CLIP-L ‖ OpenCLIP-bigG on the last axis (768 + 1280 = 2048 for SDXL; the refiner gives 1280).

    Args:
        pipe: an SDXL-family diffusers pipeline.
        names: one name or a list of names, e.g. ``["Taylor Swift"]``.
        num_tokens: N, the number of positions kept (8 in the paper). Names longer than N tokens are cut (warned).
        batch_size: names encoded per forward pass.

    Returns:
        (B, N, D) float tensor on the pipeline's device, in its text encoders' dtype.
    """
    check_sdxl_pipeline(pipe)
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("names: expected at least one name, got an empty list")
    not_strings = [repr(name) for name in names if not isinstance(name, str) or not name.strip()]
    if not_strings:
        raise ValueError(f"names: expected non-empty strings, got {', '.join(not_strings[:5])}")
    length = pipe.tokenizer_2.model_max_length
    if not 1 <= num_tokens <= length - 1:
        raise ValueError(f"num_tokens: expected 1..{length - 1} (positions after the start token), got {num_tokens}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive number, got {batch_size}")
    _warn_long_names(pipe.tokenizer_2, names, num_tokens)

    chunks = []
    with torch.no_grad():
        for start in range(0, len(names), batch_size):
            prompt_embeds, *_ = pipe.encode_prompt(
                prompt=names[start : start + batch_size], num_images_per_prompt=1, do_classifier_free_guidance=False
            )  # (b, 77, D)
            chunks.append(prompt_embeds[:, 1 : 1 + num_tokens])
    return torch.cat(chunks)  # (B, N, D)


def _warn_long_names(tokenizer: object, names: list[str], num_tokens: int) -> None:
    """Warns about names whose own tokens (start and end tokens aside) do not fit in N positions."""
    token_counts = [len(ids) - 2 for ids in tokenizer(names).input_ids]
    long = [f"{name!r} ({count})" for name, count in zip(names, token_counts, strict=True) if count > num_tokens]
    if long:
        warnings.warn(
            f"{len(long)} name(s) need more than {num_tokens} tokens and are cut: " + ", ".join(long[:5]),
            UserWarning,
            stacklevel=3,
        )
