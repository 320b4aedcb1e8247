"""The demo report's figures (matplotlib, PNG): the loss curve, retrieval per validation, labelled image grids."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from .results import top_k_chance

if TYPE_CHECKING:  # matplotlib comes with the [data] extra and is imported when a figure is drawn
    from matplotlib.figure import Figure


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot().close(figure)
    return path


def plot_loss(rows: list[dict[str, float]], path: Path) -> Path:
    """Training MSE per step, with the validation MSE of both splits at each validation."""
    return save_figure(loss_figure(rows), path)


def plot_retrieval(rows: list[dict[str, float]], path: Path) -> Path:
    """Top-1 / top-5 retrieval of the right name per validation epoch, for both splits, against chance."""
    return save_figure(retrieval_figure(rows), path)


def plot_grid(rows: list[list], row_labels: list[str], column_labels: list[str], title: str, path: Path) -> Path:
    """Rows of equally sized PIL images as one labelled figure (labels left and on top), white gutters between."""
    return save_figure(grid_figure(rows, row_labels, column_labels, title), path)


def loss_figure(rows: list[dict[str, float]]) -> Figure:
    """The figure of ``plot_loss``."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 3.6))
    train = [(row["step"], row["train/loss"]) for row in rows if "train/loss" in row]
    axis.plot(*zip(*train, strict=True), color="#4c72b0", linewidth=1, label="train (MSE)")
    for split, color in (("heldout", "#55a868"), ("unseen", "#c44e52")):
        points = [(row["step"], row[f"val_{split}/mse"]) for row in rows if f"val_{split}/mse" in row]
        if points:
            axis.plot(*zip(*points, strict=True), "o-", color=color, label=f"validation, {split} (MSE)")
    axis.set_yscale("log")
    axis.set_xlabel("training step")
    axis.set_ylabel("MSE to the name embedding")
    axis.set_title("Name-encoder training")
    axis.legend()
    return figure


def retrieval_figure(rows: list[dict[str, float]]) -> Figure:
    """The figure of ``plot_retrieval``: a line per split and k, and the chance of top-1 and of top-5 retrieval."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.4))
    validations = [row for row in rows if "val_heldout/top1" in row]
    epochs = [row["epoch"] + 1 for row in validations]
    for key, label, style in (
        ("val_heldout/top1", "held-out photos of train people, top-1", "o-"),
        ("val_heldout/top5", "held-out photos of train people, top-5", "o:"),
        ("val_unseen/top1", "unseen people, top-1", "s-"),
        ("val_unseen/top5", "unseen people, top-5", "s:"),
    ):
        axis.plot(epochs, [row.get(key, float("nan")) for row in validations], style, label=label)
    for k, style in ((1, "--"), (5, ":")):  # a random ranking of K names: top-k is right with min(k, K) / K
        level = top_k_chance(validations[-1]["val/chance"], k)
        axis.axhline(level, color="grey", linestyle=style, label=f"chance (top-{k}) = {level:.3f}")
    axis.set_ylim(-0.03, 1.05)
    axis.set_xlabel("epoch")
    axis.set_ylabel("retrieval accuracy")
    axis.set_title("Is the predicted name nearest to the person's own name?")
    axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    return figure


def grid_figure(rows: list[list], row_labels: list[str], column_labels: list[str], title: str) -> Figure:
    """The figure of ``plot_grid``: the cells are pasted ``gutter(cell width)`` pixels apart on white."""
    import numpy as np

    from namespace.images import image_grid

    plt = pyplot()
    cell_width, cell_height = rows[0][0].size
    gap = gutter(cell_width)
    grid = image_grid(rows, gap=gap)
    columns = max(len(row) for row in rows)
    figure, axis = plt.subplots(figsize=(1.7 * columns + 1.8, 1.7 * len(rows) + 1.0))
    axis.imshow(np.asarray(grid), interpolation="nearest")
    axis.set_xticks([(cell_width + gap) * c + cell_width / 2 for c in range(len(column_labels))])
    axis.set_xticklabels([textwrap.fill(label, 18) for label in column_labels], fontsize=8)
    axis.xaxis.tick_top()
    axis.set_yticks([(cell_height + gap) * r + cell_height / 2 for r in range(len(row_labels))])
    axis.set_yticklabels([textwrap.fill(label, 18) for label in row_labels], fontsize=8)
    axis.tick_params(length=0)
    for side in axis.spines.values():  # the gutters part the cells; a frame would box only the outer ones
        side.set_visible(False)
    axis.set_title(textwrap.fill(title, 12 * columns + 24), fontsize=10, pad=30)
    return figure


def gutter(cell_width: int) -> int:
    """Pixels between grid cells: 1/16 of a cell (at least 2), so neighbouring images never run together."""
    return max(2, cell_width // 16)
