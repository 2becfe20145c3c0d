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
    assert [list(line.get_ydata()) for line in lines] == [[0.3, 0.5], [0.35, 0.52]]
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
        red = matplotlib.colors.to_rgb("tab:red")
        reds = [b for b in ax.patches if b.get_facecolor()[:3] == red]
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


def test_curves_put_loss_and_accuracy_side_by_side():
    fig = plots.plot_curves(HISTORY)
    left, right = fig.axes
    assert list(left.get_lines()[1].get_ydata()) == [1.8, 1.4]
    assert list(right.get_lines()[0].get_ydata()) == [0.3, 0.5]


def test_class_counts_and_samples():
    fig = plots.plot_class_counts([5, 7, 9], ["a", "b", "c"])
    assert [p.get_height() for p in fig.axes[0].patches] == [5, 7, 9]
    with pytest.raises(ValueError, match="2 counts for 3"):
        plots.plot_class_counts([1, 2], ["a", "b", "c"])
    images = np.arange(4 * 8 * 8 * 3, dtype=np.uint8).reshape(4, 8, 8, 3)
    fig = plots.plot_samples(images, np.array([[0, 1], [3, -1]]), ["a", "b"])
    shown = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(shown) == 3
    np.testing.assert_array_equal(shown[2], images[3])
    assert fig.axes[2].get_ylabel() == "b"


def test_channel_statistics_legend_and_normalized_histograms():
    hist = np.zeros((3, 256))
    hist[:, 10] = 3
    hist[:, 200] = 1
    fig = plots.plot_channel_statistics({"histograms": hist, "mean": [0.1, 0.2, 0.3],
                                         "std": [0.4, 0.5, 0.6]})
    ax = fig.axes[0]
    assert ax.get_lines()[0].get_ydata()[10] == 0.75
    assert "mean 0.200, std 0.500" in ax.get_legend().get_texts()[1].get_text()


def test_model_view_labels_sizes():
    stored = np.zeros((2, 32, 32, 3), np.uint8)
    viewed = np.zeros((2, 227, 227, 3), np.uint8)
    fig = plots.plot_model_view(stored, viewed, ["cat", "dog"])
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["cat 32x32", "dog 32x32", "227x227", "227x227"]


def test_architecture_draws_towers_side_by_side():
    from alexnet_lib import build_alexnet

    fig = plots.plot_architecture(build_alexnet("cifar"))
    texts = [t.get_text() for t in fig.axes[0].texts]
    # per-tower halves twice, shared layers once
    assert texts.count("conv2 (conv) 15x15x64") == 2
    assert texts.count("conv3 (conv) 7x7x192") == 1
    assert texts.count("fc6 (dense) 512") == 1
    fig = plots.plot_architecture(build_alexnet("cifar", towers=False))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("conv2 (conv) 15x15x128") == 1
    assert "one tower" in fig.axes[0].get_title()


def test_lrn_effect_and_neighbours_figures():
    rng = np.random.default_rng(0)
    effect = {k: rng.random((1, 6, 6, 4)) for k in ("before", "after", "divisor")}
    fig = plots.plot_lrn_effect(effect, channels=(0, 3))
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(images) == 6
    np.testing.assert_allclose(images[4], effect["after"][0, ..., 3])
    result = {"query_images": np.zeros((2, 8, 8, 3), np.uint8), "query_labels": np.array([0, 1]),
              "neighbour_images": np.zeros((2, 3, 8, 8, 3), np.uint8),
              "neighbour_labels": np.array([[0, 1, 0], [1, 1, 0]])}
    fig = plots.plot_nearest_neighbours(result, ["a", "b"])
    titles = [(ax.get_title(), ax.title.get_color()) for ax in fig.axes]
    assert titles[0] == ("test: a", "black")
    assert titles[2][1] == "tab:red" and titles[3][1] == "black"
    assert len(titles) == 8


def test_mistakes_grid_or_a_note_when_there_are_none():
    fig = plots.plot_mistakes([], np.zeros((0, 3)), np.zeros(0, np.int64), ["a", "b", "c"])
    assert "no mistakes" in fig.texts[0].get_text()
    fig = plots.plot_mistakes(np.zeros((1, 8, 8, 3)), np.array([[0.2, 0.7, 0.1]]),
                              np.array([0]), ["a", "b", "c"])
    assert len(fig.axes) == 2
