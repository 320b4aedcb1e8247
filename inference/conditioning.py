"""Names in ComfyUI's SDXL conditioning, on plain tensors (no ComfyUI import): the logic of the ComfyUI pack's
Apply Identity node (``comfyui/`` in the repository).

ComfyUI's CONDITIONING is a list of ``[cond, options]`` entries: ``cond`` (B, 77·k, D) holds k 77-token chunks of
the prompt concatenated (SDXL: CLIP-L's and bigG's penultimate hidden states side by side, D = 768 + 1280 = 2048,
the layout of diffusers' ``prompt_embeds``), ``options`` a dict with ``pooled_output`` (B, 1280) and optional keys
such as ``start_percent`` / ``end_percent``. Every chunk starts with its own start token; the name follows the start
token of the FIRST chunk, put there by :func:`namespace.name_space.prepend`, the function the diffusers plugin uses.
The name itself is made as the plugin makes it (:func:`namespace.name_space.guide`, then
:func:`namespace.name_space.normalize`).

What falls off: ``prepend`` keeps the sequence length, so the last N positions of the first chunk go (N = 8). For a
prompt of at most 77 − 2 − N = 67 tokens those are padding; a longer prompt loses, in its first chunk, its last
N − 1 tokens before the chunk's end token, and the end token itself. ComfyUI does not hand the prompt's token
count to a conditioning node, so, unlike the plugin, nothing here can warn about it: keep the first 67 tokens for
what matters, or start a new chunk with ComfyUI's ``BREAK``.
"""

from __future__ import annotations

from typing import Any

import torch

from namespace import Identity, NameSpaceStatistics
from namespace.checks import check_delta, check_eta
from namespace.name_space import guide, normalize, prepend

CHUNK = 77  # ComfyUI's CLIP chunk: start token, 75 tokens, end token
NODE = "Apply Identity"  # how errors name the node whose inputs they are about
WIDTH_HINTS = {
    768: " (CLIP-L alone: an SD 1.5 model's conditioning)",
    1024: " (OpenCLIP-H: an SD 2.x model's conditioning)",
    1280: " (bigG alone: the SDXL refiner's conditioning)",
}

Conditioning = list[list[Any]]  # [[cond (B, 77·k, D), options dict], ...]


def identity_name(
    identity: Identity, statistics: NameSpaceStatistics, delta: float | None = None, eta: float | None = None
) -> torch.Tensor:
    """The (N, D) name an identity puts into a prompt, as ``MagicNaming.name`` makes it: eq. 4 then eq. 5.

    Args:
        identity: the identity, (N, D) as the encoder predicts it.
        statistics: the encoder's name-space statistics (F_mean, the default η and the calibrated δ).
        delta: name guidance δ; None: ``statistics.delta``.
        eta: name norm η; None: ``statistics.norm``.

    Returns:
        (N, D) float32 name.
    """
    embedding = identity.embedding.to(statistics.mean.device)
    delta = statistics.delta if delta is None else check_delta(delta, f"{NODE}.delta")
    if delta != 1.0:
        embedding = guide(embedding, statistics.mean, delta)
    return normalize(embedding, statistics.norm if eta is None else check_eta(eta, f"{NODE}.eta"))


def mean_name(statistics: NameSpaceStatistics, eta: float | None = None) -> torch.Tensor:
    """The (N, D) mean name at norm η, the plugin's ``negative_name="mean"``."""
    return normalize(statistics.mean, statistics.norm if eta is None else check_eta(eta, f"{NODE}.eta"))


def prepend_to_first_chunk(cond: torch.Tensor, name: torch.Tensor) -> torch.Tensor:
    """Puts a name after the start token of the first 77-token chunk (eq. 1); the other chunks stay as they are.

    Args:
        cond: (B, 77·k, D) one conditioning entry's tensor.
        name: (N, D) or (B, N, D).

    Returns:
        (B, 77·k, D): the first chunk as :func:`namespace.name_space.prepend` makes it (its last N positions fall
        off), the rest unchanged.
    """
    first = prepend(cond[:, :CHUNK], name)  # (B, 77, D)
    return torch.cat([first, cond[:, CHUNK:]], dim=1)


