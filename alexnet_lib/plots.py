"""Figures for the notebooks and the command line. Each function takes ``ax=None`` (or a
figure) and returns the ``matplotlib.figure.Figure`` it drew on, so notebooks show it and
callers can save it; nothing here needs a display (tests use the Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np


def _axes(ax, **figure_kw):
    if ax is None:
        fig, ax = plt.subplots(**figure_kw)
        return fig, ax
    return ax.figure, ax


def plot_history(history: Sequence[dict], metric: str = "accuracy", ax=None):
    """Training vs validation ``metric`` (``accuracy`` or ``loss``) per epoch, from
    ``history.csv`` rows (``alexnet_lib.train.read_history``)."""
    if metric not in ("accuracy", "loss"):
        raise ValueError(f"metric must be 'accuracy' or 'loss'. Received: metric={metric!r}")
    fig, ax = _axes(ax, figsize=(5, 3.5))
    epochs = [r["epoch"] + 1 for r in history]
    ax.plot(epochs, [r[metric] for r in history], "o-", label=f"training {metric}")
    val = [(e, r[f"val_{metric}"]) for e, r in zip(epochs, history) if r.get(f"val_{metric}") is not None]
    if val:
        ax.plot(*zip(*val), "s-", label=f"validation {metric}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_confusion(confusion, class_names: Sequence[str], normalize: bool = True, ax=None):
    """The confusion matrix (rows: true class, columns: predicted), as row fractions by default."""
    matrix = np.asarray(confusion, dtype=np.float64)
    if matrix.shape != (len(class_names), len(class_names)):
        raise ValueError(f"confusion has shape {matrix.shape} but there are {len(class_names)} "
                         f"class names.")
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    fig, ax = _axes(ax, figsize=(6, 5))
    image = ax.imshow(matrix, cmap="Blues", vmin=0)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.2f}" if normalize else f"{int(value)}", ha="center", va="center",
                fontsize=7, color="white" if value > matrix.max() / 2 else "black")
    fig.colorbar(image, ax=ax)
    return fig


def plot_top5_grid(images: np.ndarray, probs: np.ndarray, labels: np.ndarray,
                   class_names: Sequence[str], columns: int = 4, fig=None):
    """Each image beside the bars of its five most probable classes (the paper's Figure 4,
    left): the true class's bar in red."""
    n = len(images)
    rows = math.ceil(n / columns)
    fig = fig or plt.figure(figsize=(3.2 * columns, 1.6 * rows))
    grid = fig.add_gridspec(rows, 2 * columns, width_ratios=[1, 1.3] * columns)
    k = min(5, probs.shape[1])
    for i in range(n):
        r, c = divmod(i, columns)
        ax_image = fig.add_subplot(grid[r, 2 * c])
        ax_image.imshow(np.asarray(images[i]).astype(np.uint8))
        ax_image.set_axis_off()
        ax_image.set_title(class_names[labels[i]], fontsize=8)
        top = np.argsort(-probs[i])[:k]
        ax_bars = fig.add_subplot(grid[r, 2 * c + 1])
        colours = ["tab:red" if t == labels[i] else "tab:blue" for t in top]
        ax_bars.barh(range(k)[::-1], probs[i][top], color=colours)
        ax_bars.set_yticks(range(k)[::-1], [class_names[t] for t in top], fontsize=7)
        ax_bars.set_xlim(0, 1)
        ax_bars.tick_params(axis="x", labelsize=6)
    fig.tight_layout()
    return fig


def plot_conv1_kernels(kernel: np.ndarray, towers: int = 2, fig=None):
    """conv1's kernels as RGB tiles, one block of rows per tower (the paper's Figure 3).

    Args:
        kernel: ``kh x kw x 3 x filters`` (``model.get_layer("conv1").get_weights()[0]``).
        towers: how many towers the filters are split into (rows are grouped by tower).
    """
    kernel = np.asarray(kernel)
    if kernel.ndim != 4 or kernel.shape[2] != 3:
        raise ValueError(f"Expected a conv1 kernel of shape (kh, kw, 3, filters). Received: {kernel.shape}")
    filters = kernel.shape[3]
    per_tower = filters // towers
    columns = min(16, per_tower)
    rows_per_tower = math.ceil(per_tower / columns)
    fig = fig or plt.figure(figsize=(columns * 0.5, towers * rows_per_tower * 0.5 + 0.4 * towers))
    subfigs = fig.subfigures(towers, 1) if towers > 1 else [fig]
    for t, sub in enumerate(subfigs):
        sub.suptitle(f"tower {t + 1}", fontsize=8)
        axes = sub.subplots(rows_per_tower, columns, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.set_axis_off()
            if i < per_tower:
                tile = kernel[..., t * per_tower + i]
                low, high = tile.min(), tile.max()
                ax.imshow((tile - low) / (high - low + 1e-12), interpolation="nearest")
    return fig


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Save ``fig`` as PNG (creating the folder), close it, and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path
