"""``make_datasets``: train / validation / test ``tf.data`` pipelines that never pre-resize.

Images stay in memory as uint8 at their stored size (150 MB for CIFAR-10). Each batch is
gathered by index, then converted, normalized, resized to the model's input and augmented in a
parallel ``map`` stage, and prefetched; no resized copy of the data set ever exists.

Three crop policies follow from the preset's input size ``S`` (see :func:`crop_policy`):

* ``pad`` (``S <= 64``, e.g. the ``cifar`` preset at 32): images are resized to ``S`` if
  needed; training crops a random ``S x S`` window from the image reflect-padded by ``S/8``.
* ``crop`` (``S`` a little under the stored size, e.g. 24 from CIFAR's 32, as TensorFlow's
  classic CIFAR-10 model trained): a random ``S x S`` window of the stored image; evaluation
  takes the centre.
* ``scale`` (``S > 64``, the ``paper`` and ``seed`` presets at 227): images are resized to
  ``L = round(S * 256 / 227)`` (256 for 227), as the paper rescaled ImageNet to 256; training
  takes a random ``S x S`` crop, evaluation the centre crop.

In each, the 10-view test-time augmentation (``views="tta"``) takes the paper's four corner
and centre crops of the same canvas (the padded or rescaled image) and their mirror images;
``views="flip"`` takes the centre view and its mirror image.

Randomness is stateless, derived from ``(seed, epoch, step)``: an epoch's batches, crops,
flips and colour jitter are the same whenever they are produced, so a resumed run sees
exactly the data an uninterrupted one would have.
"""

from __future__ import annotations

from .. import quiet  # noqa: F401, I001  (first: hides TensorFlow's start-up lines)

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from ..model import Preset, get_preset
from ..paths import data_dir as default_data_dir
from .cifar10 import CIFAR10_CLASSES, load_cifar10
from .folders import load_class_folders

AUTOTUNE = tf.data.AUTOTUNE
NORMALIZATIONS = ("channel", "mean_image")
# Test-time views: the centre crop alone, it and its mirror image, or the paper's 10 patches
# (four corners and the centre, and their mirror images). CENTER_VIEW: where the centre crop
# sits among each set's views.
VIEWS = ("center", "flip", "tta")
CENTER_VIEW = {"center": 0, "flip": 0, "tta": 4}
PCA_STD = 0.1  # the paper's standard deviation of the colour-jitter coefficients


@dataclasses.dataclass(frozen=True)
class Augment:
    """Training augmentation switches (evaluation never augments).

    Attributes:
        crop: random crop (pad-and-crop for small inputs, the paper's crops for large ones).
        flip: random horizontal mirror.
        pca: the paper's PCA colour jitter (Section 4.1).
    """

    crop: bool = True
    flip: bool = True
    pca: bool = False

    @classmethod
    def from_value(cls, value: "Augment | dict | bool | str | None") -> "Augment":
        """``True``/``"all"``: every switch; ``False``/``None``/``"none"``: none; a dict,
        or a comma-separated string such as ``"crop,flip"``, names the switches that are on."""
        if isinstance(value, Augment):
            return value
        if value is True or value == "all":
            return cls(True, True, True)
        if value in (False, None, "none", ""):
            return cls(False, False, False)
        if isinstance(value, str):
            value = {name.strip(): True for name in value.split(",")}
        if isinstance(value, dict):
            names = {f.name for f in dataclasses.fields(cls)}
            unknown = set(value) - names
            if unknown:
                raise ValueError(f"Unknown augmentation {sorted(unknown)}: choose from "
                                 f"{sorted(names)}. Received: augment={value!r}")
            return cls(**{n: bool(value.get(n, False)) for n in names})
        raise ValueError(f"augment must be a bool, a dict or a string like 'crop,flip'. "
                         f"Received: augment={value!r}")


