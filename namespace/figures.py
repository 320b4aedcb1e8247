"""Figures shared by the demo and the evaluation (matplotlib, PNG, no display): saving, labelled image grids."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

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


def plot_grid(rows: list[list], row_labels: list[str], column_labels: list[str], title: str, path: Path) -> Path:
    """Rows of equally sized PIL images as one labelled figure (labels left and on top), white gutters between."""
    return save_figure(grid_figure(rows, row_labels, column_labels, title), path)


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
