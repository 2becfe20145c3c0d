"""The notebooks' computations: statistics, layer access through saved-model wrappers,
LRN's divisor, mistakes and nearest neighbours, against direct NumPy computations."""

import keras
import numpy as np
import pytest

from alexnet_lib import analysis, build_alexnet
from alexnet_lib.data.preprocessing import Preprocessing
from alexnet_lib.runs import inference_model, load_run

SMALL = dict(image_size=16, conv1_filters=8, conv_filters=(8, 12, 12, 8), fc_units=16,
             num_classes=3)


def test_counts_samples_and_channel_statistics():
    labels = np.array([0, 2, 2, 1, 2, 0])
    np.testing.assert_array_equal(analysis.class_counts(labels, 4), [2, 1, 3, 0])
    grid = analysis.samples_per_class(labels, 2, seed=1)
    assert grid.shape == (3, 2)
    assert set(grid[0]) == {0, 5} and grid[1, 1] == -1 and grid[1, 0] == 3
    assert all(labels[i] == 2 for i in grid[2])
    images = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    stats = analysis.channel_statistics(images)
    np.testing.assert_allclose(stats["mean"], (images / 255).mean((0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(stats["std"], (images / 255).std((0, 1, 2)), rtol=1e-4)
    np.testing.assert_array_equal(stats["histograms"][1], np.bincount(images[..., 1].ravel(),
                                                                      minlength=256))
    listed = analysis.channel_statistics([images[0], images[1:]])
    np.testing.assert_array_equal(listed["histograms"], stats["histograms"])


def test_model_view_is_the_evaluation_resize():
    image = np.zeros((1, 32, 32, 3), np.uint8)
    image[:, :16] = 200
    view = analysis.model_view(image, 64)
    assert view.shape == (1, 64, 64, 3) and view.dtype == np.uint8
    assert view[0, 5, 5, 0] == 200 and view[0, 60, 5, 0] == 0
    same = analysis.model_view(image, 32)
    np.testing.assert_array_equal(same, image)


def test_take_images_brings_a_list_of_sizes_to_one():
    images = [np.zeros((8, 8, 3), np.uint8), np.full((12, 10, 3), 9, np.uint8)]
    out = analysis.take_images(images, [[1, 0]], size=6)
    assert out.shape == (1, 2, 6, 6, 3) and out[0, 0].min() == 9
    assert analysis.take_images(images, [1, 0]).shape == (2, 12, 12, 3)  # the first one's
    array = np.arange(4 * 2 * 2 * 3, dtype=np.uint8).reshape(4, 2, 2, 3)
    np.testing.assert_array_equal(analysis.take_images(array, [3, 1], size=6), array[[3, 1]])


def test_layer_outputs_and_kernels_reach_inside_the_saved_wrappers():
    model = build_alexnet("cifar", **SMALL)
    wrapped = inference_model(model, Preprocessing(
        class_names=("a", "b", "c"), image_size=16, input_size=16, stored_size=None,
        normalization=analysis.IDENTITY))
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32)
    direct = keras.Model(model.inputs[0], model.get_layer("fc7").output)(x)
    through = analysis.layer_outputs(wrapped, ["fc7"])(x)
    np.testing.assert_allclose(through, direct, rtol=1e-6)
    kernel, towers = analysis.conv1_kernels(wrapped)
    assert kernel.shape == (5, 5, 3, 8) and towers == 2
    assert analysis.conv1_kernels(build_alexnet("cifar", **SMALL, towers=False))[1] == 1
    with pytest.raises(ValueError, match="no layer named 'fc9'"):
        analysis.layer_outputs(wrapped, ["fc9"])


def test_lrn_effect_divisor_is_the_papers_formula():
    model = build_alexnet("cifar", **SMALL, towers=False)
    x = np.random.default_rng(1).normal(size=(1, 16, 16, 3)).astype(np.float32) * 40
    effect = analysis.lrn_effect(model, x)
    a = effect["before"]
    padded = np.pad(a ** 2, [(0, 0)] * 3 + [(2, 2)])
    window = sum(padded[..., i:i + a.shape[-1]] for i in range(5))
    expected = (2.0 + 1e-4 * window) ** 0.75
    mask = a != 0
    assert mask.mean() > 0.2
    np.testing.assert_allclose(effect["divisor"][mask], expected[mask], rtol=1e-4)
    np.testing.assert_allclose(effect["after"], a / expected, rtol=1e-4, atol=1e-6)


def test_time_forward_reports_speed():
    """A clock forced to advance 0.25 s between its readings (before and after the timed
    steps): two steps of a batch of 4 in 0.25 s."""
    ticks = iter([10.0, 10.25])
    speed = analysis.time_forward(build_alexnet("cifar", **SMALL), batch_size=4, steps=2,
                                  clock=lambda: next(ticks))
    assert speed["ms_per_batch"] == pytest.approx(125.0)
    assert speed["images_per_second"] == pytest.approx(32.0)
    assert speed["batch_size"] == 4
    with pytest.raises(ValueError, match="batch_size=0"):
        analysis.time_forward(build_alexnet("cifar", **SMALL), batch_size=0)


def test_most_confident_mistakes_and_neighbours():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 0, 1, 0])
    np.testing.assert_array_equal(analysis.most_confident_mistakes(probs, labels, 5), [1, 3, 2])
    np.testing.assert_array_equal(analysis.most_confident_mistakes(probs, labels, 1), [1])
    rng = np.random.default_rng(0)
    bank, queries = rng.normal(size=(50, 7)), rng.normal(size=(4, 7))
    expected = np.argsort(np.linalg.norm(queries[:, None] - bank[None], axis=2), axis=1)[:, :3]
    np.testing.assert_array_equal(analysis.nearest_neighbours(queries, bank, 3), expected)
    np.testing.assert_array_equal(analysis.nearest_neighbours(bank[:2], bank, 1), [[0], [1]])


