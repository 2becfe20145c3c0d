"""A TensorFlow SavedModel for serving, from a ``.keras`` model this project saved.

``export_saved_model(checkpoint, out_dir)`` writes Keras 3's ``ExportArchive`` with two
endpoints that do everything ``predict`` does, so a server needs TensorFlow alone (no
``alexnet_lib``) to classify raw images:

* ``serve_bytes(images)``: a batch of encoded JPEG/PNG/GIF/BMP files (``tf.string`` ``[N]``).
  Every item is answered: ``valid`` (``[N]`` bool) says which could be classified. An item
  that is not an image of those formats, is truncated or damaged, or declares more than
  :data:`~alexnet_lib.data.folders.MAX_IMAGE_PIXELS` pixels (read from its header, before
  anything is decoded) gets ``valid`` false, probabilities of zero and the class ``""``,
  and stops nothing else; an empty batch gives empty outputs. Transparent PNGs are
  composited on white, as ``predict`` does.
* ``serve`` (also the ``serving_default`` signature): uint8 images ``[N, H, W, 3]`` of any
  one size.

Each image is resized (antialiased) to the size the training images were stored at, then
normalized, cropped and mirrored into the test-time views the model carries, and the views'
class probabilities are averaged. Both return ``probabilities`` (``[N, C]`` float32),
``classes`` (``[N]``, the most probable class's name) and ``class_names`` (``[C]``);
``serve_bytes`` adds ``valid``.

The export folder carries :data:`EXPORT_MARKER`; exporting again to the same ``--out``
replaces a folder only when it holds that marker (a previous export) or is empty.
"""

from __future__ import annotations

from . import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import json
import os
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from .data.folders import MAX_IMAGE_PIXELS
from .data.preprocessing import check_views
from .data.transforms import transform_batch
from .files import (
    check_not_above,
    check_replaceable,
    check_writable,
    remove_debris,
    replace_folder,
    temp_name,
    write_atomic,
)
from .runs import load_model, model_info

# The file that marks a folder as an export of this project (and so replaceable by another).
EXPORT_MARKER = "alexnet_export.json"
EXPORT = "an export of this project"
_PNG = b"\x89PNG\r\n\x1a\n"


