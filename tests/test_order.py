"""alexnet_lib.data.order: an epoch's batches and flips from NumPy alone, the same rows the
tf.data pipeline trains on, so a pipeline without TensorFlow (JAX) sees the same epochs."""

import numpy as np

from alexnet_lib.data.datasets import make_datasets
from alexnet_lib.data.order import epoch_batches, epoch_flips, numpy_batches
from alexnet_lib.data.preprocessing import Augment
from alexnet_lib.model import get_preset


def test_numpy_batches_are_the_tf_pipelines_batches(tree):
    preset = get_preset("cifar", image_size=16, num_classes=4)
    data = make_datasets(str(tree), preset, batch_size=16, val_size=16, seed=3,
                         augment="flip=alternate")
    images, labels = data.splits["train"]
    for epoch, start in ((0, 0), (1, 2)):
        expected = [y.numpy().tolist() for _, y in data.train(epoch, start)]
        got = [y.tolist() for _, y, _ in numpy_batches(images, labels, 16, 3, epoch, start,
                                                       alternate=True)]
        assert got == expected and len(got) == data.steps_per_epoch - start
    rows = epoch_batches(len(labels), 16, 3, 0)
    assert rows.shape == (len(labels) // 16, 16) and len(set(rows.ravel())) == rows.size
    assert not np.array_equal(rows, epoch_batches(len(labels), 16, 3, 1))  # reshuffled
    first, second = epoch_flips(len(labels), 3, 0), epoch_flips(len(labels), 3, 1)
    assert np.array_equal(second, ~first) and 0.3 < first.mean() < 0.7
    # The pipeline mirrors exactly those images: its first batch against unflipped views.
    flipped = next(iter(data.train(0)))[0].numpy()
    plain = make_datasets(str(tree), preset, batch_size=16, val_size=16, seed=3,
                          augment=Augment(False, False, False))
    unflipped = next(iter(plain.train(0)))[0].numpy()
    for image, base, mirror in zip(flipped, unflipped, first[rows[0]]):
        np.testing.assert_array_equal(image, base[:, ::-1] if mirror else base)
