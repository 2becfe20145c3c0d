"""Inference on image files with a saved model: any size, any colour mode, JPEG or PNG.

Each file is decoded to RGB, resized to the size the training images were stored at (32x32
for CIFAR-10), then normalized, resized and centre-cropped exactly as evaluation does, with
the statistics the model carries. By default the probabilities are averaged over the test-time
views the model was evaluated with after training (its recipe's ``eval_views``: the centre
crop and its mirror image for the ``cpu`` recipe).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from .data.folders import ImageError, decode_image
from .data.pipeline import Normalization, check_views, resize_image, transform_batch
from .evaluate import load_model, model_info


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
        views: ``center``, ``flip`` (average the image and its mirror image) or ``tta``
            (the paper's 10 views); ``None``: the views the model's recipe evaluates with.
    """

    def __init__(self, checkpoint: str | os.PathLike, views: str | None = None):
        self.model = load_model(checkpoint)
        info = model_info(self.model, checkpoint)
        self.views = check_views(views or info.get("eval_views", "center"))
        self.class_names = list(info["class_names"])
        self.input_size = int(info["input_size"])
        stored = info.get("stored_size") or []
        self.stored_size = int(stored[0]) if stored else None
        self.normalization = Normalization.from_dict(info["normalization"])

    def preprocess(self, image: np.ndarray):
        """uint8 ``H x W x 3`` → the model's input batch: one image, or its views."""
        if self.stored_size:
            image = resize_image(image, self.stored_size)
        batch = transform_batch(image[None], self.normalization, self.input_size, views=self.views)
        return batch[0] if self.views != "center" else batch

    def predict_file(self, path: str | os.PathLike, top_k: int = 5) -> Prediction:
        try:
            image = decode_image(path)
        except ImageError as error:
            return Prediction(str(path), error=str(error))
        probs = np.asarray(self.model(self.preprocess(image), training=False)).mean(0)
        order = np.argsort(-probs)[:top_k]
        return Prediction(str(path), top=[(self.class_names[i], float(probs[i])) for i in order])

    def predict_files(self, paths: Iterable[str | os.PathLike], top_k: int = 5) -> list[Prediction]:
        return [self.predict_file(p, top_k) for p in paths]


def predict(checkpoint: str | os.PathLike, paths: Iterable[str | os.PathLike],
            top_k: int = 5, views: str | None = None) -> list[Prediction]:
    """Top-``top_k`` classes and probabilities for each file (averaged over ``views``, see
    :class:`Predictor`); unreadable files get an error entry and do not stop the others."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1. Received: top_k={top_k}")
    return Predictor(checkpoint, views).predict_files([Path(p) for p in paths], top_k)
