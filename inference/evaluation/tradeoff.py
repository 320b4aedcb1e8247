"""The δ/η trade-off plot: identity similarity against prompt following, one point per setting, the default marked.

A stronger name (larger δ or η) draws the person more faithfully and follows the rest of the prompt less: the curve
is what a user reads to choose their settings.
"""

from __future__ import annotations

from pathlib import Path

from namespace.figures import pyplot, save_figure


def plot_tradeoff(
    points: list[dict], path: Path, x_label: str = "CLIP-TI", y_label: str = "reference similarity"
) -> Path:
    """Draws ``points`` (each ``{"delta", "eta", "clip_ti", "reference_similarity", "default"}``) as a scatter with
    each point labelled by its setting, the default one ringed, and writes the PNG."""
    if not points:
        raise ValueError("points: expected at least one setting to plot, got none")
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.6))
    xs = [point["clip_ti"] for point in points]
    ys = [point["reference_similarity"] for point in points]
    axis.plot(xs, ys, "o", color="#4c72b0")
    for point, x, y in zip(points, xs, ys, strict=True):
        axis.annotate(_setting(point), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        if point.get("default"):
            axis.plot([x], [y], "o", markersize=14, markerfacecolor="none", markeredgecolor="#c44e52",
                      label="the encoder's default")  # fmt: skip
    axis.set_xlabel(x_label + " (prompt following) →")
    axis.set_ylabel(y_label + " (identity) →")
    axis.set_title("Identity against prompt following, per δ / η")
    if any(point.get("default") for point in points):
        axis.legend(loc="best", fontsize=8)
    return save_figure(figure, Path(path))


def _setting(point: dict) -> str:
    delta = "default" if point.get("delta") is None else f"{point['delta']:.3g}"
    eta = "default" if point.get("eta") is None else f"{point['eta']:.3g}"
    return f"δ {delta}, η {eta}"
