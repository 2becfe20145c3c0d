"""Plot functions draw what they are given (Agg backend, no display)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from alexnet_lib import plots  # noqa: E402

HISTORY = [{"epoch": 0, "loss": 2.0, "accuracy": 0.3, "val_loss": 1.8, "val_accuracy": 0.35},
           {"epoch": 1, "loss": 1.5, "accuracy": 0.5, "val_loss": 1.4, "val_accuracy": 0.52}]


def test_history_plots_both_curves():
    fig = plots.plot_history(HISTORY)
    lines = fig.axes[0].get_lines()
    assert [list(l.get_ydata()) for l in lines] == [[0.3, 0.5], [0.35, 0.52]]
    fig, ax = plt.subplots()
    assert plots.plot_history(HISTORY, "loss", ax=ax) is fig
    assert list(ax.get_lines()[1].get_ydata()) == [1.8, 1.4]
    with pytest.raises(ValueError, match="metric='top5'"):
        plots.plot_history(HISTORY, "top5")


def test_confusion_rows_are_normalized():
    fig = plots.plot_confusion([[3, 1], [0, 4]], ["a", "b"])
    data = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(data, [[0.75, 0.25], [0, 1]])
    with pytest.raises(ValueError, match="3 class names"):
        plots.plot_confusion([[1, 0], [0, 1]], ["a", "b", "c"])


def test_top5_grid_marks_the_true_class(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=3)
    labels = np.array([0, 5, 9])
    fig = plots.plot_top5_grid(rng.integers(0, 256, (3, 32, 32, 3)), probs, labels,
                               [f"c{i}" for i in range(10)], columns=2)
    bar_axes = fig.axes[1::2]
    assert len(bar_axes) == 3
    for ax, p, label in zip(bar_axes, probs, labels):
        heights = sorted((b.get_width() for b in ax.patches), reverse=True)
        np.testing.assert_allclose(heights, np.sort(p)[::-1][:5])
        reds = [b for b in ax.patches if b.get_facecolor()[:3] == matplotlib.colors.to_rgb("tab:red")]
        assert len(reds) == (label in np.argsort(-p)[:5])
    path = plots.save_figure(fig, tmp_path / "figures" / "top5.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_conv1_kernels_grouped_by_tower():
    kernel = np.random.default_rng(1).normal(size=(5, 5, 3, 64))
    fig = plots.plot_conv1_kernels(kernel, towers=2)
    images = [ax.images[0].get_array() for sub in fig.subfigs for ax in sub.axes if ax.images]
    assert len(images) == 64
    tile = kernel[..., 32]  # first kernel of tower 2
    np.testing.assert_allclose(images[32], (tile - tile.min()) / (tile.max() - tile.min() + 1e-12))
    with pytest.raises(ValueError, match="filters"):
        plots.plot_conv1_kernels(np.zeros((5, 5, 1, 8)))
