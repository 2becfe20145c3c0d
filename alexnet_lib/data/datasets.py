"""``make_datasets``: the train / validation / test splits in memory, and the backend's
pipelines over them, which never pre-resize.

Images stay in memory as uint8 at their stored size (150 MB for CIFAR-10). Each batch is
gathered by index (:meth:`Datasets.gather`), then converted, normalized, resized to the
model's input and augmented by the backend's pipeline: a parallel ``tf.data`` ``map`` stage
on TensorFlow (:mod:`.pipeline_tf`), compiled functions on the device on JAX
(:mod:`.pipeline_jax`); no resized copy of the data set ever exists.

Randomness is derived from ``(seed, epoch, step)``: an epoch's batches, crops, flips and
colour jitter are the same whenever they are produced, so a resumed run sees exactly the
data an uninterrupted one would have.
"""

from __future__ import annotations

from .. import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import backend_module
from ..checks import check_int
from ..model import Preset, get_preset
from .order import epoch_batches, epoch_flips
from .preprocessing import (
    Augment,
    Normalization,
    Preprocessing,
    compute_normalization,
    crop_policy,
    resize_image,
)
from .sources import data_fingerprint, load_source

# Each backend's pipelines over a Datasets' splits.
PIPELINES = {"tensorflow": ".pipeline_tf", "jax": ".pipeline_jax"}


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
    # The backend's compiled transforms of these splits, built once (see .pipeline_jax).
    compiled: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def size(self, split: str) -> int:
        return len(self.splits[split][1]) if split in self.splits else 0

    @property
    def steps_per_epoch(self) -> int:
        return self.size("train") // self.batch_size

    def preprocessing(self, eval_views: str = "center") -> Preprocessing:
        """What inference needs to reproduce evaluation's preprocessing."""
        return Preprocessing(class_names=self.class_names, image_size=self.image_size,
                             input_size=self.input_size, stored_size=self.stored_size,
                             normalization=self.normalization, eval_views=eval_views)

    @property
    def pipeline(self):
        """The backend's pipelines over these splits (:mod:`.pipeline_tf` on TensorFlow,
        :mod:`.pipeline_jax` on JAX)."""
        return backend_module(PIPELINES, __package__)

    def gather(self, split: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``rows`` of ``split`` as a uint8 batch at the stored size (images of several
        sizes brought to :meth:`canvas_size` first) and int32 labels."""
        images, labels = self.splits[split]
        if isinstance(images, np.ndarray):
            return images[rows], labels[rows].astype(np.int32)
        size = self.canvas_size()
        return (np.stack([resize_image(images[i], size) for i in rows]),
                labels[rows].astype(np.int32))

    def batch_shape(self, split: str) -> tuple[int, int, int]:
        """The shape of one image of :meth:`gather`'s batches."""
        images = self.splits[split][0]
        if isinstance(images, np.ndarray):
            return tuple(images.shape[1:])
        size = self.canvas_size()
        return (size, size, 3)

    def canvas_size(self) -> int:
        """The common size images of several sizes are brought to before cropping."""
        policy, value = crop_policy(self.input_size)
        return self.input_size if policy == "pad" else value

    def train_rows(self, epoch: int = 0, start_step: int = 0) -> np.ndarray:
        """The rows of each batch of epoch ``epoch`` from step ``start_step`` on."""
        n, b = self.size("train"), self.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"The training split has {n} images, fewer than one batch of "
                             f"{b}: lower batch_size or use more training images.")
        return epoch_batches(n, b, self.seed, epoch, start_step)

    def train_flips(self, epoch: int) -> np.ndarray | None:
        """``flip=alternate``: which training images epoch ``epoch`` mirrors (else None)."""
        if self.augment.flip and self.augment.flip_mode == "alternate":
            return epoch_flips(self.size("train"), self.seed, epoch)
        return None

    def eval_rows(self, split: str) -> list[np.ndarray]:
        """The rows of each batch of one pass over ``split`` in stored order."""
        if split not in self.splits:
            raise ValueError(f"This data source has no {split!r} split (it has "
                             f"{sorted(self.splits)}).")
        n, b = self.size(split), self.eval_batch_size or self.batch_size
        return [np.arange(i, min(i + b, n)) for i in range(0, n, b)]

    def train(self, epoch: int = 0, start_step: int = 0):
        """Epoch ``epoch``'s batches from step ``start_step`` on: ``(images, labels)``,
        transformed by the backend's pipeline (a ``tf.data.Dataset`` on TensorFlow)."""
        return self.pipeline.train_batches(self, epoch, start_step)

    def evaluation(self, split: str, views: str = "center"):
        """One pass over ``split`` in stored order, no augmentation."""
        return self.pipeline.eval_batches(self, split, views)

    def val(self):
        return self.evaluation("val") if self.size("val") else None

    def test(self, views: str = "center"):
        return self.evaluation("test", views)


def make_datasets(source: str | os.PathLike = "cifar10", preset: str | Preset = "cifar", *,
                  batch_size: int = 128, eval_batch_size: int | None = None,
                  val_size: int = 5000, train_subset: int | None = None,
                  test_subset: int | None = None,
                  augment: Augment | dict | bool | str = "crop,flip",
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
    batch_size = check_int("batch_size", batch_size, 1)
    val_size = check_int("val_size", val_size, 0)
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
    shapes = ({x.shape[:2] for x in first} if not isinstance(first, np.ndarray)
              else {first.shape[1:3]})
    stored_size = next(iter(shapes)) if len(shapes) == 1 else None
    if resize_in_model and (stored_size is None or stored_size[0] != stored_size[1]):
        raise ValueError("resize_in_model=True needs square images of one size; this source has "
                         f"{sorted(shapes)[:3]}. Use resize_in_model=False.")
    if isinstance(normalization, str):
        normalization = compute_normalization(result["train"][0], normalization)
    input_size = stored_size[0] if resize_in_model else preset.image_size
    return Datasets(source=str(source), class_names=tuple(class_names),
                    image_size=preset.image_size,
                    input_size=input_size, normalization=normalization, augment=augment,
                    batch_size=int(batch_size), seed=int(seed), splits=result,
                    stored_size=stored_size, skipped=list(skipped), eval_batch_size=eval_batch_size,
                    fingerprint=fingerprint or data_fingerprint(splits, class_names))
