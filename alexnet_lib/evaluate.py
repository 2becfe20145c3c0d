"""Metrics over a whole split with dropout off: top-1, top-5, per-class accuracy, confusion.

Accuracy is counted over every example (not a mean of per-batch means). With ``tta=True``
the class probabilities of the paper's 10 views (four corners, centre, and their mirror
images; see :mod:`alexnet_lib.data.pipeline`) are averaged before ranking.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import yaml

from .data.pipeline import Datasets, Normalization


def load_model(path: str | Path) -> keras.Model:
    """A saved ``.keras`` model, loaded with ``safe_mode=True``.

    Raises:
        FileNotFoundError: naming the path.
        ValueError: when the file is not a model this project saved.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "best.keras"
    if not path.exists():
        raise FileNotFoundError(f"No model at {path}: pass a .keras file written by train "
                                f"(<run_dir>/checkpoints/best.keras) or a run folder.")
    from . import layers  # noqa: F401  (registers the custom layers)
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except (ValueError, OSError, KeyError) as error:
        raise ValueError(f"{path} is not a model saved by alexnet_lib ({error}).") from error


def model_info(model: keras.Model) -> dict[str, Any]:
    """The :class:`~alexnet_lib.layers.InferenceInfo` a saved model carries."""
    try:
        return model.get_layer("inference_info").info
    except ValueError:
        raise ValueError(f"Model {model.name!r} carries no inference_info layer: it was not "
                         f"saved by alexnet_lib's train.") from None


def predict_probabilities(model: keras.Model, dataset: tf.data.Dataset, forward=None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """``(probabilities N x C, labels N)`` over a dataset of ``(images, labels)``; a dataset
    of 10-view batches (``B x 10 x S x S x 3``) gives view-averaged probabilities.
    ``forward``: a compiled ``x -> model(x, training=False)`` to reuse across calls."""
    forward = forward or tf.function(lambda x: model(x, training=False))
    probs, labels = [], []
    for x, y in dataset:
        if x.shape.rank == 5:
            views = x.shape[1]
            flat = tf.reshape(x, [-1, *x.shape[2:]])
            p = tf.reduce_mean(tf.reshape(forward(flat), [-1, views, model.output_shape[-1]]), 1)
        else:
            p = forward(x)
        probs.append(np.asarray(p, np.float64))
        labels.append(y.numpy())
    return np.concatenate(probs), np.concatenate(labels)


def classification_metrics(probs: np.ndarray, labels: np.ndarray,
                           class_names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Top-1/top-5 accuracy, per-class accuracy and the confusion matrix (rows: true class)."""
    num_classes = probs.shape[1]
    top = np.argsort(-probs, axis=1)
    k = min(5, num_classes)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, top[:, 0]), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    return {
        "test_top1": float((top[:, 0] == labels).mean()),
        "test_top5": float((top[:, :k] == labels[:, None]).any(1).mean()),
        "test_loss": float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1)).mean()),
        "num_examples": int(len(labels)),
        "per_class": {name: float(a) for name, a in zip(class_names, per_class)},
        "confusion": confusion.tolist(),
        "class_names": list(class_names),
    }


def run_datasets(run_dir: Path, **overrides) -> Datasets:
    """The run's data with the normalization it was trained with."""
    from .train import TrainConfig, build_datasets

    config = TrainConfig.from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    norm = Normalization.from_dict(json.loads((run_dir / "normalization.json").read_text()))
    return build_datasets(config, norm, **overrides)


def evaluate(run_dir: str | Path, *, tta: bool = False, checkpoint: str = "best",
             batch_size: int = 256, datasets: Datasets | None = None,
             write: bool = True) -> dict[str, Any]:
    """Evaluate a run's ``best`` (or ``last``) model on the whole test split.

    Writes ``<run_dir>/metrics.json`` (atomically) and returns the metrics: ``test_top1``,
    ``test_top5``, ``test_loss``, ``per_class``, ``confusion``, ``tta``, ``checkpoint``,
    ``data``, ``seconds``.

    Raises:
        FileNotFoundError: when the run folder or its model is missing.
    """
    from .train import write_atomic

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.yaml): pass the "
                                f"--run-dir of a train command.")
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint must be 'best' or 'last'. Received: checkpoint={checkpoint!r}")
    started = time.time()
    model = load_model(run_dir / "checkpoints" / f"{checkpoint}.keras")
    datasets = datasets or run_datasets(run_dir, eval_batch_size=batch_size)
    probs, labels = predict_probabilities(model, datasets.test("tta" if tta else "center"))
    metrics = classification_metrics(probs, labels, datasets.class_names)
    metrics.update(tta=bool(tta), checkpoint=checkpoint, data=datasets.source,
                   seconds=round(time.time() - started, 2))
    if write:
        write_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    return metrics
