"""Per-batch transforms: normalization, the crop policies, augmentation and test-time views.

Everything here works on one batch (or one image) and holds no data set: training's
pipeline (:mod:`alexnet_lib.data.datasets`), evaluation, ``predict``, ``export`` and the
notebooks' analysis all transform images through these functions, so they agree exactly.

Three crop policies follow from the model's input size ``S`` (see :func:`crop_policy`):

* ``pad`` (``S <= 64``, e.g. the ``cifar`` preset at 32): images are resized to ``S`` if
  needed; training crops a random ``S x S`` window from the image reflect-padded by ``S/8``.
* ``crop`` (``S`` a little under the stored size, e.g. 24 from CIFAR's 32, as TensorFlow's
  classic CIFAR-10 model trained): a random ``S x S`` window of the stored image; evaluation
  takes the centre.
* ``scale`` (``S > 64``, the ``paper`` and ``upsampled`` presets at 227): images are resized to
  ``L = round(S * 256 / 227)`` (256 for 227), as the paper rescaled ImageNet to 256; training
  takes a random ``S x S`` crop, evaluation the centre crop.

In each, the 10-view test-time augmentation (``views="tta"``) takes the paper's four corner
and centre crops of the same canvas (the padded or rescaled image) and their mirror images;
``views="flip"`` takes the centre view and its mirror image; ``views="shift6"`` takes the
centre view and the views shifted one pixel up-left and one pixel down-right (reflecting at
the border), each with its mirror image: six views that stay within the translations
training with one-pixel pads has seen; ``views="shift10"`` takes the centre view and the
views shifted two pixels up, down, left and right, each with its mirror image: ten views
that reach as far as training with two-pixel pads does.

Random transforms are stateless, derived from a seed the caller passes per batch.
"""

from __future__ import annotations

from .. import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import tensorflow as tf

from .preprocessing import PCA_STD, SHIFTS, Augment, Normalization, check_views, crop_policy


def _seeds(seed: tf.Tensor, n: int) -> tf.Tensor:
    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=n)


def normalize_batch(images: tf.Tensor, norm: Normalization, *, pca_seed: tf.Tensor | None = None
                    ) -> tf.Tensor:
    """uint8 (or 0..255 float) ``B x H x W x 3`` → normalized float32, with the paper's PCA
    colour jitter when ``pca_seed`` is given."""
    x = tf.cast(images, tf.float32)
    offset = 0.0
    if pca_seed is not None:
        alpha = tf.random.stateless_normal([tf.shape(x)[0], 3], pca_seed, stddev=PCA_STD)
        eigvec = tf.constant(norm.eigvec, tf.float32)        # columns are the components
        eigval = tf.constant(norm.eigval, tf.float32)
        offset = tf.matmul(alpha * eigval, eigvec, transpose_b=True)[:, None, None, :]
    if norm.mode == "mean_image":
        mean_image = tf.constant(norm.mean_image, tf.float32)
        if mean_image.shape[:2] != x.shape[1:3]:
            mean_image = tf.image.resize(mean_image, tf.shape(x)[1:3])
        return x - mean_image + 255.0 * offset
    mean = tf.constant(norm.mean, tf.float32)
    std = tf.constant(norm.std, tf.float32)
    return (x / 255.0 + offset - mean) / std


def _crop(x: tf.Tensor, top: tf.Tensor, left: tf.Tensor, size: int) -> tf.Tensor:
    """Per-image crops of a batch: rows ``top[i]..top[i]+size``, same for columns."""
    rows = top[:, None] + tf.range(size)[None, :]
    cols = left[:, None] + tf.range(size)[None, :]
    x = tf.gather(x, rows, axis=1, batch_dims=1)
    return tf.gather(x, cols, axis=2, batch_dims=1)


def _canvas(x: tf.Tensor, image_size: int, padding: int = 0) -> tf.Tensor:
    """The image the crops are taken from: padded (small inputs, by ``padding`` pixels when
    given) or rescaled (large)."""
    policy, value = crop_policy(image_size, x.shape[1] if x.shape[1] == x.shape[2] else None)
    if policy == "crop":
        return x
    if policy == "pad":
        value = padding or value
        if x.shape[1] != image_size or x.shape[2] != image_size:
            x = tf.image.resize(x, (image_size, image_size))
        return tf.pad(x, [[0, 0], [value, value], [value, value], [0, 0]], mode="REFLECT")
    if x.shape[1] != value or x.shape[2] != value:
        x = tf.image.resize(x, (value, value))
    return x


