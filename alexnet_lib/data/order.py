"""The order of a training epoch, without TensorFlow: which rows form each batch and which
images are mirrored, keyed by (seed, epoch), so that every backend's pipeline (``tf.data``
in :mod:`.datasets`, :func:`numpy_batches` for JAX) and a resumed run see the same batches.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int,
                  start_step: int = 0) -> np.ndarray:
    """The rows of each full batch of epoch ``epoch`` (``steps x batch_size``), from step
    ``start_step`` on; the images left over by the last full batch sit the epoch out."""
    order = np.random.default_rng([seed, 1, epoch]).permutation(n)
    steps = n // batch_size
    return order[: steps * batch_size].reshape(-1, batch_size)[start_step:]


def epoch_flips(n: int, seed: int, epoch: int) -> np.ndarray:
    """``flip=alternate``: which of the ``n`` images are mirrored in epoch ``epoch`` -- each
    image's orientation in the first epoch is drawn once from the seed, and every later
    epoch mirrors it again."""
    return (np.random.default_rng([seed, 2]).random(n) < 0.5) ^ bool(epoch % 2)


def numpy_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
                  epoch: int, start_step: int = 0, alternate: bool = False
                  ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Epoch ``epoch``'s batches as uint8 images at their stored size, int32 labels and (for
    alternate flips) each image's flip: what a device-side pipeline transforms."""
    flips = epoch_flips(len(labels), seed, epoch) if alternate else None
    for rows in epoch_batches(len(labels), batch_size, seed, epoch, start_step):
        yield (images[rows], labels[rows].astype(np.int32),
               None if flips is None else flips[rows])
