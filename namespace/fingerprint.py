"""The name-space fingerprint: what a pipeline's text encoders make of a fixed list of probe names, small enough to
keep in an encoder's record.

An encoder learns names as one pipeline's text side embeds them (the data build's targets stage). A checkpoint that
retrained its text encoders (many community SDXL checkpoints did) embeds names differently, and a predicted name may
no longer mean the same person there. The targets stage records ``fingerprint(pipe)`` beside the targets, the
training record copies it into the encoder's ``record["fingerprint"]``, and ``MagicNaming`` measures ``drift``
against the pipeline it is given, once, when it is constructed.

A fingerprint is plain JSON (about 5 KB): each probe name's (N, D) embedding (``text_sides.name_embeddings``)
projected to ``dims`` channels by a ±1 projection whose bits come from SHA-256 of the seed (the same bits on every
machine and library version), averaged over the N positions: a (P, dims) table.
"""

from __future__ import annotations

import hashlib
import math
import warnings

import numpy as np
import torch

from .text_sides import DEFAULT_NUM_TOKENS, name_embeddings, text_side

VERSION = 1
# Common first and last names of several origins and a few historical people SDXL's text encoders know by name:
# short (at most 4 CLIP tokens each), so that N = 8 holds them whole.
PROBE_NAMES = (
    "John Smith",
    "Maria Garcia",
    "David Brown",
    "Sarah Johnson",
    "Wei Zhang",
    "Fatima Khan",
    "James Wilson",
    "Anna Kowalski",
    "Kenji Tanaka",
    "Amara Okafor",
    "Albert Einstein",
    "Marilyn Monroe",
    "Frida Kahlo",
    "Nelson Mandela",
    "Marie Curie",
    "Bruce Lee",
)
DIMS = 32  # projected channels per probe name: 16 × 32 numbers in all
SEED = 0
SIGNIFICANT_DIGITS = 5  # stored precision: rounding moves a drift by less than 1e-8
# Above this drift the pipeline's text encoders are taken to differ from the recorded ones. Measured on the tiny
# SDXL (docs/plugin.md): the same weights run in float16 drift 8e-7, in bfloat16 4e-5; weights × (1 + 1e-3 noise)
# 6e-6 (less than casting them to bfloat16 moves them), × (1 + 1e-2 noise) 6e-4, × (1 + 0.1 noise) 0.06; text encoders
# retrained with their UNet (the miniature world's) 0.6; freshly seeded ones about 1. The threshold sits 250 times
# above bfloat16's rounding on three layers (SDXL's text encoders are 12 and 32 layers deep and round more): a cosine
# of 0.99, 8 degrees between a probe's recorded and current vector, where the miniature world's retrain moves them 66.
DRIFT_THRESHOLD = 0.01


def fingerprint(
    pipe: object,
    probes: tuple[str, ...] | list[str] = PROBE_NAMES,
    num_tokens: int = DEFAULT_NUM_TOKENS,
    dims: int = DIMS,
    seed: int = SEED,
) -> dict:
    """The fingerprint of a pipeline's text side: one text-encoder pass over the probe names.

    Args:
        pipe: an SDXL-family diffusers pipeline (any device and dtype).
        probes: P probe names.
        num_tokens: N, the positions a name takes (the targets' N).
        dims: K, the projected channels kept per probe name.
        seed: seeds the projection.

    Returns:
        Plain JSON values: ``version``, ``text_side`` (the family), ``probes``, ``num_tokens``, ``width`` (D),
        ``dims``, ``seed`` and ``vectors``: (P, K) floats, each probe's projected embedding averaged over N.
    """
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*need more than .* tokens and are cut")  # a small N: as wanted
        embeddings = name_embeddings(pipe, list(probes), num_tokens).float().cpu()  # (P, N, D)
    width = embeddings.shape[-1]
    vectors = (embeddings @ _projection(seed, width, dims)).mean(dim=1)  # (P, K)
    return {
        "version": VERSION,
        "text_side": text_side(pipe).family,
        "probes": list(probes),
        "num_tokens": num_tokens,
        "width": width,
        "dims": dims,
        "seed": seed,
        "vectors": [[float(f"{value:.{SIGNIFICANT_DIGITS}g}") for value in row] for row in vectors.tolist()],
    }


