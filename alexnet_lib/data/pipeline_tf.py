"""The TensorFlow backend's pipelines over a :class:`~.datasets.Datasets`: ``tf.data``
datasets whose ``map`` stage gathers each batch from the NumPy arrays, then transforms it
(:mod:`.transforms`), prefetched; and the compiled forward pass evaluation runs.
"""

from __future__ import annotations

from .. import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import keras
import numpy as np
import tensorflow as tf

from .transforms import transform_batch


def _indexed(datasets, split: str, index, fn) -> tf.data.Dataset:
    """``fn(step, uint8_batch, labels, rows)`` over batches of ``index`` rows of ``split``.

    Rows are gathered from the NumPy arrays themselves (no second copy of the data set as
    TensorFlow constants). Large batches (the upsampled presets) keep at most two in
    flight, so peak memory stays bounded.
    """
    steps = tf.data.Dataset.range(len(index))
    index_ds = tf.data.Dataset.from_tensor_slices(tf.ragged.constant(index).to_tensor(-1)
                                                  if isinstance(index, list) else index)
    ds = tf.data.Dataset.zip(steps, index_ds)
    shape = datasets.batch_shape(split)

    def load(rows):
        return datasets.gather(split, rows[rows >= 0])

    def gather(step, rows):
        x, y = tf.numpy_function(load, [rows], (tf.uint8, tf.int32), stateful=False)
        x.set_shape([None, *shape])
        y.set_shape([None])
        return fn(step, x, y, rows)
    batch_bytes = datasets.batch_size * datasets.input_size ** 2 * 3 * 4
    large = batch_bytes > 16 * 2 ** 20
    ds = ds.map(gather, num_parallel_calls=2, deterministic=True)
    # Fixed parallelism, autotuning off: an autotuned iterator's destructor waits for
    # tf.data's tuning thread, which sleeps for up to a minute between its rounds, so
    # dropping each epoch's iterator stalled training for 0-35 s (measured). Two batches
    # mapped at once keep the step fed (docs/benchmarks.md: the pipeline against training).
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(2 if large else 4).with_options(options)


def train_batches(datasets, epoch: int = 0, start_step: int = 0) -> tf.data.Dataset:
    """Epoch ``epoch``'s batches from step ``start_step`` on: ``(images, labels)``."""
    batches = datasets.train_rows(epoch, start_step)
    norm, size, augment, seed, first = (datasets.normalization, datasets.input_size,
                                        datasets.augment, datasets.seed, start_step)
    flips = datasets.train_flips(epoch)
    flips = None if flips is None else tf.constant(flips)

    def fn(step, x, y, rows):
        batch_seed = tf.stack([tf.constant(seed, tf.int64),
                               tf.constant(epoch, tf.int64) * 1_000_003 + step + first])
        flip = None if flips is None else tf.gather(flips, rows)
        return transform_batch(x, norm, size, augment=augment, seed=batch_seed, flip=flip), y
    return _indexed(datasets, "train", batches, fn)


def eval_batches(datasets, split: str, views: str = "center") -> tf.data.Dataset:
    """One pass over ``split`` in stored order, no augmentation: ``(images, labels)``."""
    batches = datasets.eval_rows(split)
    norm, size = datasets.normalization, datasets.input_size
    return _indexed(datasets, split, batches,
                    lambda step, x, y, rows: (transform_batch(x, norm, size, views=views), y))


def eval_views(images: np.ndarray, norm, image_size: int, views: str = "center"):
    """A uint8 batch as evaluation sees it (see :func:`.transforms.transform_batch`)."""
    return transform_batch(images, norm, image_size, views=views)


def forward(model: keras.Model, reduce_retracing: bool = False):
    """``x -> model(x, training=False)``, compiled (``reduce_retracing``: a batch of a new
    size traces once more, not per call)."""
    return tf.function(lambda x: model(x, training=False), reduce_retracing=reduce_retracing)
