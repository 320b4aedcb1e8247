"""The demo report's figures (matplotlib, PNG): the loss curve and retrieval per validation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from namespace.train.results import loss_curves, retrieval_curves, top_k_chance

from ..figures import pyplot, save_figure

if TYPE_CHECKING:  # matplotlib comes with the [data] extra and is imported when a figure is drawn
    from matplotlib.figure import Figure


def plot_loss(rows: list[dict[str, float]], path: Path) -> Path:
    """Training MSE per step, with the validation MSE of both splits at each validation."""
    return save_figure(loss_figure(rows), path)


def plot_retrieval(rows: list[dict[str, float]], path: Path) -> Path:
    """Top-1 / top-5 retrieval of the right name per validation epoch, for both splits, against chance."""
    return save_figure(retrieval_figure(rows), path)


def loss_figure(rows: list[dict[str, float]]) -> Figure:
    """The figure of ``plot_loss``."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 3.6))
    curves = loss_curves(rows)
    axis.plot(*zip(*curves["train"], strict=True), color="#4c72b0", linewidth=1, label="train (MSE)")
    for split, color in (("heldout", "#55a868"), ("unseen", "#c44e52")):
        if curves[split]:
            axis.plot(*zip(*curves[split], strict=True), "o-", color=color, label=f"validation, {split} (MSE)")
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
    epochs, curves, chance = retrieval_curves(rows)
    labels = {"heldout": ("held-out photos of train people", "o"), "unseen": ("unseen people", "s")}
    for (split, k), values in curves.items():
        label, marker = labels[split]
        axis.plot(epochs, values, marker + ("-" if k == 1 else ":"), label=f"{label}, top-{k}")
    for k, style in ((1, "--"), (5, ":")):  # a random ranking of K names: top-k is right with min(k, K) / K
        level = top_k_chance(chance, k)
        axis.axhline(level, color="grey", linestyle=style, label=f"chance (top-{k}) = {level:.3f}")
    axis.set_ylim(-0.03, 1.05)
    axis.set_xlabel("epoch")
    axis.set_ylabel("retrieval accuracy")
    axis.set_title("Is the predicted name nearest to the person's own name?")
    axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    return figure