def drift(recorded: dict, current: object) -> float:
    """How far a text side has moved from a recorded fingerprint: 1 − the mean cosine similarity, over the probe
    names, of their recorded and current vectors, each centred on the probes' mean.

    Centring keeps what tells the names apart: what the text encoders add to every name alike would otherwise
    dominate the cosine. 0 means the same text encoders (up to rounding: bfloat16 gives about 4e-5), about 1
    unrelated ones (a freshly seeded text encoder), up to 2 opposite ones; above ``DRIFT_THRESHOLD`` names may not
    mean the same people.

    Args:
        recorded: a ``fingerprint`` (e.g. ``encoder.record["fingerprint"]``).
        current: a pipeline (fingerprinted here with ``recorded``'s probes and settings) or another fingerprint.

    Raises:
        ValueError: the two were not made alike (version, probe names, N, D, projection), naming what differs.
    """
    problems = fingerprint_problems(recorded)
    if problems:
        raise ValueError("recorded fingerprint: " + "; ".join(problems))
    if not isinstance(current, dict):
        current = fingerprint(current, recorded["probes"], recorded["num_tokens"], recorded["dims"], recorded["seed"])
    differ = [
        f"{key} {recorded[key]!r} ≠ {current.get(key)!r}"
        for key in ("version", "probes", "num_tokens", "width", "dims", "seed")
        if current.get(key) != recorded[key]
    ]
    if differ:
        raise ValueError("the fingerprints were not made alike: " + "; ".join(differ))
    then, now = (torch.tensor(side["vectors"], dtype=torch.float64) for side in (recorded, current))  # (P, K)
    then, now = then - then.mean(dim=0), now - now.mean(dim=0)
    return float(1 - torch.cosine_similarity(then, now, dim=-1).mean())


def fingerprint_problems(recorded: object) -> list[str]:
    """What stops a recorded fingerprint from being compared (an empty list when nothing does)."""
    if not isinstance(recorded, dict):
        return [f"expected an object, got {type(recorded).__name__}"]
    if recorded.get("version") != VERSION:
        return [f"version {recorded.get('version')!r}; this magicnaming reads version {VERSION}"]
    missing = [key for key in ("probes", "num_tokens", "width", "dims", "seed", "vectors") if key not in recorded]
    if missing:
        return [f"no {', '.join(missing)}"]
    shape = (len(recorded["probes"]), recorded["dims"])
    vectors = recorded["vectors"]
    if not isinstance(vectors, list) or [len(row) for row in vectors] != [shape[1]] * shape[0]:
        return [f"vectors: expected {shape[0]} rows of {shape[1]} numbers"]
    return []


def drift_warning(value: float) -> str:
    """The warning for a drift above ``DRIFT_THRESHOLD``: the figure and what it means."""
    return (
        f"this pipeline's text encoders differ from those the encoder's names were learned on (text-side drift "
        f"{value:.3g} > {DRIFT_THRESHOLD:g}; 0 = the same, about 1 = unrelated): a checkpoint that retrained its text "
        "encoders? Names may not mean the same people here"
    )


def _projection(seed: int, width: int, dims: int) -> torch.Tensor:
    """(width, dims) ±1/√width: a random projection (Achlioptas, 2003) from SHA-256 in counter mode."""
    count = width * dims
    stream = b"".join(
        hashlib.sha256(f"magicnaming-fingerprint:{seed}:{block}".encode()).digest()
        for block in range(math.ceil(count / 256))
    )
    bits = np.unpackbits(np.frombuffer(stream, dtype=np.uint8))[:count].reshape(width, dims)
    return torch.from_numpy(bits.astype(np.float32) * 2 - 1) / math.sqrt(width)


__all__ = ["DRIFT_THRESHOLD", "PROBE_NAMES", "VERSION", "drift", "drift_warning", "fingerprint", "fingerprint_problems"]