def _unsigned(data: tf.Tensor, pos: int, size: int, little: bool) -> tf.Tensor:
    """The unsigned integer of ``size`` bytes at ``pos`` of the string ``data`` (an error,
    which marks the item invalid, when the string is shorter)."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, pos, size), tf.uint8), tf.int64)
    weights = tf.constant([256 ** i for i in range(size)], tf.int64)
    return tf.reduce_sum(raw[:size] * (weights if little else tf.reverse(weights, [0])))


def _header_size(data: tf.Tensor) -> tf.Tensor:
    """``[height, width]`` an encoded image declares in its header, read without decoding
    it; an error for anything but a JPEG, PNG, GIF or BMP file."""
    def bmp():
        height = _unsigned(data, 22, 4, True)
        return tf.stack([tf.abs(tf.where(height >= 2 ** 31, height - 2 ** 32, height)),
                         _unsigned(data, 18, 4, True)])

    def unknown():
        with tf.control_dependencies([tf.debugging.Assert(
                False, ["not a JPEG, PNG, GIF or BMP file"])]):
            return tf.constant([0, 0], tf.int64)

    gif = tf.strings.substr(data, 0, 6)
    return tf.case([
        (tf.io.is_jpeg(data), lambda: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)),
        (tf.equal(tf.strings.substr(data, 0, 8), _PNG),
         lambda: tf.stack([_unsigned(data, 20, 4, False), _unsigned(data, 16, 4, False)])),
        (tf.logical_or(tf.equal(gif, b"GIF87a"), tf.equal(gif, b"GIF89a")),
         lambda: tf.stack([_unsigned(data, 8, 2, True), _unsigned(data, 6, 2, True)])),
        (tf.equal(tf.strings.substr(data, 0, 2), b"BM"), bmp),
    ], default=unknown)


def decode_checked(data: tf.Tensor) -> tf.Tensor:
    """One encoded image → uint8 RGB, as ``predict`` decodes it (JPEGs with the accurate
    integer DCT as Pillow; transparency composited on white), after its header was checked:
    an error (never an allocation) for an image of more than ``MAX_IMAGE_PIXELS`` pixels, or
    for anything that is not a whole image."""
    height_width = _header_size(data)
    pixels = height_width[0] * height_width[1]
    checks = [tf.debugging.assert_positive(pixels, message="no pixels"),
              tf.debugging.assert_less_equal(pixels, tf.constant(MAX_IMAGE_PIXELS, tf.int64),
                                             message="more pixels than the limit")]
    with tf.control_dependencies(checks):
        def png():
            rgba = tf.cast(tf.io.decode_png(data, channels=4), tf.float32)
            alpha = rgba[..., 3:]
            blended = (rgba[..., :3] * alpha + 255.0 * (255.0 - alpha)) / 255.0
            return tf.cast(tf.floor(blended + 0.5), tf.uint8)

        return tf.case([
            (tf.io.is_jpeg(data),
             lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")),
            (tf.equal(tf.strings.substr(data, 0, 8), _PNG), png),
        ], default=lambda: tf.io.decode_image(data, channels=3, expand_animations=False))


def export_saved_model(checkpoint: str | os.PathLike, out_dir: str | os.PathLike,
                       views: str | None = None) -> Path:
    """Write the SavedModel of ``checkpoint`` (a ``.keras`` file or a run folder) to
    ``out_dir``, through a temporary folder renamed into place. A folder already at
    ``out_dir`` is replaced (once the new one is complete) only when it is a previous export
    (it holds :data:`EXPORT_MARKER`) or empty.

    Args:
        views: the test-time views to average (default: those the model carries).

    Raises:
        FileNotFoundError, ValueError: for a missing or bad model, bad ``views``, or an
            ``out_dir`` that is not replaceable (a folder of someone else's, the working
            or home folder or one above it, the checkpoint's run folder or one above it).
        PermissionError: when ``out_dir``'s folder cannot be written.
    """
    out_dir = Path(out_dir)
    source = Path(checkpoint)
    run = source.parent.parent if source.parent.name == "checkpoints" else source
    check_not_above(out_dir, "--out", protected={
        source: "the checkpoint", run: "the checkpoint's run folder"})
    check_replaceable(out_dir, EXPORT_MARKER, what=EXPORT, option="--out")
    model = load_model(checkpoint)
    prep = model_info(model, checkpoint)
    views = check_views(views or prep.eval_views)
    norm, input_size = prep.normalization, prep.input_size
    size = prep.stored_size[0] if prep.stored_size else input_size
    class_names = tf.constant(list(prep.class_names))
    num_classes = len(prep.class_names)
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    check_writable(parent, "The folder of --out")

    def to_stored(images):
        """uint8 ``N x H x W x 3`` → uint8 ``N x size x size x 3`` (as ``resize_image``)."""
        resized = tf.image.resize(images, (size, size), antialias=True)
        resized = tf.clip_by_value(tf.round(resized), 0, 255)
        same = tf.logical_and(tf.shape(images)[1] == size, tf.shape(images)[2] == size)
        return tf.cond(same, lambda: tf.cast(images, tf.uint8),
                       lambda: tf.cast(resized, tf.uint8))

    def classify(images):
        x = transform_batch(tf.ensure_shape(to_stored(images), [None, size, size, 3]), norm,
                            input_size, views=views)
        if views == "center":
            probs = model(x, training=False)
        else:
            count = x.shape[1]
            flat = tf.reshape(x, [-1, input_size, input_size, 3])
            probs = tf.reduce_mean(tf.reshape(model(flat, training=False),
                                              [-1, count, num_classes]), 1)
        probs = tf.cast(probs, tf.float32)
        return {"probabilities": probs,
                "classes": tf.gather(class_names, tf.argmax(probs, -1)),
                "class_names": class_names}

    def serve_bytes(images):
        # Each item decoded on its own; one that fails any check or its decoder is dropped
        # (ignore_errors), and the survivors keep their index.
        count = tf.shape(images, out_type=tf.int64)[0]
        items = tf.data.Dataset.from_tensor_slices((tf.range(count), images))
        items = items.map(lambda i, data: (i, to_stored(decode_checked(data)[None])[0]),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        items = items.ignore_errors().batch(1 << 30)
        empty = (tf.zeros([0], tf.int64), tf.zeros([0, size, size, 3], tf.uint8))
        index, decoded = items.reduce(empty, lambda got, batch: (
            tf.concat([got[0], batch[0]], 0), tf.concat([got[1], batch[1]], 0)))
        # The model only sees a batch with images in it (none valid: no forward pass).
        probs = tf.cond(tf.size(index) > 0, lambda: classify(decoded)["probabilities"],
                        lambda: tf.zeros([0, num_classes], tf.float32))
        where = index[:, None]
        return {"probabilities": tf.scatter_nd(where, probs, tf.stack([count, num_classes])),
                "classes": tf.tensor_scatter_nd_update(
                    tf.fill([count], ""), where, tf.gather(class_names, tf.argmax(probs, -1))),
                "valid": tf.scatter_nd(where, tf.ones_like(index, tf.int32), [count]) > 0,
                "class_names": class_names}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", classify,
                         input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    archive.add_endpoint("serve_bytes", serve_bytes,
                         input_signature=[tf.TensorSpec([None], tf.string)])
    remove_debris(parent, [out_dir.name])  # what a killed export left
    tmp = temp_name(out_dir)
    try:
        archive.write_out(str(tmp), verbose=False)
        write_atomic(tmp / EXPORT_MARKER, json.dumps({
            "written_by": "alexnet_lib export", "checkpoint": str(checkpoint),
            "views": views, "class_names": list(prep.class_names)}, indent=1))
        replace_folder(tmp, out_dir, EXPORT_MARKER, what=EXPORT, option="--out")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