@dataclasses.dataclass(frozen=True)
class Normalization:
    """Statistics of the training split, reused by evaluation and inference.

    ``channel`` maps a pixel ``p`` (0..255) to ``(p / 255 - mean) / std`` per channel;
    ``mean_image`` is the paper's: ``p - mean_image`` on the 0..255 scale. ``eigval`` and
    ``eigvec`` are the principal components of RGB values (0..1 scale) for the colour jitter.
    """

    mode: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    eigval: tuple[float, float, float]
    eigvec: tuple[tuple[float, float, float], ...]
    mean_image: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in ("mode", "mean", "std", "eigval", "eigvec")}
        data = {k: np.asarray(v).tolist() if not isinstance(v, str) else v for k, v in data.items()}
        if self.mean_image is not None:
            data["mean_image"] = np.round(np.asarray(self.mean_image, np.float32), 4).tolist()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Normalization":
        """Statistics saved by :meth:`to_dict`, checked.

        Raises:
            ValueError: naming the bad entry (a missing field, a non-finite value, a
                standard deviation that is not positive: it would divide by zero).
        """
        if not isinstance(data, dict):
            raise ValueError(
                f"normalization statistics must be a mapping. Received: {data!r}"[:200])

        def vector(name, shape, positive=False):
            try:
                value = np.asarray(data[name], np.float64)
            except KeyError:
                raise ValueError(f"normalization statistics lack {name!r}") from None
            except (TypeError, ValueError):
                value = None
            if value is None or value.shape != shape or not np.isfinite(value).all() or (
                    positive and not (value > 0).all()):
                need = "positive finite numbers" if positive else "finite numbers"
                raise ValueError(f"normalization {name} must be {shape} {need}. Received: "
                                 f"{name}={data.get(name)!r}"[:300])
            return value

        mode = data.get("mode")
        if mode not in NORMALIZATIONS:
            raise ValueError(f"normalization mode must be one of {NORMALIZATIONS}. "
                             f"Received: mode={mode!r}")
        mean, std = vector("mean", (3,)), vector("std", (3,), positive=True)
        eigval, eigvec = vector("eigval", (3,)), vector("eigvec", (3, 3))
        mean_image = data.get("mean_image")
        if mean_image is not None or mode == "mean_image":
            mean_image = np.asarray(mean_image, np.float32) if mean_image is not None else None
            if mean_image is None or mean_image.ndim != 3 or mean_image.shape[-1] != 3 or (
                    not np.isfinite(mean_image).all()):
                raise ValueError("normalization mode 'mean_image' needs a finite H x W x 3 "
                                 "mean_image.")
        return cls(mode=mode, mean=tuple(mean.tolist()), std=tuple(std.tolist()),
                   eigval=tuple(eigval.tolist()), eigvec=tuple(tuple(r) for r in eigvec.tolist()),
                   mean_image=mean_image)


def compute_normalization(images: np.ndarray | list[np.ndarray], mode: str = "channel",
                          chunk: int = 4096) -> Normalization:
    """Per-channel mean/std, RGB principal components and (for ``mean_image``) the mean image
    of uint8 ``images`` (an ``N x H x W x 3`` array, or a list of ``H x W x 3`` arrays).

    Raises:
        ValueError: for an unknown ``mode``, or ``mean_image`` over images of several sizes.
    """
    if mode not in NORMALIZATIONS:
        raise ValueError(f"Unknown normalization {mode!r}: choose from {NORMALIZATIONS}.")
    total = np.zeros(3)
    outer = np.zeros((3, 3))
    count = 0
    image_sum = None
    pieces = (images[i:i + chunk] for i in range(0, len(images), chunk)) if isinstance(
        images, np.ndarray) else ([x] for x in images)
    for piece in pieces:
        pixels = np.concatenate([np.asarray(x, np.float64).reshape(-1, 3) for x in piece]) / 255.0
        total += pixels.sum(0)
        outer += pixels.T @ pixels
        count += len(pixels)
        if mode == "mean_image":
            if not isinstance(images, np.ndarray):
                raise ValueError("normalization='mean_image' needs images of one size; this "
                                 "source has several. Use normalization='channel'.")
            s = np.asarray(piece, np.float64).sum(0)
            image_sum = s if image_sum is None else image_sum + s
    mean = total / count
    cov = outer / count - np.outer(mean, mean)
    # A channel without variation is divided by one grey level, not by zero.
    std = np.maximum(np.sqrt(np.clip(np.diag(cov), 0, None)), 1 / 255)
    eigval, eigvec = np.linalg.eigh(cov)
    return Normalization(
        mode=mode, mean=tuple(mean.tolist()), std=tuple(std.tolist()),
        eigval=tuple(np.clip(eigval, 0, None).tolist()),
        eigvec=tuple(tuple(row) for row in eigvec.tolist()),
        mean_image=None if image_sum is None else (image_sum / len(images)).astype(np.float32),
    )


