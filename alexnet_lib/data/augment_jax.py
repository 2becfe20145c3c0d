"""Training's augmentation on the JAX backend, on the device: the random crops, flips
(random or alternate) and the paper's PCA colour jitter of
:func:`alexnet_lib.data.transforms.transform_batch`, keyed by a ``jax.random`` key (the
loop derives it from (seed, step)) instead of TensorFlow's stateless seeds. The geometry --
the canvas each crop policy builds, the windows a crop may take -- is the TensorFlow
pipeline's; the random draws are JAX's own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .device_transforms import normalize, views_of
from .preprocessing import PCA_STD, Augment, Normalization, crop_policy


def _canvas(x: jax.Array, image_size: int, padding: int) -> jax.Array:
    """The image the random crops are taken from (as ``transforms._canvas``)."""
    policy, value = crop_policy(image_size, x.shape[1] if x.shape[1] == x.shape[2] else None)
    if policy == "crop":
        return x
    if policy == "pad":
        value = padding or value
        if x.shape[1:3] != (image_size, image_size):
            x = jax.image.resize(x, (x.shape[0], image_size, image_size, 3), "bilinear")
        return jnp.pad(x, [(0, 0), (value, value), (value, value), (0, 0)], mode="reflect")
    if x.shape[1:3] != (value, value):
        x = jax.image.resize(x, (x.shape[0], value, value, 3), "bilinear")
    return x


def train_batch(images, norm: Normalization, image_size: int, augment: Augment,
                key: jax.Array, flip: jax.Array | None = None) -> jax.Array:
    """A uint8 ``B x H x W x 3`` batch normalized, cropped and augmented as ``augment``
    says: ``B x S x S x 3`` float32.

    Args:
        key: the batch's ``jax.random`` key.
        flip: bool ``[B]``, which images to mirror (needed for ``flip_mode="alternate"``;
            default: drawn from ``key``).
    """
    if augment.flip and augment.flip_mode == "alternate" and flip is None:
        raise ValueError("augment flip=alternate needs each image's flip: pass flip=...")
    crop_key, flip_key, pca_key = jax.random.split(key, 3)
    x = jnp.asarray(normalize(images, norm))
    if augment.pca:
        alpha = jax.random.normal(pca_key, (x.shape[0], 3)) * PCA_STD
        offset = (alpha * np.asarray(norm.eigval, np.float32)) @ np.asarray(norm.eigvec,
                                                                           np.float32).T
        scale = 255.0 if norm.mode == "mean_image" else 1.0 / np.asarray(norm.std, np.float32)
        x = x + (offset * scale)[:, None, None, :]
    if augment.crop:
        canvas = _canvas(x, image_size, augment.padding)
        margin = canvas.shape[1] - image_size
        corners = jax.random.randint(crop_key, (x.shape[0], 2), 0, margin + 1)
        x = jax.vmap(lambda image, at: jax.lax.dynamic_slice(
            image, (at[0], at[1], 0), (image_size, image_size, 3)))(canvas, corners)
    else:
        x = jnp.asarray(views_of(x, image_size, "center"))
    if augment.flip:
        if flip is None:
            flip = jax.random.uniform(flip_key, (x.shape[0],)) < 0.5
        x = jnp.where(jnp.reshape(flip, (-1, 1, 1, 1)), x[:, :, ::-1, :], x)
    return x
