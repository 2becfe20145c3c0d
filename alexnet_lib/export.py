"""A TensorFlow SavedModel for serving, from a ``.keras`` model this project saved.

``export_saved_model(checkpoint, out_dir)`` writes Keras 3's ``ExportArchive`` with two
endpoints that do everything ``predict`` does, so a server needs TensorFlow alone (no
``alexnet_lib``) to classify raw images:

* ``serve_bytes(images)``: a batch of encoded JPEG/PNG/GIF/BMP files (``tf.string`` ``[N]``);
* ``serve`` (also the ``serving_default`` signature): uint8 images ``[N, H, W, 3]`` of any
  one size.

Each image is resized (antialiased) to the size the training images were stored at, then
normalized, cropped and mirrored into the test-time views the model carries, and the views'
class probabilities are averaged. Both return ``probabilities`` (``[N, C]`` float32),
``classes`` (``[N]``, the most probable class's name) and ``class_names`` (``[C]``).
"""

from __future__ import annotations

from . import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import os
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from .data.transforms import check_views, transform_batch
from .files import move_into_place, temp_name
from .runs import load_model, model_info


def export_saved_model(checkpoint: str | os.PathLike, out_dir: str | os.PathLike,
                       views: str | None = None) -> Path:
    """Write the SavedModel of ``checkpoint`` (a ``.keras`` file or a run folder) to
    ``out_dir`` (through a temporary folder renamed into place; an existing ``out_dir`` is
    replaced only once the new one is complete).

    Args:
        views: the test-time views to average (default: those the model carries).

    Raises:
        FileNotFoundError, ValueError: for a missing or bad model, or bad ``views``.
    """
    model = load_model(checkpoint)
    prep = model_info(model, checkpoint)
    views = check_views(views or prep.eval_views)
    norm, input_size = prep.normalization, prep.input_size
    size = prep.stored_size[0] if prep.stored_size else input_size
    class_names = tf.constant(list(prep.class_names))
    num_classes = len(prep.class_names)

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

    def decode(data):
        # JPEGs with the accurate integer DCT, as Pillow (which predict uses) decodes them.
        image = tf.cond(
            tf.io.is_jpeg(data),
            lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
            lambda: tf.io.decode_image(data, channels=3, expand_animations=False))
        return tf.cast(to_stored(image[None])[0], tf.uint8)

    def serve_bytes(images):
        decoded = tf.map_fn(decode, images, fn_output_signature=tf.TensorSpec(
            [size, size, 3], tf.uint8))
        return classify(decoded)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", classify,
                         input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    archive.add_endpoint("serve_bytes", serve_bytes,
                         input_signature=[tf.TensorSpec([None], tf.string)])
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file: pass a folder path for the SavedModel.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(out_dir)
    try:
        archive.write_out(str(tmp), verbose=False)
        move_into_place(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