def crop_policy(image_size: int, stored_size: int | None = None) -> tuple[str, int]:
    """How crops of ``image_size`` are taken from images stored at ``stored_size``.

    ``("scale", canvas)`` for inputs over 64 pixels (rescale to ``canvas``, crop);
    ``("crop", stored_size)`` when the input is a little smaller than the stored image (up to
    1.5x, e.g. 24 from 32, as TensorFlow's classic CIFAR-10 model did): crop without
    resizing; else ``("pad", padding)``: resize to ``image_size``, reflect-pad, crop.
    """
    if image_size > 64:
        return "scale", int(round(image_size * 256 / 227))
    if stored_size is not None and image_size < stored_size <= round(image_size * 1.5):
        return "crop", int(stored_size)
    return "pad", max(1, round(image_size / 8))


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


def _canvas(x: tf.Tensor, image_size: int) -> tf.Tensor:
    """The image the crops are taken from: padded (small inputs) or rescaled (large)."""
    policy, value = crop_policy(image_size, x.shape[1] if x.shape[1] == x.shape[2] else None)
    if policy == "crop":
        return x
    if policy == "pad":
        if x.shape[1] != image_size or x.shape[2] != image_size:
            x = tf.image.resize(x, (image_size, image_size))
        return tf.pad(x, [[0, 0], [value, value], [value, value], [0, 0]], mode="REFLECT")
    if x.shape[1] != value or x.shape[2] != value:
        x = tf.image.resize(x, (value, value))
    return x


def check_views(views: str) -> str:
    """``views`` if it names a set of test-time views (:data:`VIEWS`), else one ``ValueError``."""
    if views not in VIEWS:
        raise ValueError(f"Unknown test-time views {views!r}: choose from {VIEWS}.")
    return views


