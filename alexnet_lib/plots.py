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
    val = [(e, r[f"val_{metric}"]) for e, r in zip(epochs, history)
           if r.get(f"val_{metric}") is not None]
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


def plot_mistakes(images, probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                  columns: int = 4, fig=None):
    """Wrong predictions as a top-5 grid (``analysis.most_confident_mistakes`` picks them);
    with none, a figure that says so."""
    if len(labels) == 0:
        fig = fig or plt.figure(figsize=(4, 1))
        fig.text(0.5, 0.5, "no mistakes on these test images", ha="center", va="center")
        return fig
    return plot_top5_grid(images, probs, labels, class_names, columns=columns, fig=fig)


def plot_conv1_kernels(kernel: np.ndarray, towers: int = 2, fig=None,
                       scores: np.ndarray | None = None, score_name: str = "colour share"):
    """conv1's kernels as RGB tiles, one block of rows per tower (the paper's Figure 3).

    Args:
        kernel: ``kh x kw x 3 x filters`` (``model.get_layer("conv1").get_weights()[0]``).
        towers: how many towers the filters are split into (rows are grouped by tower).
        scores: one number per kernel (e.g. ``ablations.colour_share``): each tower's
            kernels are then shown sorted by it, lowest first, and the tower's mean is in
            its title.
    """
    kernel = np.asarray(kernel)
    if kernel.ndim != 4 or kernel.shape[2] != 3:
        raise ValueError(f"Expected a conv1 kernel of shape (kh, kw, 3, filters). "
                         f"Received: {kernel.shape}")
    filters = kernel.shape[3]
    per_tower = filters // towers
    columns = min(16, per_tower)
    rows_per_tower = math.ceil(per_tower / columns)
    fig = fig or plt.figure(figsize=(columns * 0.5, towers * rows_per_tower * 0.5 + 0.4 * towers))
    subfigs = fig.subfigures(towers, 1) if towers > 1 else [fig]
    for t, sub in enumerate(subfigs):
        members = np.arange(t * per_tower, (t + 1) * per_tower)
        title = f"tower {t + 1}"
        if scores is not None:
            members = members[np.argsort(np.asarray(scores)[members], kind="stable")]
            title += f" (mean {score_name} {np.mean(np.asarray(scores)[members]):.3f})"
        sub.suptitle(title, fontsize=8)
        axes = sub.subplots(rows_per_tower, columns, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.set_axis_off()
            if i < per_tower:
                tile = kernel[..., members[i]]
                low, high = tile.min(), tile.max()
                ax.imshow((tile - low) / (high - low + 1e-12), interpolation="nearest")
    return fig


def plot_curves(history: Sequence[dict], fig=None):
    """Loss and accuracy, training vs validation, side by side."""
    fig = fig or plt.figure(figsize=(10, 3.5))
    left, right = fig.subplots(1, 2)
    plot_history(history, "loss", ax=left)
    plot_history(history, "accuracy", ax=right)
    fig.tight_layout()
    return fig


def plot_class_counts(counts: Sequence[int], class_names: Sequence[str], ax=None):
    """Images per class as bars, each labelled with its count."""
    counts = np.asarray(counts)
    if len(counts) != len(class_names):
        raise ValueError(f"{len(counts)} counts for {len(class_names)} class names.")
    fig, ax = _axes(ax, figsize=(7, 3))
    bars = ax.bar(range(len(counts)), counts, color="tab:blue")
    ax.bar_label(bars, [f"{c:,}" for c in counts], fontsize=7)
    ax.set_xticks(range(len(counts)), class_names, rotation=45, ha="right")
    ax.set_ylabel("images")
    return fig


def plot_samples(images, index_grid: np.ndarray, class_names: Sequence[str], fig=None):
    """One row per class of the images at ``index_grid`` (``classes x per_class``
    indices, -1 for none), the class name at the left."""
    index_grid = np.asarray(index_grid)
    rows, columns = index_grid.shape
    fig = fig or plt.figure(figsize=(columns * 0.9 + 1.2, rows * 0.9))
    axes = fig.subplots(rows, columns, squeeze=False)
    for (r, c), ax in np.ndenumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if index_grid[r, c] >= 0:
            ax.imshow(np.asarray(images[index_grid[r, c]]).astype(np.uint8))
        if c == 0:
            ax.set_ylabel(class_names[r], rotation=0, ha="right", va="center", fontsize=8)
    return fig


def plot_channel_statistics(stats: dict, ax=None):
    """Per-channel pixel histograms (from ``analysis.channel_statistics``), the mean and
    standard deviation of each channel in the legend."""
    fig, ax = _axes(ax, figsize=(6, 3.5))
    for c, (name, colour) in enumerate(zip("RGB", ("tab:red", "tab:green", "tab:blue"))):
        hist = np.asarray(stats["histograms"][c], np.float64)
        ax.plot(np.arange(256), hist / hist.sum(), color=colour,
                label=f"{name}: mean {stats['mean'][c]:.3f}, std {stats['std'][c]:.3f}")
    ax.set_xlabel("pixel value")
    ax.set_ylabel("fraction of pixels")
    ax.set_xlim(0, 255)
    ax.legend(fontsize=8)
    return fig


def plot_model_view(stored: np.ndarray, viewed: np.ndarray, titles: Sequence[str] = (),
                    fig=None):
    """Each stored image (top row) above what the model receives (bottom row), with
    their sizes, so the cost and blur of upsampling are visible."""
    n = len(stored)
    fig = fig or plt.figure(figsize=(2.2 * n, 4.6))
    axes = fig.subplots(2, n, squeeze=False)
    for i in range(n):
        for row, images in enumerate((stored, viewed)):
            image = np.asarray(images[i]).astype(np.uint8)
            ax = axes[row, i]
            ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            size = f"{image.shape[0]}x{image.shape[1]}"
            ax.set_title(f"{titles[i]} {size}" if row == 0 and titles else size, fontsize=8)
    axes[0, 0].set_ylabel("stored")
    axes[1, 0].set_ylabel("model input")
    return fig


def _architecture_rows(model) -> list[tuple[str, str, bool]]:
    """``(name, text, per_tower)`` for the layers of an AlexNet model, input to output."""
    from .layers import (  # lazy: TensorFlow only to draw a model
        LocalResponseNormalization,
        TowerConv2D,
    )

    towers = any(isinstance(layer, TowerConv2D) for layer in model.layers)
    rows = []
    for layer in model.layers[1:]:
        if layer.name.startswith(("flatten", "dropout")):
            continue
        shape = tuple(layer.output.shape[1:])
        tower_stage = towers and (
            isinstance(layer, (TowerConv2D, LocalResponseNormalization))
            or layer.name in ("conv1", "conv5") or layer.name.startswith("pool"))
        if tower_stage and len(shape) == 3:
            shape = shape[:-1] + (shape[-1] // 2,)
        kind = {"TowerConv2D": "conv", "Conv2D": "conv", "LocalResponseNormalization": "LRN",
                "MaxPooling2D": "max-pool", "Dense": "dense"}.get(type(layer).__name__, "")
        rows.append((layer.name, f"{layer.name} ({kind}) {'x'.join(map(str, shape))}",
                     tower_stage))
    return rows


def plot_architecture(model, ax=None):
    """The network as the paper's Figure 2 draws it: layers top to bottom, each tower's
    half of a layer in its own column; conv3 and the dense layers take both towers'
    maps (the crossing arrows). Shapes are per tower where the model is split."""
    rows = _architecture_rows(model)
    fig, ax = _axes(ax, figsize=(7, 0.55 * len(rows) + 0.8))
    towered = any(t for _, _, t in rows)
    for i, (name, text, per_tower) in enumerate(rows):
        y = len(rows) - i
        boxes = [(0.02, 0.46), (0.52, 0.46)] if per_tower else [(0.02, 0.96)]
        for t, (x, width) in enumerate(boxes):
            colour = ("#cfe2f3", "#f9cb9c")[t] if per_tower else "#d9d9d9"
            ax.add_patch(plt.Rectangle((x, y - 0.35), width, 0.7, facecolor=colour,
                                       edgecolor="black", linewidth=0.6))
            ax.text(x + width / 2, y, text, ha="center", va="center", fontsize=7)
        if i + 1 < len(rows):
            next_split = rows[i + 1][2]
            centres = [0.25, 0.75] if per_tower else [0.5]
            targets = [0.25, 0.75] if next_split else [0.5]
            for a in centres:
                for b in targets:
                    if per_tower and next_split and a != b:
                        continue  # a tower layer only sees its own tower
                    ax.annotate("", xy=(b, y - 1 + 0.35), xytext=(a, y - 0.35),
                                arrowprops=dict(arrowstyle="->", linewidth=0.6))
    ax.set_xlim(0, 1)
    ax.set_ylim(0.4, len(rows) + 0.6)
    ax.set_axis_off()
    ax.set_title(f"{model.name}: " + ("two towers (blue, orange); grey layers see both"
                                      if towered else "one tower"), fontsize=9)
    return fig


def plot_lrn_effect(effect: dict, channels: Sequence[int] = (0, 1, 2, 3), image: int = 0,
                    fig=None):
    """Feature maps of one image before and after LRN, and the divisor LRN applied at
    each position (``analysis.lrn_effect``), one row per channel."""
    channels = list(channels)
    fig = fig or plt.figure(figsize=(8, 2.3 * len(channels)))
    axes = fig.subplots(len(channels), 3, squeeze=False)
    for r, c in enumerate(channels):
        for col, (key, title) in enumerate((("before", "before LRN"), ("after", "after LRN"),
                                            ("divisor", "divisor"))):
            ax = axes[r, col]
            data = effect[key][image, ..., c]
            im = ax.imshow(data, cmap="viridis" if key != "divisor" else "magma")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"channel {c}: {title}", fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def plot_nearest_neighbours(result: dict, class_names: Sequence[str], fig=None):
    """The paper's Figure 4 (right): each test image (first column) beside the training
    images nearest to it in fc7 space (``analysis.fc7_neighbours``)."""
    queries = result["query_images"]
    neighbours = result["neighbour_images"]
    n, k = neighbours.shape[:2]
    fig = fig or plt.figure(figsize=(1.3 * (k + 1), 1.45 * n))
    axes = fig.subplots(n, k + 1, squeeze=False)
    for i in range(n):
        tiles = [(queries[i], result["query_labels"][i])] + [
            (neighbours[i, j], result["neighbour_labels"][i, j]) for j in range(k)]
        for j, (image, label) in enumerate(tiles):
            ax = axes[i, j]
            ax.imshow(np.asarray(image).astype(np.uint8))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(("test: " if j == 0 else "") + class_names[label], fontsize=7,
                         color="black" if j == 0 or label == result["query_labels"][i]
                         else "tab:red")
            if j == 0:
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:blue")
                    spine.set_linewidth(2)
    fig.suptitle("nearest training images in fc7 space (red: another class)", fontsize=9)
    return fig


def plot_error_curves(curves: dict[str, Sequence[Sequence[float]]], target: float | None = None,
                      ax=None):
    """Training error after each epoch, one colour per variant and one line per seed (the
    paper's Figure 1: ReLU solid, tanh dashed).

    Args:
        curves: ``{variant: [errors by epoch, one list per seed]}``.
        target: draws the error the comparison times the variants to (the paper's 25%).
    """
    fig, ax = _axes(ax, figsize=(5, 3.5))
    styles = ["-", "--", ":", "-."]
    for i, (name, runs) in enumerate(curves.items()):
        for j, errors in enumerate(runs):
            ax.plot(np.arange(1, len(errors) + 1), errors, styles[i % len(styles)],
                    color=f"C{i}", alpha=0.8, label=name if j == 0 else None)
    if target is not None:
        ax.axhline(target, color="grey", linewidth=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training error rate")
    ax.set_ylim(0, 1)
    ax.legend()
    return fig


def save_figure(fig, path: str | Path, dpi: int = 120, close: bool = True) -> Path:
    """Save ``fig`` as PNG (creating the folder) and return the path; ``close=False``
    keeps it open (a notebook then shows it at the end of the cell)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    if close:
        plt.close(fig)
    return path
