"""The name-space math of MagicNaming (Zhao et al., AAAI 2025): prepending (eq. 1), guidance (eq. 4),
scaling (eq. 5), interpolation and mixing. Pure tensor functions, no model code.

A *name* is an ``(N, D)`` tensor (8 × 2048 for SDXL): the text-encoder outputs at the N positions after the start
token of a celebrity's name. A batch of names is ``(B, N, D)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import torch

from .checks import check_delta, check_eta, check_finite, check_name_tensor, check_same_layout
from .text_sides import width_hint

InterpolationMethod = Literal["lerp", "slerp"]


def prepend(
    prompt_embeds: torch.Tensor, name: torch.Tensor, prompt_lengths: Sequence[int] | torch.Tensor | None = None
) -> torch.Tensor:
    """Puts a name right after the start token of prompt embeddings (eq. 1), keeping the sequence length.

    ``[start] + [name_1 .. name_N] + [prompt tokens 1 .. L-1-N]``: the last N positions of the prompt fall off.

    Args:
        prompt_embeds: (B, L, D) prompt embeddings as the pipeline's text side makes them (``namespace.text_sides``).
        name: (N, D) one name for every prompt, or (B, N, D) one name per prompt (B may be 1 to broadcast).
            It is moved to the device and dtype of ``prompt_embeds`` (an fp32 head may feed an fp16 pipeline).
        prompt_lengths: tokens per prompt, start and end tokens included; when given, prompts whose tokens no
            longer fit (more than L - N) raise a warning, as diffusers warns when it truncates a prompt.

    Returns:
        (B, L, D) embeddings in the dtype and device of ``prompt_embeds``.
    """
    if not isinstance(prompt_embeds, torch.Tensor) or prompt_embeds.ndim != 3:
        shape = tuple(prompt_embeds.shape) if isinstance(prompt_embeds, torch.Tensor) else type(prompt_embeds).__name__
        raise ValueError(f"prompt_embeds: expected a tensor of shape (B, L, D), got {shape}")
    name = check_name_tensor(name, "name")
    batch, length, width = prompt_embeds.shape
    num_tokens, name_width = name.shape[-2:]
    if name_width != width:
        raise ValueError(f"name has width {name_width}, but prompt_embeds has width {width}{width_hint(width)}")
    if num_tokens > length - 1:
        raise ValueError(f"name has {num_tokens} tokens, but prompt_embeds has room for {length - 1} after the start")
    if name.ndim == 2:
        name = name.unsqueeze(0)
    if name.shape[0] not in (1, batch):
        raise ValueError(f"name has batch size {name.shape[0]}, but prompt_embeds has {batch} (expected 1 or {batch})")
    name = name.to(device=prompt_embeds.device, dtype=prompt_embeds.dtype).expand(batch, -1, -1)
    if prompt_lengths is not None:
        _warn_if_cut(prompt_lengths, room=length - num_tokens, batch=batch, num_tokens=num_tokens)
    return torch.cat([prompt_embeds[:, :1], name, prompt_embeds[:, 1 : length - num_tokens]], dim=1)


def _warn_if_cut(prompt_lengths: Sequence[int] | torch.Tensor, room: int, batch: int, num_tokens: int) -> None:
    lengths = [int(n) for n in prompt_lengths]
    if len(lengths) != batch:
        raise ValueError(f"prompt_lengths: expected {batch} lengths (one per prompt), got {len(lengths)}")
    cut = [f"prompt {index} loses its last {n - room}" for index, n in enumerate(lengths) if n > room]
    if cut:
        warnings.warn(
            f"A {num_tokens}-token name leaves room for {room - 2} prompt tokens between the start and end tokens; "
            f"longer prompts are cut: {', '.join(cut)} token(s)",
            UserWarning,
            stacklevel=3,
        )


def guide(name: torch.Tensor, mean: torch.Tensor, delta: float) -> torch.Tensor:
    """Name guidance (eq. 4): ``F' = F_mean + δ·(F − F_mean)``; δ > 1 strengthens the identity.

    Args:
        name: (N, D) or (B, N, D) name embeddings.
        mean: (N, D) mean of the training names (``F_mean``).
        delta: guidance scale δ.

    Returns:
        Tensor of the shape of ``name``.
    """
    name = check_name_tensor(name, "name")
    mean = check_name_tensor(mean, "mean", allow_batch=False)
    check_same_layout(name, mean, "name", "mean")
    return mean + check_delta(delta) * (name - mean)


def normalize(name: torch.Tensor, eta: float | torch.Tensor) -> torch.Tensor:
    """Norm scaling (eq. 5): ``F'' = η·F' / ‖F'‖``, the Frobenius norm over each identity's whole (N, D) tensor.

    The norm is taken in float64: a float32 name whose entries reach ~1e17 has a norm beyond float32's range.

    Args:
        name: (N, D) or (B, N, D) name embeddings, finite.
        eta: target norm η > 0, a number or a (B,) tensor (one per identity).

    Returns:
        Tensor of the shape and dtype of ``name``; each (N, D) slice has norm η.
    """
    name = check_name_tensor(name, "name")
    eta = check_eta(eta)
    if eta.ndim == 1 and name.ndim == 3 and eta.shape[0] == name.shape[0]:
        eta = eta[:, None, None]
    elif eta.ndim != 0:
        raise ValueError(f"eta: expected a number or one value per identity, got shape {tuple(eta.shape)}")
    check_finite(name, "name")
    wide = name.double()
    norms = torch.linalg.vector_norm(wide, dim=(-2, -1), keepdim=True)  # (B, 1, 1) or (1, 1)
    if bool((norms == 0).any()):
        raise ValueError("name: cannot scale an all-zero name embedding to a norm (eq. 5 divides by its norm)")
    return (eta.to(name.device) * wide / norms).to(name.dtype)


def interpolate(
    a: torch.Tensor,
    b: torch.Tensor,
    t: float | Sequence[float] | torch.Tensor,
    method: InterpolationMethod = "lerp",
) -> torch.Tensor:
    """Interpolates between two names; t outside [0, 1] extrapolates.

    ``lerp`` (the default, as in the paper): ``a + t·(b − a)``. ``slerp``: along the great circle through a and b,
    each identity's (N, D) tensor taken as one vector: ``sin((1−t)Ω)/sin Ω·a + sin(tΩ)/sin Ω·b`` with Ω the angle
    between a and b (lerp when they are parallel; at constant speed along the arc when a and b have equal norms).
    After :func:`normalize` (eq. 5) both trace the same arc, at different speeds; only slerp has degenerate cases,
    where it raises a ValueError:

    - an all-zero a or b: the angle to it is undefined;
    - a and b within √ε rad of opposite (ε the dtype's machine epsilon: 3.5e-4 rad for float32): every half circle
      from a to b is as short as any other, and which one the weights pick is decided by rounding.

    Short of that the result is accurate even for nearly opposite names: Ω is computed as
    ``2·atan2(‖â − b̂‖, ‖â + b̂‖)`` (arccos loses half the digits near π), and the large, cancelling weights
    (≈ 1/sin Ω) are applied in float64. Apply :func:`normalize` afterwards to give the result a name's norm.

    Args:
        a: (N, D) or (B, N, D) first name (t = 0).
        b: name of the same shape (t = 1).
        t: a number, or a sequence of T numbers for T steps at once.
        method: ``"lerp"`` or ``"slerp"``.

    Returns:
        The shape of ``a`` for a number ``t``; (T, *a.shape) for a sequence.
    """
    a = check_name_tensor(a, "a")
    b = check_name_tensor(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    check_same_layout(a, b, "a", "b")
    if method not in ("lerp", "slerp"):
        raise ValueError(f"method: expected 'lerp' or 'slerp', got {method!r}")
    steps = torch.as_tensor(t, dtype=torch.float64).cpu()
    if steps.ndim > 1:
        raise ValueError(f"t: expected a number or a 1-D sequence of numbers, got shape {tuple(steps.shape)}")
    batch_axes = [1] * (a.ndim - 2)  # weights broadcast as (*t.shape, *batch, 1, 1) against (*batch, N, D)
    if method == "slerp":
        weight_a, weight_b = _slerp_weights(a, b, steps)
    else:
        weight_a, weight_b = (w.reshape((*steps.shape, *batch_axes)) for w in (1 - steps, steps))
    weight_a, weight_b = (w.to(a.device)[..., None, None] for w in (weight_a, weight_b))
    # in float64: nearly opposite names get large slerp weights whose products cancel
    return (weight_a * a.double() + weight_b * b.double()).to(a.dtype)  # (*t.shape, *a.shape)


def _slerp_weights(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Slerp weights of a and b, in float64, of shape (*t.shape, *batch) for names of shape (*batch, N, D).

    Raises a ValueError for the degenerate cases :func:`interpolate` lists (a zero name, opposite names).
    """
    flat_a, flat_b = a.double().flatten(-2), b.double().flatten(-2)  # (*batch, N·D)
    units = []
    for argument, flat in (("a", flat_a), ("b", flat_b)):
        norm = torch.linalg.vector_norm(flat, dim=-1, keepdim=True)  # (*batch, 1)
        if bool((norm == 0).any()):
            raise ValueError(
                f"{_first(argument, norm[..., 0] == 0)}: slerp needs a non-zero name (the angle to an all-zero "
                "name is undefined), got an all-zero name"
            )
        units.append(flat / norm)
    chord = torch.linalg.vector_norm(units[0] - units[1], dim=-1)  # 2·sin(Ω/2)
    opposite_chord = torch.linalg.vector_norm(units[0] + units[1], dim=-1)  # 2·cos(Ω/2)
    omega = (2 * torch.atan2(chord, opposite_chord)).cpu()  # (*batch,), accurate near 0 and π alike
    tolerance = math.sqrt(torch.finfo(a.dtype).eps)
    opposite = math.pi - omega < tolerance
    if bool(opposite.any()):
        angle = float(omega[opposite][0])
        raise ValueError(
            f"{_first('a', opposite)} and {_first('b', opposite)}: slerp needs names that are not opposite (angle "
            f"below π − {tolerance:.1e} rad for {a.dtype}), got an angle of {angle:.9f} rad: the great circle "
            "between opposite names is undefined"
        )
    t = t.reshape((*t.shape, *([1] * omega.ndim)))
    parallel = omega < 1e-6  # sin(tΩ)/sin Ω → t: lerp, without dividing 0 by 0
    sin_omega = torch.where(parallel, torch.ones_like(omega), torch.sin(omega))
    weight_a = torch.where(parallel, 1 - t, torch.sin((1 - t) * omega) / sin_omega)
    weight_b = torch.where(parallel, t, torch.sin(t * omega) / sin_omega)
    return weight_a, weight_b


def _first(argument: str, where: torch.Tensor) -> str:
    """``argument``, indexed by the first True entry of ``where`` when it is batched: ``"a"`` or ``"a[2]"``."""
    return f"{argument}[{int(where.nonzero()[0, 0])}]" if where.ndim else argument


def mix(
    names: Sequence[torch.Tensor] | torch.Tensor, weights: Sequence[float] | torch.Tensor | None = None
) -> torch.Tensor:
    """Weighted mix of several names: ``Σ wᵢ·Fᵢ / Σ wᵢ`` (equal weights by default); apply :func:`normalize` after.

    Args:
        names: K tensors of shape (N, D), or one (K, N, D) tensor.
        weights: K weights; negative weights are allowed as long as they do not sum to zero.

    Returns:
        (N, D) mixed name.
    """
    if isinstance(names, torch.Tensor):
        stacked = check_name_tensor(names, "names")
        if stacked.ndim != 3:
            raise ValueError(f"names: expected K names as a (K, N, D) tensor, got shape {tuple(stacked.shape)}")
    else:
        names = list(names)
        if not names:
            raise ValueError("names: expected at least one name, got an empty list")
        for index, name in enumerate(names):
            check_name_tensor(name, f"names[{index}]", allow_batch=False)
            check_same_layout(names[0], name, "names[0]", f"names[{index}]")
        stacked = torch.stack(names)  # (K, N, D)
    count = stacked.shape[0]
    if weights is None:
        weights = torch.ones(count, dtype=torch.float64)
    weights = torch.as_tensor(weights, dtype=torch.float64)
    if weights.shape != (count,):
        raise ValueError(f"weights: expected {count} weights (one per name), got shape {tuple(weights.shape)}")
    total = float(weights.sum())
    if abs(total) < 1e-12:
        raise ValueError(f"weights: must not sum to zero, got {weights.tolist()}")
    weights = (weights / total).to(device=stacked.device, dtype=stacked.dtype)
    return torch.einsum("k,knd->nd", weights, stacked)
