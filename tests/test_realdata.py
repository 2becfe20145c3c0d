"""Real data: the CIFAR-10 JPEG class-folder copy in ../shared/datasets (skipped where absent)."""

import numpy as np
import pytest

from alexnet_lib.data import CIFAR10_CLASSES
from alexnet_lib.data.datasets import make_datasets
from alexnet_lib.data.sources import load_source
from alexnet_lib.paths import shared_cifar10_jpeg

ROOT = shared_cifar10_jpeg()
pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not (ROOT / "train").is_dir(),
                       reason=f"the CIFAR-10 JPEG copy is not at {ROOT}"),
]


@pytest.fixture(scope="module")
def loaded():
    return load_source(ROOT)


def test_counts_and_official_class_order(loaded):
    splits, classes, skipped = loaded
    assert classes == CIFAR10_CLASSES and skipped == []
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    assert x_train.shape == (50000, 32, 32, 3) and x_test.shape == (10000, 32, 32, 3)
    assert x_train.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y_train), [5000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [1000] * 10)


def test_channel_means_match_cifar10(loaded):
    ds = make_datasets(ROOT, "cifar", loaded=loaded, val_size=0)
    np.testing.assert_allclose(ds.normalization.mean, (0.4914, 0.4822, 0.4465), atol=0.003)
    np.testing.assert_allclose(ds.normalization.std, (0.247, 0.243, 0.261), atol=0.005)


def test_pipeline_over_the_real_split(loaded):
    ds = make_datasets(ROOT, "cifar", loaded=loaded, val_size=5000, batch_size=256, seed=0)
    assert (ds.size("train"), ds.size("val"), ds.size("test")) == (45000, 5000, 10000)
    # The seeded validation split is roughly class-balanced.
    counts = np.bincount(ds.splits["val"][1], minlength=10)
    assert counts.min() > 400 and counts.max() < 600
    x, y = next(iter(ds.train(0)))
    assert x.shape == (256, 32, 32, 3) and abs(float(np.mean(x))) < 0.2
