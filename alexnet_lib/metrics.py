"""Class probabilities over a split, and the metrics the project reports from them.

Accuracy is counted over every example (not a mean of per-batch means). Used by training
(validation after each epoch) and by :mod:`alexnet_lib.evaluate` (the test split), on
either backend.
"""

from __future__ import annotations

from . import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

from typing import Any

import keras
import numpy as np

from .backend import backend_module

# Each backend's pipelines, for their compiled forward pass.
PIPELINES = {"tensorflow": ".data.pipeline_tf", "jax": ".data.pipeline_jax"}


def predict_probabilities(model: keras.Model, dataset, forward=None, *,
                          keep_view: int | None = None):
    """``(probabilities N x C, labels N)`` over batches of ``(images, labels)`` (a
    :class:`~alexnet_lib.data.datasets.Datasets` split); multi-view batches
    (``B x V x S x S x 3``) give view-averaged probabilities.

    Args:
        forward: a compiled ``x -> model(x, training=False)`` to reuse across calls
            (default: the backend pipeline's ``forward(model)``).
        keep_view: also return the probabilities of this one view (``N x C``) as a third
            element (for single-view batches, the probabilities themselves).
    """
    forward = forward or backend_module(PIPELINES, __package__).forward(model)
    probs, labels, kept = [], [], []
    for x, y in dataset:
        if len(x.shape) == 5:
            views = x.shape[1]
            flat = keras.ops.reshape(x, [-1, *x.shape[2:]])
            per_view = keras.ops.reshape(forward(flat), [-1, views, model.output_shape[-1]])
            p = keras.ops.mean(per_view, 1)
            if keep_view is not None:
                kept.append(np.asarray(per_view[:, keep_view], np.float64))
        else:
            p = forward(x)
            if keep_view is not None:
                kept.append(np.asarray(p, np.float64))
        probs.append(np.asarray(p, np.float64))
        labels.append(np.asarray(y))
    if keep_view is None:
        return np.concatenate(probs), np.concatenate(labels)
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(kept)


def classification_metrics(probs: np.ndarray, labels: np.ndarray,
                           class_names: list[str] | tuple[str, ...],
                           split: str = "test") -> dict[str, Any]:
    """Top-1/top-5 accuracy and the loss, keyed by ``split`` (``test_top1``, ``val_top1``,
    ``train_top1``...), per-class accuracy and the confusion matrix (rows: true class)."""
    num_classes = probs.shape[1]
    top = np.argsort(-probs, axis=1)
    k = min(5, num_classes)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, top[:, 0]), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    chosen = probs[np.arange(len(labels)), labels]  # each example's probability of its class
    return {
        f"{split}_top1": float((top[:, 0] == labels).mean()),
        f"{split}_top5": float((top[:, :k] == labels[:, None]).any(1).mean()),
        f"{split}_loss": float(-np.log(np.clip(chosen, 1e-7, 1)).mean()),
        "num_examples": int(len(labels)),
        "per_class": {name: float(a) for name, a in zip(class_names, per_class)},
        "confusion": confusion.tolist(),
        "class_names": list(class_names),
    }
