"""The JAX backend's pipelines over a :class:`~.datasets.Datasets`, without ``tf.data``:
each batch's rows are gathered on the host as uint8 at the stored size (the order of
:mod:`.order`, the same as TensorFlow's), and everything else -- normalization, resizing,
the random crops, flips and PCA colour jitter (:mod:`.augment_jax`, keyed by
``(seed, epoch * 1,000,003 + step)``), the test-time views (:mod:`.device_transforms`) --
runs on the device in functions compiled once per data set. JAX dispatches them without
waiting, so the host gathers the next batch while the device works.
"""

from __future__ import annotations

from .. import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

from typing import Iterator

import jax
import jax.numpy as jnp
import keras
import numpy as np

from .augment_jax import train_batch
from .device_transforms import eval_views as device_eval_views


def _compiled(datasets, key, build):
    """``datasets``' compiled function ``key``, built by ``build()`` once."""
    if key not in datasets.compiled:
        datasets.compiled[key] = jax.jit(build())
    return datasets.compiled[key]


def train_batches(datasets, epoch: int = 0, start_step: int = 0
                  ) -> Iterator[tuple[jax.Array, np.ndarray]]:
    """Epoch ``epoch``'s batches from step ``start_step`` on: ``(images, labels)``, the
    images augmented on the device."""
    rows_per_step = datasets.train_rows(epoch, start_step)
    flips = datasets.train_flips(epoch)
    norm, size, augment, seed = (datasets.normalization, datasets.input_size,
                                 datasets.augment, datasets.seed)

    def build():
        def transform(images, counter, flip):
            key = jax.random.fold_in(jax.random.key(seed), counter)
            return train_batch(images, norm, size, augment, key, flip)
        return transform

    transform = _compiled(datasets, ("train",), build)
    for step, rows in enumerate(rows_per_step, start_step):
        images, labels = datasets.gather("train", rows)
        flip = None if flips is None else jnp.asarray(flips[rows])
        counter = np.uint32((epoch * 1_000_003 + step) % 2 ** 32)
        yield transform(jnp.asarray(images), counter, flip), labels


def eval_batches(datasets, split: str, views: str = "center"
                 ) -> Iterator[tuple[jax.Array, np.ndarray]]:
    """One pass over ``split`` in stored order, no augmentation: ``(images, labels)``."""
    norm, size = datasets.normalization, datasets.input_size
    transform = _compiled(datasets, ("eval", views),
                          lambda: lambda images: device_eval_views(images, norm, size, views))
    for rows in datasets.eval_rows(split):
        images, labels = datasets.gather(split, rows)
        yield transform(jnp.asarray(images)), labels


def eval_views(images: np.ndarray, norm, image_size: int, views: str = "center") -> jax.Array:
    """A uint8 batch as evaluation sees it (see :func:`.device_transforms.eval_views`)."""
    return device_eval_views(jnp.asarray(images), norm, image_size, views)


def forward(model: keras.Model, reduce_retracing: bool = False):
    """``x -> model(x, training=False)``, compiled once per batch shape, reading the
    model's current weights at each call (``reduce_retracing``: TensorFlow's option, no
    use here)."""
    compiled = jax.jit(lambda trainable, non_trainable, x: model.stateless_call(
        trainable, non_trainable, x, training=False)[0])

    def run(x):
        return compiled([v.value for v in model.trainable_variables],
                        [v.value for v in model.non_trainable_variables], x)
    return run