def transform_batch(images: tf.Tensor, norm: Normalization, image_size: int, *,
                    augment: Augment | None = None, seed: tf.Tensor | None = None,
                    views: str = "center") -> tf.Tensor:
    """Normalize, resize and crop a uint8 batch to ``image_size``.

    Args:
        images: uint8 ``B x H x W x 3``.
        norm: training-split statistics.
        image_size: the model's input size.
        augment: training augmentation (``None`` for evaluation); needs ``seed``.
        seed: int64 ``[2]`` seed of the stateless random ops.
        views: for evaluation, one of :data:`VIEWS`: ``"center"`` (one view), ``"flip"``
            (the centre view and its mirror image: ``B x 2 x S x S x 3``) or ``"tta"`` (the
            paper's 10 views: ``B x 10 x S x S x 3``).
    """
    check_views(views)
    crop_seed, flip_seed, pca_seed = (tf.unstack(_seeds(seed, 3)) if augment is not None
                                      else (None, None, None))
    x = normalize_batch(images, norm, pca_seed=pca_seed if augment and augment.pca else None)
    policy, _ = crop_policy(image_size, x.shape[1] if x.shape[1] == x.shape[2] else None)
    if augment is None or not augment.crop:
        if policy == "pad" and views != "tta":
            if x.shape[1] != image_size or x.shape[2] != image_size:
                x = tf.image.resize(x, (image_size, image_size))
            canvas = None
        else:
            canvas = _canvas(x, image_size)
        if views == "tta":
            margin = canvas.shape[1] - image_size
            corners = [(0, 0), (0, margin), (margin, 0), (margin, margin), (margin // 2, margin // 2)]
            crops = [canvas[:, t:t + image_size, l:l + image_size, :] for t, l in corners]
            crops += [tf.reverse(c, axis=[2]) for c in crops]
            return tf.stack(crops, axis=1)
        if canvas is not None:
            offset = (canvas.shape[1] - image_size) // 2
            x = canvas[:, offset:offset + image_size, offset:offset + image_size, :]
        if views == "flip":
            return tf.stack([x, tf.reverse(x, axis=[2])], axis=1)
    else:
        canvas = _canvas(x, image_size)
        margin = canvas.shape[1] - image_size
        batch = tf.shape(canvas)[0]
        offsets = tf.random.stateless_uniform([2, batch], crop_seed, maxval=margin + 1, dtype=tf.int32)
        x = _crop(canvas, offsets[0], offsets[1], image_size)
    if augment is not None and augment.flip:
        flip = tf.random.stateless_uniform([tf.shape(x)[0], 1, 1, 1], flip_seed) < 0.5
        x = tf.where(flip, tf.reverse(x, axis=[2]), x)
    return x


def _subset(n: int, k: int | None, rng: np.random.Generator, what: str) -> np.ndarray:
    order = rng.permutation(n)
    if k is None:
        return np.sort(order)
    if not 0 < k <= n:
        raise ValueError(f"{what}={k} is out of range: the split has {n} images; pass 1..{n} "
                         f"or None for all of them.")
    return np.sort(order[:k])


def _take(images, labels, index):
    if isinstance(images, np.ndarray):
        return images[index], labels[index]
    return [images[i] for i in index], labels[index]


@dataclasses.dataclass
class Datasets:
    """What :func:`make_datasets` returns: the splits in memory and the pipelines over them.

    ``train(epoch, start_step)`` builds one epoch (``steps_per_epoch`` full batches, the same
    batches whenever it is built); ``val()``/``test()`` iterate a split once without
    augmentation (``views="flip"`` adds each image's mirror, ``views="tta"`` gives the 10
    views). ``input_size`` is what the pipelines
    yield: the preset's ``image_size``, or the stored size when ``resize_in_model`` leaves the
    upsampling to the model's first layer.
    """

    source: str
    class_names: tuple[str, ...]
    image_size: int
    input_size: int
    normalization: Normalization
    augment: Augment
    batch_size: int
    seed: int
    splits: dict[str, tuple[Any, np.ndarray]]
    stored_size: tuple[int, int] | None
    skipped: list[Path] = dataclasses.field(default_factory=list)
    eval_batch_size: int | None = None
    fingerprint: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def size(self, split: str) -> int:
        return len(self.splits[split][1]) if split in self.splits else 0

    @property
    def steps_per_epoch(self) -> int:
        return self.size("train") // self.batch_size

    def preprocessing(self) -> dict[str, Any]:
        """What inference needs to reproduce evaluation's preprocessing."""
        return {"class_names": list(self.class_names), "image_size": self.image_size,
                "input_size": self.input_size, "stored_size": list(self.stored_size or ()),
                "normalization": self.normalization.to_dict()}

    def _indexed(self, split: str, index: np.ndarray, fn, deterministic=True) -> tf.data.Dataset:
        """``fn(step, uint8_batch, labels)`` over batches of ``index`` rows of ``split``.

        Rows are gathered from the NumPy arrays themselves (no second copy of the data set
        as TensorFlow constants). Large batches (the upsampled presets) keep at most two in
        flight, so peak memory stays bounded; small ones let tf.data tune parallelism.
        """
        steps = tf.data.Dataset.range(len(index))
        index_ds = tf.data.Dataset.from_tensor_slices(tf.ragged.constant(index).to_tensor(-1)
                                                      if isinstance(index, list) else index)
        ds = tf.data.Dataset.zip(steps, index_ds)
        images, labels_np = self.splits[split]
        if isinstance(images, np.ndarray):
            shape = images.shape[1:]

            def load(rows):
                rows = rows[rows >= 0]
                return images[rows], labels_np[rows].astype(np.int32)
        else:
            # Images of several sizes: bring each to the canvas size first.
            size = self.canvas_size()
            shape = (size, size, 3)

            def load(rows):
                rows = rows[rows >= 0]
                return (np.stack([resize_image(images[i], size) for i in rows]),
                        labels_np[rows].astype(np.int32))

        def gather(step, rows):
            x, y = tf.numpy_function(load, [rows], (tf.uint8, tf.int32), stateful=False)
            x.set_shape([None, *shape])
            y.set_shape([None])
            return fn(step, x, y)
        batch_bytes = self.batch_size * self.input_size ** 2 * 3 * 4
        large = batch_bytes > 16 * 2 ** 20
        ds = ds.map(gather, num_parallel_calls=2 if large else AUTOTUNE, deterministic=deterministic)
        return ds.prefetch(2 if large else AUTOTUNE)

    def canvas_size(self) -> int:
        """The common size images of several sizes are brought to before cropping."""
        policy, value = crop_policy(self.input_size)
        return self.input_size if policy == "pad" else value

    def train(self, epoch: int = 0, start_step: int = 0) -> tf.data.Dataset:
        """Epoch ``epoch``'s batches from step ``start_step`` on: ``(images, labels)``."""
        n, b = self.size("train"), self.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"The training split has {n} images, fewer than one batch of "
                             f"{b}: lower batch_size or use more training images.")
        order = np.random.default_rng([self.seed, 1, epoch]).permutation(n)
        batches = order[: self.steps_per_epoch * b].reshape(-1, b)[start_step:]
        norm, size, augment, seed, first = (self.normalization, self.input_size, self.augment,
                                            self.seed, start_step)

        def fn(step, x, y):
            batch_seed = tf.stack([tf.constant(seed, tf.int64),
                                   tf.constant(epoch, tf.int64) * 1_000_003 + step + first])
            return transform_batch(x, norm, size, augment=augment, seed=batch_seed), y
        return self._indexed("train", batches, fn)

    def evaluation(self, split: str, views: str = "center") -> tf.data.Dataset:
        """One pass over ``split`` in stored order, no augmentation."""
        if split not in self.splits:
            raise ValueError(f"This data source has no {split!r} split (it has "
                             f"{sorted(self.splits)}).")
        n, b = self.size(split), self.eval_batch_size or self.batch_size
        batches = [np.arange(i, min(i + b, n)) for i in range(0, n, b)]
        norm, size = self.normalization, self.input_size
        return self._indexed(split, batches,
                             lambda step, x, y: (transform_batch(x, norm, size, views=views), y))

    def val(self) -> tf.data.Dataset | None:
        return self.evaluation("val") if self.size("val") else None

    def test(self, views: str = "center") -> tf.data.Dataset:
        return self.evaluation("test", views)


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """A uint8 ``H x W x 3`` image resized (antialiased) to ``size x size`` uint8."""
    if image.shape[:2] == (size, size):
        return image
    resized = tf.image.resize(image, (size, size), antialias=True)
    return np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8)


