"""A seeded figure with its spread over seeds: what every headline figure of the demo and the evaluation reports.

A figure measured on one seed's images moves with the seed; a reader needs to know by how much before comparing two
figures. ``over_seeds`` takes the figure measured on each seed alone; ``jackknife`` takes a figure that needs every
seed at once (an interpolation path judged on the mean over seeds) and leaves one seed out at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence


def over_seeds(per_seed: Sequence[float]) -> dict:
    """``{"mean", "std", "min", "max", "seeds", "per_seed"}`` of a figure measured on each seed's images alone.

    ``std`` is the sample standard deviation over seeds (0 for one seed); the standard error of the mean is
    ``std / sqrt(seeds)``.
    """
    values = [float(value) for value in per_seed]
    if not values:
        raise ValueError("per_seed: expected the figure of at least one seed, got none")
    mean = math.fsum(values) / len(values)
    variance = math.fsum((value - mean) ** 2 for value in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return {
        "mean": mean,
        "std": math.sqrt(variance),
        "min": min(values),
        "max": max(values),
        "seeds": len(values),
        "per_seed": values,
    }


def jackknife(figure: Callable[[list[int]], float], seeds: int) -> dict:
    """``{"mean", "std", "seeds", "leave_one_out"}`` of a figure computed from several seeds together.

    Args:
        figure: the figure from a list of seed indices (all of them for the reported value).
        seeds: how many seeds there are.

    ``std`` is the jackknife standard error, ``sqrt((K - 1) / K · Σ (f₋ᵢ − f̄₋)²)`` over the K leave-one-seed-out
    figures: how much the figure moves with the seeds drawn (0 for one seed).
    """
    if seeds < 1:
        raise ValueError(f"seeds: expected at least 1, got {seeds}")
    value = float(figure(list(range(seeds))))
    if seeds == 1:
        return {"mean": value, "std": 0.0, "seeds": 1, "leave_one_out": []}
    left_out = [float(figure([s for s in range(seeds) if s != out])) for out in range(seeds)]
    centre = math.fsum(left_out) / seeds
    std = math.sqrt((seeds - 1) / seeds * math.fsum((v - centre) ** 2 for v in left_out))
    return {"mean": value, "std": std, "seeds": seeds, "leave_one_out": left_out}


def plus_minus(spread: dict, digits: int = 2) -> str:
    """``"0.83 ± 0.03"``: a spread as the report and the README print it."""
    return f"{spread['mean']:.{digits}f} ± {spread['std']:.{digits}f}"


__all__ = ["jackknife", "over_seeds", "plus_minus"]
