"""Several people in one image (experimental): ``"<alice> and <bob> at the market"``.

The prompt is encoded with each placeholder replaced by a filler word ("person"); then each filler's token positions
are replaced by the N vectors of that identity's name, and the sequence is cut back to its length. This extends the
paper's prepending (one identity, after the start token) to several identities at their place in the prompt; the
paper does not evaluate it, so treat the results as experimental.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import torch

PLACEHOLDER = re.compile(r"<([A-Za-z][\w-]*)>")


@dataclass(frozen=True)
class PlaceholderPrompt:
    """A prompt with placeholders, parsed: the text to encode and where each identity goes.

    Attributes:
        text: the prompt with every placeholder replaced by the filler word.
        labels: the placeholders' labels, in order.
        positions: token position of each filler in the encoded text (the start token is position 0).
        filler_tokens: how many tokens the filler word takes.
    """

    text: str
    labels: tuple[str, ...]
    positions: tuple[int, ...]
    filler_tokens: int


def has_placeholders(prompt: str) -> bool:
    return PLACEHOLDER.search(prompt) is not None


def parse(prompt: str, tokenizer, filler: str = "person") -> PlaceholderPrompt:
    """Finds the placeholders of ``prompt`` and the token position each one will take."""
    pieces = PLACEHOLDER.split(prompt)  # text, label, text, label, ..., text
    texts, labels = pieces[0::2], tuple(pieces[1::2])
    filler_ids = tokenizer(filler, add_special_tokens=False).input_ids
    positions, prefix = [], texts[0]
    for text in texts[1:]:
        positions.append(1 + len(tokenizer(prefix, add_special_tokens=False).input_ids))
        prefix += f"{filler}{text}"
    full_text = prefix
    full_ids = tokenizer(full_text).input_ids
    for label, position in zip(labels, positions, strict=True):
        if full_ids[position : position + len(filler_ids)] != filler_ids:
            raise ValueError(
                f"prompt: could not place <{label}> in {prompt!r}; "
                f"put spaces around placeholders, e.g. 'a <{label}> smiling'"
            )
    return PlaceholderPrompt(full_text, labels, tuple(positions), len(filler_ids))


def splice(
    prompt_embeds: torch.Tensor, parsed: PlaceholderPrompt, names: list[torch.Tensor], token_count: int
) -> torch.Tensor:
    """Replaces each filler in one prompt's embeddings by its identity's name vectors.

    Args:
        prompt_embeds: (L, D) embeddings of ``parsed.text``.
        parsed: the parsed prompt.
        names: one (N, D) name per placeholder, in the dtype and device of ``prompt_embeds``.
        token_count: tokens of ``parsed.text``, start and end included (to warn when tokens are cut).

    Returns:
        (L, D) embeddings.

    Raises:
        ValueError: a name would land (partly) past position L − 1: its identity would silently be missing.
    """
    length = prompt_embeds.shape[0]
    _check_names_fit(parsed, names, length)
    pieces, cursor = [], 0
    for position, name in zip(parsed.positions, names, strict=True):
        pieces += [prompt_embeds[cursor:position], name]
        cursor = position + parsed.filler_tokens
    pieces.append(prompt_embeds[cursor:])
    spliced = torch.cat(pieces)  # (L − k·filler + k·N, D)
    grown = sum(name.shape[0] for name in names) - len(names) * parsed.filler_tokens
    if token_count + grown > length:
        warnings.warn(
            f"with {len(names)} names spliced in, {parsed.text!r} needs {token_count + grown} positions of {length}: "
            f"its last {token_count + grown - length} token(s) are cut",
            UserWarning,
            stacklevel=4,
        )
    if spliced.shape[0] < length:  # names shorter than the filler: pad with the last (padding) position
        spliced = torch.cat([spliced, prompt_embeds[-1:].expand(length - spliced.shape[0], -1)])
    return spliced[:length]


def _check_names_fit(parsed: PlaceholderPrompt, names: list[torch.Tensor], length: int) -> None:
    """Refuses a prompt whose placeholder names would be cut: a person silently missing from the image is worse than
    an error (cut plain tokens only warn, as diffusers does)."""
    cut, shift = [], 0  # shift: how far earlier names moved this one
    for label, position, name in zip(parsed.labels, parsed.positions, names, strict=True):
        start, end = position + shift, position + shift + name.shape[0]
        if end > length:
            cut.append(f"<{label}> at positions {start}..{end - 1}")
        shift += name.shape[0] - parsed.filler_tokens
    if cut:
        raise ValueError(
            f"prompt: {'; '.join(cut)} would fall past the last position ({length - 1}) of {parsed.text!r} "
            f"with every name spliced in, and the identity would be cut off: put the placeholder(s) earlier or "
            "shorten the prompt"
        )
