"""Inference on image files with a saved model: any size, any colour mode, JPEG or PNG.

Each file is decoded to RGB, resized to the size the training images were stored at (32x32
for CIFAR-10), then normalized, resized and centre-cropped exactly as evaluation does, with
the statistics the model carries. By default the probabilities are averaged over the test-time
views the model was evaluated with after training (its recipe's ``eval_views``: the centre
crop and its one-pixel shifts, each mirrored, for the ``cpu`` recipe).

Files are decoded in parallel threads and classified in batches (every view of up to
``batch_size`` images in one compiled forward pass), in the order given; a folder stands for
the image files below it.
"""

from __future__ import annotations

from . import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

import keras
import numpy as np

from .backend import backend_module
from .checks import check_int
from .data.folders import IMAGE_EXTENSIONS, ImageError, decode_image
from .data.preprocessing import check_views
from .metrics import PIPELINES
from .runs import load_model, model_info


@dataclasses.dataclass
class Prediction:
    """Top-k classes of one file, or the error that stopped it."""

    path: str
    top: list[tuple[str, float]] | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        return {"path": self.path, "top": [{"class": c, "probability": p} for c, p in self.top]}


class Predictor:
    """A loaded model with its preprocessing.

    Args:
        checkpoint: a ``.keras`` file saved by training, or a run folder (its best model).
        views: one of :data:`~alexnet_lib.data.preprocessing.VIEWS` (``center``, ``flip``,
            ``shift6``, ``shift10``, ``tta``); ``None``: the views the model's recipe evaluates
            with.
        batch_size: images per forward pass (each with all its views).
        workers: decoding threads (default: the CPU count).
    """

    def __init__(self, checkpoint: str | os.PathLike, views: str | None = None, *,
                 batch_size: int = 256, workers: int | None = None):
        self.model = load_model(checkpoint)
        self.preprocessing = model_info(self.model, checkpoint)
        self.views = check_views(views or self.preprocessing.eval_views)
        self.class_names = list(self.preprocessing.class_names)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.workers = workers or os.cpu_count() or 1
        # One compiled forward pass; a shorter last batch traces once more, not per call.
        self._pipeline = backend_module(PIPELINES, __package__)
        self._forward = self._pipeline.forward(self.model, reduce_retracing=True)

    def preprocess(self, image: np.ndarray):
        """uint8 ``H x W x 3`` → the model's input batch: one image, or its views."""
        batch = self._inputs(self.preprocessing.to_stored(image)[None])
        return batch[0] if self.views != "center" else batch

    def _inputs(self, images: np.ndarray):
        """uint8 ``B x H x W x 3`` (one size) → ``B x S x S x 3`` or ``B x V x S x S x 3``."""
        prep = self.preprocessing
        return self._pipeline.eval_views(images, prep.normalization, prep.input_size,
                                         self.views)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (averaged over the views) of a uint8 batch of one size."""
        x = self._inputs(images)
        if self.views == "center":
            return np.asarray(self._forward(x), np.float64)
        views = x.shape[1]
        flat = keras.ops.reshape(x, [-1, *x.shape[2:]])
        per_view = keras.ops.reshape(self._forward(flat), [-1, views, len(self.class_names)])
        return np.asarray(keras.ops.mean(per_view, 1), np.float64)

    def check_top_k(self, top_k: int | None) -> int:
        """``top_k`` checked against the model's classes; ``None``: 5, or every class of a
        model with fewer.

        Raises:
            ValueError: for more classes than the model has.
        """
        if top_k is None:
            return min(5, len(self.class_names))
        top_k = check_int("top_k", top_k, 1)
        if top_k > len(self.class_names):
            raise ValueError(f"--top-k {top_k} asks for more classes than the model's "
                             f"{len(self.class_names)}: pass --top-k {len(self.class_names)} "
                             f"or less.")
        return top_k

    def predict_file(self, path: str | os.PathLike, top_k: int | None = None) -> Prediction:
        return self.predict_files([path], top_k)[0]

    def predict_files(self, paths: Iterable[str | os.PathLike], top_k: int | None = None
                      ) -> list[Prediction]:
        """Top-``top_k`` classes of each file (see :meth:`check_top_k`), in the order given;
        a folder stands for the image files below it (sorted). Files are decoded in parallel
        and classified in batches; a file that cannot be read (a pipe or device named among
        them included) gets an error entry and stops nothing else."""
        top_k = self.check_top_k(top_k)
        files = expand_folders(paths)
        results: list[Prediction | None] = [None] * len(files)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for start in range(0, len(files), self.batch_size):
                chunk = list(range(start, min(start + self.batch_size, len(files))))
                decoded = pool.map(self._load, [files[i] for i in chunk])
                by_shape: dict[tuple, list[tuple[int, np.ndarray]]] = {}
                for i, item in zip(chunk, decoded):
                    if isinstance(item, str):
                        results[i] = Prediction(str(files[i]), error=item)
                    else:
                        by_shape.setdefault(item.shape, []).append((i, item))
                for group in by_shape.values():
                    probs = self.probabilities(np.stack([image for _, image in group]))
                    for (i, _), p in zip(group, probs):
                        order = np.argsort(-p, kind="stable")[:top_k]
                        results[i] = Prediction(
                            str(files[i]), top=[(self.class_names[c], float(p[c])) for c in order])
        return results

    def _load(self, path: Path) -> np.ndarray | str:
        """The decoded image at its stored size, or the error message."""
        try:
            return self.preprocessing.to_stored(decode_image(path))
        except ImageError as error:
            return str(error)


def expand_folders(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """``paths`` with each folder replaced by the image files below it (JPEG/PNG by their
    extension, hidden files and folders left out), sorted; other paths stay in place."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file()
                           and p.suffix.lower() in IMAGE_EXTENSIONS
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            files += found or [path]  # an empty folder is reported, not dropped
        else:
            files.append(path)
    return files


def predict(checkpoint: str | os.PathLike, paths: Iterable[str | os.PathLike],
            top_k: int | None = None, views: str | None = None) -> list[Prediction]:
    """Top-``top_k`` classes and probabilities for each file (averaged over ``views``, see
    :class:`Predictor`; ``top_k`` ``None``: 5, or all classes of a model with fewer), folders
    expanded to their images; unreadable files get an error entry and do not stop the
    others.

    Raises:
        ValueError: for a ``top_k`` above the model's class count (before any file is read).
    """
    if top_k is not None:
        check_int("top_k", top_k, 1)
    return Predictor(checkpoint, views).predict_files(paths, top_k)