def apply_identity(
    conditioning: Conditioning,
    identity: Identity,
    statistics: NameSpaceStatistics,
    delta: float | None = None,
    eta: float | None = None,
    start_percent: float = 0.0,
    end_percent: float = 1.0,
) -> Conditioning:
    """The positive conditioning with the identity's name in it, within a range of the sampling.

    ``start_percent`` / ``end_percent`` run as ComfyUI's ``ConditioningSetTimestepRange`` runs them: 0 is the first
    step (pure noise), 1 the last. With (0, 1) the named entries replace the plain ones; with a narrower range each
    entry becomes the named entry inside the range and the plain entry outside it (before it, after it, or both),
    each range intersected with any range the entry had already.

    Args:
        conditioning: ComfyUI's CONDITIONING, entries of (B, 77·k, D) with D the identity's width.
        identity: an identity of the encoder whose ``statistics`` are given.
        statistics: the encoder's name-space statistics.
        delta: name guidance δ (eq. 4); None: the encoder's calibrated δ.
        eta: name norm η (eq. 5); None: the encoder's mean name norm.
        start_percent: where the name starts, a fraction of the sampling in [0, 1).
        end_percent: where it ends, in (start_percent, 1].

    Returns:
        New CONDITIONING (the input is not modified; the options dicts are copied, ``pooled_output`` kept).
    """
    _check_identity(identity, statistics)
    _check_range(start_percent, end_percent)
    entries = check_conditioning(conditioning, statistics.width, identity.num_tokens, "conditioning")
    name = identity_name(identity, statistics, delta, eta)
    result = []
    for cond, options in entries:
        named = prepend_to_first_chunk(cond, name)
        result.extend(_split_range(named, cond, options, start_percent, end_percent))
    return result


def apply_mean_name(
    conditioning: Conditioning, statistics: NameSpaceStatistics, eta: float | None = None
) -> Conditioning:
    """The negative conditioning with the mean name in it (at every step, as the plugin's negative side).

    Args:
        conditioning: ComfyUI's negative CONDITIONING, entries of (B, 77·k, D).
        statistics: the encoder's name-space statistics.
        eta: name norm η; None: the encoder's mean name norm.

    Returns:
        New CONDITIONING, each entry's first chunk with the mean name after its start token.
    """
    entries = check_conditioning(conditioning, statistics.width, statistics.num_tokens, "negative")
    name = mean_name(statistics, eta)
    return [[prepend_to_first_chunk(cond, name), dict(options)] for cond, options in entries]


def check_conditioning(conditioning: object, width: int, num_tokens: int, argument: str) -> Conditioning:
    """Checks a CONDITIONING for names of width ``width``; errors name the node input ``Apply Identity.<argument>``.

    Returns:
        The entries as ``[cond, options]`` pairs.
    """
    where = f"{NODE}.{argument}"
    if not isinstance(conditioning, (list, tuple)) or not conditioning:
        found = type(conditioning).__name__
        raise ValueError(f"{where}: expected ComfyUI conditioning (a non-empty list), got {found}")
    entries = []
    for index, entry in enumerate(conditioning):
        if not isinstance(entry, (list, tuple)) or len(entry) != 2 or not isinstance(entry[1], dict):
            raise ValueError(f"{where}[{index}]: expected a [tensor, dict] conditioning entry, got {entry!r:.80}")
        cond = entry[0]
        if not isinstance(cond, torch.Tensor) or cond.ndim != 3:
            shape = tuple(cond.shape) if isinstance(cond, torch.Tensor) else type(cond).__name__
            raise ValueError(f"{where}[{index}]: expected a (B, 77·k, D) tensor, got {shape}")
        if cond.shape[-1] != width:
            raise ValueError(
                f"{where}: expected SDXL conditioning of width {width} (the width of the encoder's names), got "
                f"{cond.shape[-1]}{WIDTH_HINTS.get(int(cond.shape[-1]), '')}"
            )
        if cond.shape[1] < num_tokens + 1:
            raise ValueError(f"{where}[{index}]: {cond.shape[1]} tokens leave no room for a {num_tokens}-token name")
        entries.append([cond, entry[1]])
    return entries


def _check_identity(identity: object, statistics: NameSpaceStatistics) -> None:
    if not isinstance(identity, Identity):
        raise TypeError(f"{NODE}.identity: expected a MagicNaming identity, got {type(identity).__name__}")
    expected = (statistics.num_tokens, statistics.width)
    if (identity.num_tokens, identity.width) != expected:
        raise ValueError(
            f"{NODE}.identity: {identity.label!r} has shape (N, D) = {(identity.num_tokens, identity.width)}, but "
            f"the name encoder's names are {expected}: made by an encoder for another model?"
        )


def _check_range(start: float, end: float) -> None:
    if not 0.0 <= start < end <= 1.0:
        raise ValueError(
            f"{NODE}.start_percent, {NODE}.end_percent: expected 0 <= start < end <= 1, got ({start}, {end})"
        )


def _split_range(named: torch.Tensor, plain: torch.Tensor, options: dict, start: float, end: float) -> list[list[Any]]:
    """The named entry inside [start, end] and the plain entry outside it, within the entry's own range."""
    if (start, end) == (0.0, 1.0):
        return [[named, dict(options)]]
    own_start, own_end = options.get("start_percent", 0.0), options.get("end_percent", 1.0)
    pieces = [
        (plain, own_start, min(own_end, start)),
        (named, max(own_start, start), min(own_end, end)),
        (plain, max(own_start, end), own_end),
    ]
    return [[cond, {**options, "start_percent": low, "end_percent": high}] for cond, low, high in pieces if low < high]


__all__ = [
    "CHUNK",
    "Conditioning",
    "apply_identity",
    "apply_mean_name",
    "check_conditioning",
    "identity_name",
    "mean_name",
    "prepend_to_first_chunk",
]
