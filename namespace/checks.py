"""Argument checks shared by the name-space functions: fail early, name the argument, say what was expected."""

from __future__ import annotations

import math

import torch


def check_name_tensor(name: object, argument: str, allow_batch: bool = True) -> torch.Tensor:
    """Checks that ``name`` is a floating tensor of shape (N, D), or (B, N, D) when ``allow_batch``."""
    if not isinstance(name, torch.Tensor):
        raise TypeError(f"{argument}: expected a torch.Tensor of shape (N, D), got {type(name).__name__}")
    shapes = "(N, D) or (B, N, D)" if allow_batch else "(N, D)"
    if name.ndim not in ((2, 3) if allow_batch else (2,)):
        raise ValueError(f"{argument}: expected shape {shapes}, got {tuple(name.shape)}")
    if not name.is_floating_point():
        raise TypeError(f"{argument}: expected a floating-point tensor, got dtype {name.dtype}")
    if name.shape[-2] == 0 or name.shape[-1] == 0:
        raise ValueError(f"{argument}: expected at least one token and one channel, got shape {tuple(name.shape)}")
    return name


def check_same_layout(reference: torch.Tensor, other: torch.Tensor, reference_name: str, other_name: str) -> None:
    """Checks that ``other`` has the token count, width, device and dtype of ``reference`` (last two axes)."""
    if other.shape[-2:] != reference.shape[-2:]:
        raise ValueError(
            f"{other_name} has shape (N, D) = {tuple(other.shape[-2:])}, but {reference_name} has "
            f"{tuple(reference.shape[-2:])}: both must come from the same name space"
        )
    if other.device != reference.device:
        raise ValueError(f"{other_name} is on {other.device}, but {reference_name} is on {reference.device}")
    if other.dtype != reference.dtype:
        raise TypeError(f"{other_name} has dtype {other.dtype}, but {reference_name} has {reference.dtype}")


def check_finite(tensor: torch.Tensor, argument: str) -> None:
    """Raises if ``tensor`` holds NaN or infinity (a corrupt file or a diverged model)."""
    if not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(f"{argument}: expected finite values, found {bad} NaN/inf entries of {tensor.numel()}")


def check_delta(delta: object, argument: str = "delta") -> float:
    """Name guidance δ (eq. 4) as a float; raises unless it is a finite number (NaN would draw a black image)."""
    try:
        value = float(delta)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{argument}: expected a number (name guidance δ), got {delta!r}") from error
    if not math.isfinite(value):
        raise ValueError(f"{argument}: expected a finite name guidance δ, got {value}")
    return value


def check_eta(eta: object, argument: str = "eta") -> torch.Tensor:
    """Name norm η (eq. 5), a number or one per identity, as a float64 tensor of shape () or (B,); raises unless
    every value is finite and > 0."""
    try:
        values = torch.as_tensor(eta, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"{argument}: expected a number (name norm η), got {eta!r}") from error
    if not bool((torch.isfinite(values) & (values > 0)).all()):
        found = values.item() if values.ndim == 0 else values.tolist()
        raise ValueError(f"{argument}: expected a finite name norm η > 0, got {found}")
    return values


def check_state_fits(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], source: str, what: str) -> None:
    """Raises unless ``state`` has exactly ``expected``'s keys and shapes; the error lists every difference.

    Args:
        expected: the module's own state (names → tensors).
        state: the state read from ``source`` (a file).
        what: what the state should fit, for the message (e.g. "this encoder config").
    """
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [
        f"{k}: {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{source} does not fit {what}: missing {missing}, unexpected {unexpected}, wrong shapes {wrong}"
        )