def test_load_run_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        load_run(tmp_path)
    (tmp_path / "config.yaml").write_text("preset: cifar\n")
    with pytest.raises(FileNotFoundError, match="no checkpoints/best.keras"):
        load_run(tmp_path)


def test_the_grid_images_are_spread_over_the_classes():
    from alexnet_lib.analysis import spread_over_classes

    labels = np.repeat(np.arange(10), 100)  # a class-folder tree: stored class by class
    shown = spread_over_classes(labels, 12, seed=0)
    assert len(shown) == len(set(shown.tolist())) == 12
    assert labels[shown].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert np.array_equal(shown, spread_over_classes(labels, 12, seed=0))  # seeded
    assert not np.array_equal(shown, spread_over_classes(labels, 12, seed=1))
    assert len(spread_over_classes(labels[:3], 12)) == 3  # never more than there are


def test_metrics_summary_names_the_figures_and_how_they_were_measured():
    from alexnet_lib.analysis import metrics_summary

    text = metrics_summary({"test_top1": 0.85, "test_top5": 0.9926, "num_examples": 10000,
                            "checkpoint": "best", "views": "shift6",
                            "per_class": {"cat": 0.7, "dog": 0.78}})
    assert text.splitlines() == [
        "test top-1 0.8500   top-5 0.9926   (10000 images, checkpoint best, views: shift6)",
        "  cat          0.700", "  dog          0.780"]


def test_first_test_image_is_what_evaluation_feeds_the_model(tree):
    from alexnet_lib.analysis import first_test_image
    from alexnet_lib.data.datasets import make_datasets
    from alexnet_lib.model import get_preset

    preset = get_preset("cifar", image_size=16, num_classes=4)
    x, label = first_test_image(str(tree), preset)
    reference = make_datasets(str(tree), preset, batch_size=1, val_size=0)
    first, y = next(iter(reference.test()))
    assert x.shape == (1, 16, 16, 3) and label == reference.class_names[int(y[0])]
    np.testing.assert_array_equal(x, np.asarray(first))
