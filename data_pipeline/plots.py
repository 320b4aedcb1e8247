"""The two figures of a LaionCele build: the funnel and the images-per-identity histogram."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_funnel(steps: list[tuple[str, int]], path: Path) -> None:
    """A horizontal bar per funnel step (what remains after it), top to bottom."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 0.45 * len(steps) + 1.2))
    labels, values = zip(*steps, strict=True)
    bars = axis.barh(range(len(steps)), values, color="#4c72b0")
    axis.set_yticks(range(len(steps)), labels)
    axis.invert_yaxis()
    axis.bar_label(bars, padding=3)
    axis.set_xlabel("rows / images / identities remaining")
    axis.set_title("LaionCele build funnel")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_images_per_identity(counts: list[int], path: Path) -> None:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.hist(counts, bins=range(min(counts), max(counts) + 2), color="#55a868", align="left", rwidth=0.85)
    axis.set_xlabel("images per identity")
    axis.set_ylabel("identities")
    axis.set_title(f"{len(counts)} identities, {sum(counts)} images")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
