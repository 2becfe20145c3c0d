"""The evaluation transforms in Keras operations: normalization, resizing and the test-time
views of :func:`alexnet_lib.data.transforms.transform_batch` (``augment=None``), for
backends without ``tf.data`` (JAX), where they run on the device on uint8 batches at their
stored size.

The geometry is the TensorFlow pipeline's, crop policy by crop policy (``pad``, ``crop``,
``scale``): the same windows of the same canvas, so the outputs agree within float32
rounding (tested against :mod:`.transforms` on both backends).
"""

from __future__ import annotations

import keras
import numpy as np

from .preprocessing import SHIFTS, Normalization, check_views, crop_policy


def normalize(images, norm: Normalization):
    """uint8 (or 0..255 float) ``B x H x W x 3`` → normalized float32."""
    x = keras.ops.cast(images, "float32")
    if norm.mode == "mean_image":
        mean_image = np.asarray(norm.mean_image, np.float32)
        if mean_image.shape[:2] != tuple(x.shape[1:3]):
            mean_image = keras.ops.image.resize(mean_image, tuple(x.shape[1:3]))
        return x - mean_image
    mean = np.asarray(norm.mean, np.float32)
    std = np.asarray(norm.std, np.float32)
    return (x / 255.0 - mean) / std


def _resize(x, size: int):
    return x if tuple(x.shape[1:3]) == (size, size) else keras.ops.image.resize(x, (size, size))


def _window(x, top: int, left: int, size: int):
    return x[:, top:top + size, left:left + size, :]


def _mirrored(crops) -> list:
    return [v for c in crops for v in (c, keras.ops.flip(c, axis=2))]


def eval_views(images, norm: Normalization, image_size: int, views: str = "center"):
    """``transform_batch(images, norm, image_size, views=views)`` without augmentation:
    ``B x S x S x 3`` for ``center``, else ``B x V x S x S x 3``."""
    check_views(views)
    return views_of(normalize(images, norm), image_size, views)


def views_of(x, image_size: int, views: str = "center"):
    """The test-time ``views`` of an already normalized batch (see :func:`eval_views`)."""
    square = x.shape[1] if x.shape[1] == x.shape[2] else None
    policy, value = crop_policy(image_size, square)
    if policy == "pad" and views != "tta":
        canvas = _resize(x, image_size)
    elif policy == "pad":
        canvas = keras.ops.pad(_resize(x, image_size),
                               [[0, 0], [value, value], [value, value], [0, 0]], mode="reflect")
    elif policy == "scale":
        canvas = _resize(x, value)
    else:
        canvas = x
    if views in SHIFTS:
        shifts = SHIFTS[views]
        reach = max(abs(d) for shift in shifts for d in shift)
        room = min(canvas.shape[1] - image_size, canvas.shape[2] - image_size) // 2
        if room < reach:
            pad = reach - room
            canvas = keras.ops.pad(canvas, [[0, 0], [pad, pad], [pad, pad], [0, 0]],
                                   mode="reflect")
        top, left = (canvas.shape[1] - image_size) // 2, (canvas.shape[2] - image_size) // 2
        crops = [_window(canvas, top + dy, left + dx, image_size) for dy, dx in shifts]
        return keras.ops.stack(_mirrored(crops), axis=1)
    if views == "tta":
        margin = canvas.shape[1] - image_size
        corners = [(0, 0), (0, margin), (margin, 0), (margin, margin), (margin // 2, margin // 2)]
        crops = [_window(canvas, top, left, image_size) for top, left in corners]
        return keras.ops.stack(crops + [keras.ops.flip(c, axis=2) for c in crops], axis=1)
    offset = (canvas.shape[1] - image_size) // 2
    x = _window(canvas, offset, offset, image_size)
    return keras.ops.stack([x, keras.ops.flip(x, axis=2)], axis=1) if views == "flip" else x