def resolve_source(source: str | os.PathLike) -> str:
    """``"cifar10"`` as it is; a path made absolute (``~`` expanded), so that a run folder
    records the data it was trained on whatever the working directory is later."""
    text = str(source)
    return text if text == "cifar10" else os.path.abspath(os.path.expanduser(text))


def data_fingerprint(splits: dict, class_names) -> str:
    """A digest of the class names and of every image and label of every split: equal for
    two copies of the same data wherever they are, different when any image differs."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(repr(tuple(class_names)).encode())
    for split in sorted(splits):
        images, labels = splits[split]
        digest.update(f"|{split}|{len(labels)}|".encode())
        digest.update(np.ascontiguousarray(labels, np.int64).tobytes())
        for block in ([images] if isinstance(images, np.ndarray) else images):
            digest.update(repr(block.shape).encode())
            digest.update(np.ascontiguousarray(block).data)
    return digest.hexdigest()


def load_source(source: str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
                skip_corrupt: bool = False) -> tuple[dict, tuple[str, ...], list[Path]]:
    """``({split: (images, labels)}, class_names, skipped)`` for any supported source.

    ``source`` is ``"cifar10"`` (download or cache), an official CIFAR-10 archive, its
    extracted folder, or a class-folder tree.
    """
    text = str(source)
    path = Path(text).expanduser()
    if text != "cifar10" and not path.exists():
        raise FileNotFoundError(
            f"Data source {text!r} does not exist. Use 'cifar10' (download to the data folder), "
            f"the path of the CIFAR-10 archive or its extracted folder, or a class-folder tree "
            f"such as ../shared/datasets/cifar10-jpeg.")
    is_cifar = text == "cifar10" or path.is_file() or any(
        (p / "test_batch.bin").exists() or (p / "test_batch").exists()
        for p in [path, *path.glob("cifar-10-batches-*")])
    if is_cifar:
        splits = load_cifar10(source, data_dir_override=data_dir)
        return ({k: (x, y.astype(np.int32)) for k, (x, y) in splits.items()},
                CIFAR10_CLASSES, [])
    folders = load_class_folders(path, skip_corrupt=skip_corrupt,
                                 cache_dir=default_data_dir(data_dir) / "cache")
    return folders.splits, folders.class_names, folders.skipped


def make_datasets(source: str | os.PathLike = "cifar10", preset: str | Preset = "cifar", *,
                  batch_size: int = 128, eval_batch_size: int | None = None,
                  val_size: int = 5000, train_subset: int | None = None,
                  test_subset: int | None = None, augment: Augment | dict | bool | str = "crop,flip",
                  normalization: str | Normalization = "channel", seed: int = 0,
                  resize_in_model: bool = False, data_dir: str | os.PathLike | None = None,
                  skip_corrupt: bool = False, loaded: tuple | None = None,
                  fingerprint: str | None = None) -> Datasets:
    """Train / validation / test pipelines for ``preset`` over ``source``.

    Args:
        source: ``"cifar10"``, a CIFAR-10 archive or folder, or a class-folder tree.
        preset: a preset name or :class:`Preset`; gives the input size.
        batch_size: training batch size (every training batch is full).
        eval_batch_size: batch size of evaluation passes (default ``batch_size``).
        val_size: images carved from the training split for validation, chosen by ``seed``
            (0 for none). A source with its own ``val`` split uses that instead.
        train_subset: use only this many training images (after carving validation).
        test_subset: use only this many test images.
        augment: training augmentation, see :meth:`Augment.from_value`.
        normalization: ``"channel"``, ``"mean_image"``, or statistics stored by an earlier run
            (so a resumed run or an evaluation normalizes exactly as training did).
        seed: seeds the validation split, subsets, shuffling and augmentation.
        resize_in_model: yield images at their stored size and leave resizing to the model
            (see :func:`alexnet_lib.train.input_model`); only for sources of one image size.
        data_dir: download cache (default ``$ALEXNET_DATA_DIR`` or ``data/``).
        skip_corrupt: skip unreadable files of a class-folder tree instead of failing.
        loaded: ``load_source``'s result, to reuse data already in memory.
        fingerprint: ``data_fingerprint`` of ``loaded``, when the caller computed it.

    Raises:
        ValueError: naming the bad argument and its valid range.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    for name, value in (("batch_size", batch_size), ("val_size", val_size)):
        if not isinstance(value, (int, np.integer)) or value < (1 if name == "batch_size" else 0):
            raise ValueError(f"{name} must be a {'positive' if name == 'batch_size' else 'non-negative'}"
                             f" integer. Received: {name}={value!r}")
    augment = Augment.from_value(augment)
    splits, class_names, skipped = loaded or load_source(source, data_dir=data_dir,
                                                         skip_corrupt=skip_corrupt)
    if "test" not in splits:
        raise ValueError(f"{source} has no test split: expected <root>/test/<class>/<image> "
                         f"beside <root>/train/.")
    if len(class_names) != preset.num_classes:
        raise ValueError(f"{source} has {len(class_names)} classes but the preset expects "
                         f"{preset.num_classes}: pass num_classes={len(class_names)}.")
    rng = np.random.default_rng([seed, 0])
    train_x, train_y = splits["train"]
    result: dict[str, tuple] = {}
    if "val" in splits:
        result["val"] = splits["val"]
        remaining = np.arange(len(train_y))
    else:
        if val_size >= len(train_y):
            raise ValueError(f"val_size={val_size} leaves no training images (the training "
                             f"split has {len(train_y)}). Pass a smaller val_size.")
        order = rng.permutation(len(train_y))
        result["val"] = _take(train_x, train_y, np.sort(order[:val_size]))
        remaining = np.sort(order[val_size:])
    keep = remaining[_subset(len(remaining), train_subset, rng, "train_subset")]
    result["train"] = _take(train_x, train_y, keep)
    test_x, test_y = splits["test"]
    result["test"] = _take(test_x, test_y, _subset(len(test_y), test_subset, rng, "test_subset"))
    if not result["val"][1].size:
        del result["val"]

    first = result["train"][0]
    shapes = {x.shape[:2] for x in first} if not isinstance(first, np.ndarray) else {first.shape[1:3]}
    stored_size = next(iter(shapes)) if len(shapes) == 1 else None
    if resize_in_model and (stored_size is None or stored_size[0] != stored_size[1]):
        raise ValueError("resize_in_model=True needs square images of one size; this source has "
                         f"{sorted(shapes)[:3]}. Use resize_in_model=False.")
    if isinstance(normalization, str):
        normalization = compute_normalization(result["train"][0], normalization)
    input_size = stored_size[0] if resize_in_model else preset.image_size
    return Datasets(source=str(source), class_names=tuple(class_names), image_size=preset.image_size,
                    input_size=input_size, normalization=normalization, augment=augment,
                    batch_size=int(batch_size), seed=int(seed), splits=result,
                    stored_size=stored_size, skipped=list(skipped), eval_batch_size=eval_batch_size,
                    fingerprint=fingerprint or data_fingerprint(splits, class_names))