def transform_batch(images: tf.Tensor, norm: Normalization, image_size: int, *,
                    augment: Augment | None = None, seed: tf.Tensor | None = None,
                    flip: tf.Tensor | None = None, views: str = "center") -> tf.Tensor:
    """Normalize, resize and crop a uint8 batch to ``image_size``.

    Args:
        images: uint8 ``B x H x W x 3``.
        norm: training-split statistics.
        image_size: the model's input size.
        augment: training augmentation (``None`` for evaluation); needs ``seed``.
        seed: int64 ``[2]`` seed of the stateless random ops.
        flip: bool ``[B]``: which images to mirror (default: drawn from ``seed``); needed
            for ``flip_mode="alternate"``.
        views: for evaluation, one of :data:`VIEWS`: ``"center"`` (one view), ``"flip"``
            (the centre view and its mirror image: ``B x 2 x S x S x 3``), ``"shift6"`` (those
            and the views shifted by one pixel up-left and down-right: ``B x 6 x S x S x 3``),
            ``"shift10"`` (the centre and the views shifted by two pixels up, down, left and
            right, each and its mirror image: ``B x 10 x S x S x 3``) or ``"tta"`` (the
            paper's 10 views: ``B x 10 x S x S x 3``).
    """
    check_views(views)
    crop_seed, flip_seed, pca_seed = (tf.unstack(_seeds(seed, 3)) if augment is not None
                                      else (None, None, None))
    if augment is not None and augment.flip and augment.flip_mode == "alternate" and (
            flip is None):
        raise ValueError("augment flip=alternate needs each image's flip: pass flip=... "
                         "(Datasets.train derives it from the image and the epoch).")
    x = normalize_batch(images, norm, pca_seed=pca_seed if augment and augment.pca else None)
    policy, _ = crop_policy(image_size, x.shape[1] if x.shape[1] == x.shape[2] else None)
    if augment is None or not augment.crop:
        if policy == "pad" and views != "tta":
            if x.shape[1] != image_size or x.shape[2] != image_size:
                x = tf.image.resize(x, (image_size, image_size))
            canvas = None
        else:
            canvas = _canvas(x, image_size)
        if views in SHIFTS:
            return _shifted_views(x if canvas is None else canvas, image_size, SHIFTS[views])
        if views == "tta":
            margin = canvas.shape[1] - image_size
            corners = [(0, 0), (0, margin), (margin, 0), (margin, margin),
                       (margin // 2, margin // 2)]
            crops = [canvas[:, top:top + image_size, left:left + image_size, :]
                     for top, left in corners]
            crops += [tf.reverse(c, axis=[2]) for c in crops]
            return tf.stack(crops, axis=1)
        if canvas is not None:
            offset = (canvas.shape[1] - image_size) // 2
            x = canvas[:, offset:offset + image_size, offset:offset + image_size, :]
        if views == "flip":
            return tf.stack([x, tf.reverse(x, axis=[2])], axis=1)
    else:
        canvas = _canvas(x, image_size, augment.padding)
        margin = canvas.shape[1] - image_size
        batch = tf.shape(canvas)[0]
        offsets = tf.random.stateless_uniform([2, batch], crop_seed, maxval=margin + 1,
                                              dtype=tf.int32)
        x = _crop(canvas, offsets[0], offsets[1], image_size)
    if augment is not None and augment.flip:
        if flip is None:
            flip = tf.random.stateless_uniform([tf.shape(x)[0]], flip_seed) < 0.5
        x = tf.where(tf.reshape(tf.cast(flip, tf.bool), [-1, 1, 1, 1]), tf.reverse(x, axis=[2]), x)
    return x


def _shifted_views(canvas: tf.Tensor, image_size: int, shifts) -> tf.Tensor:
    """The ``image_size`` windows of ``canvas`` at ``shifts`` (``(down, right)`` pixels) from
    its centre, each followed by its mirror image: ``B x 2*len(shifts) x S x S x 3``. Where
    the canvas leaves too little room around the centre, it is reflect-padded first."""
    reach = max(abs(d) for shift in shifts for d in shift)
    room = min(canvas.shape[1] - image_size, canvas.shape[2] - image_size) // 2
    if room < reach:
        pad = reach - room
        canvas = tf.pad(canvas, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    top, left = ((canvas.shape[1] - image_size) // 2, (canvas.shape[2] - image_size) // 2)
    crops = [canvas[:, top + dy:top + dy + image_size, left + dx:left + dx + image_size, :]
             for dy, dx in shifts]
    return tf.stack([v for c in crops for v in (c, tf.reverse(c, axis=[2]))], axis=1)
