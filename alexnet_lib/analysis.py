"""What the notebooks compute before they plot: data statistics, what the model sees, a
layer's effect, forward-pass speed, a finished run's predictions, its most confident
mistakes and the paper's nearest neighbours in fc7 feature space.

Everything here returns plain NumPy values; :mod:`alexnet_lib.plots` draws them. The
backend's pipeline (:mod:`alexnet_lib.data.pipeline_tf` or ``pipeline_jax``) transforms the
images and compiles the forward passes, so the notebooks run on either backend.
"""

from __future__ import annotations

from . import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import time
from typing import Any

import keras
import numpy as np

from .backend import backend_module
from .checks import check_int
from .data.datasets import Datasets, make_datasets
from .data.preprocessing import Normalization, compute_normalization, resize_image
from .data.sources import load_source
from .layers import TowerConv2D
from .metrics import PIPELINES, predict_probabilities

# Pixels in 0..1, unchanged: shows exactly the crops and resizing the pipeline applies.
IDENTITY = Normalization(mode="channel", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                         eigval=(0.0, 0.0, 0.0), eigvec=((1.0, 0.0, 0.0),) * 3)


def _pipeline():
    """The backend's pipeline module (its ``eval_views`` and compiled ``forward``)."""
    return backend_module(PIPELINES, __package__)


# ----------------------------------------------------------------------------- data

def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Images per class (length ``num_classes``)."""
    return np.bincount(np.asarray(labels, np.int64), minlength=num_classes)


def samples_per_class(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """``num_classes x per_class`` indices, drawn without replacement within each class
    (-1 where a class has fewer images)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(int(labels.max()) + 1 if labels.size else 0):
        members = np.flatnonzero(labels == c)
        pick = rng.permutation(members)[:per_class]
        rows.append(np.concatenate([pick, np.full(per_class - len(pick), -1)]))
    return np.asarray(rows, np.int64)


def channel_statistics(images: np.ndarray) -> dict[str, Any]:
    """Per-channel mean and standard deviation (0..1 scale) and a 256-bin histogram per
    channel of uint8 ``N x H x W x 3`` images."""
    norm = compute_normalization(images, "channel")
    parts = [images] if isinstance(images, np.ndarray) else list(images)
    histograms = np.stack([sum(np.bincount(np.asarray(x)[..., c].ravel(), minlength=256)
                               for x in parts) for c in range(3)])
    return {"mean": np.asarray(norm.mean), "std": np.asarray(norm.std),
            "histograms": histograms}


def model_view(images: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 images as the model receives them at ``image_size`` (evaluation's resize and
    centre crop, no normalization), as uint8 for display."""
    x = _pipeline().eval_views(np.asarray(images, np.uint8), IDENTITY, image_size)
    return np.clip(np.round(keras.ops.convert_to_numpy(x) * 255.0), 0, 255).astype(np.uint8)


def take_images(images, index, size: int | None = None) -> np.ndarray:
    """``images[index]`` as one uint8 array. A list of images of several sizes (a
    class-folder tree) is brought to ``size x size`` (default: the side of the first image
    taken)."""
    index = np.asarray(index, np.int64)
    if isinstance(images, np.ndarray):
        return images[index]
    if size is None:
        size = images[int(index.ravel()[0])].shape[0] if index.size else 1
    return np.stack([resize_image(images[i], size) for i in index.ravel()]).reshape(
        *index.shape, size, size, 3)


# ----------------------------------------------------------------------------- the model

def _find_layer_model(model: keras.Model, name: str) -> tuple[keras.Model, list]:
    """The (possibly nested) functional model that holds layer ``name``, and the chain of
    wrapper layers in front of it (an upsampling prefix, the inference-info layer)."""
    names = [layer.name for layer in model.layers]
    if name in names:
        return model, []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, keras.Model):
            try:
                inner, prefix = _find_layer_model(layer, name)
            except ValueError:
                continue
            return inner, [layer for layer in model.layers[1:i]] + prefix
    raise ValueError(f"Model {model.name!r} has no layer named {name!r}.")


def layer_outputs(model: keras.Model, names: list[str]) -> keras.Model:
    """A model from ``model``'s input to the outputs (or, for ``"<layer>:input"``, inputs)
    of the named layers, looking inside the wrappers training adds around AlexNet."""
    base = names[0].split(":")[0]
    inner, prefix = _find_layer_model(model, base)
    tensors = []
    for spec in names:
        layer_name, _, which = spec.partition(":")
        layer = inner.get_layer(layer_name)
        tensors.append(layer.input if which == "input" else layer.output)
    truncated = keras.Model(inner.inputs[0], tensors[0] if len(tensors) == 1 else tensors)
    if not prefix:
        return truncated
    inputs = keras.Input(model.input_shape[1:])
    x = inputs
    for layer in prefix:
        x = layer(x)
    return keras.Model(inputs, truncated(x))


def conv1_kernels(model: keras.Model) -> tuple[np.ndarray, int]:
    """conv1's kernel (``kh x kw x 3 x filters``) and the model's number of towers."""
    inner, _ = _find_layer_model(model, "conv1")
    towers = max([layer.towers for layer in inner.layers if isinstance(layer, TowerConv2D)],
                 default=1)
    return np.asarray(inner.get_layer("conv1").get_weights()[0]), towers


def first_test_image(data: str, preset) -> tuple[np.ndarray, str]:
    """The first test image of ``data`` as evaluation feeds it to a model of ``preset`` (a
    :class:`~alexnet_lib.model.Preset`: the pipeline's own normalization, resizing and
    centre crop; ``1 x S x S x 3``), and its class name."""
    loaded = load_source(data)
    datasets = make_datasets(data, preset.replace(num_classes=len(loaded[1])), loaded=loaded,
                             batch_size=1, val_size=0)
    x, y = next(iter(datasets.test()))
    return np.asarray(x), datasets.class_names[int(np.asarray(y)[0])]


def lrn_effect(model: keras.Model, images: np.ndarray,
               layer: str = "lrn1") -> dict[str, np.ndarray]:
    """The input and output of an LRN layer for a batch of (already preprocessed) images,
    and the divisor ``(k + alpha * window_sum(a^2))^beta`` it applied (``before / after``
    where the input is non-zero)."""
    before, after = layer_outputs(model, [f"{layer}:input", layer])(np.asarray(images, np.float32))
    before, after = np.asarray(before, np.float64), np.asarray(after, np.float64)
    divisor = np.divide(before, after, out=np.full_like(before, np.nan), where=after != 0)
    return {"before": before, "after": after, "divisor": divisor}


def time_forward(model: keras.Model, batch_size: int = 16, steps: int = 5,
                 warmup: int = 2, clock=time.perf_counter) -> dict[str, float]:
    """Inference speed: images/s and ms per batch of a compiled forward pass (dropout off)
    on random input, after ``warmup`` calls (``clock``: seconds, read before and after the
    timed steps)."""
    batch_size, steps = check_int("batch_size", batch_size, 1), check_int("steps", steps, 1)
    forward = _pipeline().forward(model)
    x = keras.ops.convert_to_tensor(np.random.default_rng(0).standard_normal(
        (batch_size, *model.input_shape[1:]), np.float32))
    for _ in range(max(warmup, 1)):
        keras.ops.convert_to_numpy(forward(x))
    started = clock()
    for _ in range(steps):
        keras.ops.convert_to_numpy(forward(x))
    seconds = (clock() - started) / steps
    return {"images_per_second": batch_size / seconds, "ms_per_batch": 1000 * seconds,
            "batch_size": batch_size}


# ----------------------------------------------------------------------------- a finished run

def predictions(model: keras.Model, datasets: Datasets, split: str = "test"
                ) -> dict[str, np.ndarray]:
    """Probabilities over a split in stored order, with its uint8 images and labels."""
    probs, labels = predict_probabilities(model, datasets.evaluation(split))
    images, stored_labels = datasets.splits[split]
    if not np.array_equal(labels, stored_labels):
        raise RuntimeError("Evaluation order differs from the stored order.")
    return {"images": images, "labels": labels, "probs": probs}


def metrics_summary(metrics: dict[str, Any]) -> str:
    """A run's test metrics as text: top-1 and top-5, what they were measured over (images,
    checkpoint, views), then each class's accuracy."""
    views = metrics.get("views", "tta" if metrics.get("tta") else "center")
    lines = [f"test top-1 {metrics['test_top1']:.4f}   top-5 {metrics['test_top5']:.4f}   "
             f"({metrics['num_examples']} images, checkpoint {metrics['checkpoint']}, "
             f"views: {views})"]
    lines += [f"  {name:12s} {accuracy:.3f}" for name, accuracy in metrics["per_class"].items()]
    return "\n".join(lines)


def spread_over_classes(labels: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Indices of ``k`` examples drawn in turn from each class (seeded, in class order),
    so that a figure of a class-folder tree, stored class by class, shows every class
    rather than the first one's images."""
    rng = np.random.default_rng([seed, 4])
    pools = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in np.unique(labels)]
    chosen = []
    while len(chosen) < min(k, len(labels)):
        for pool in pools:
            if pool and len(chosen) < k:
                chosen.append(pool.pop(0))
    return np.array(chosen, dtype=np.int64)


def most_confident_mistakes(probs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` wrong predictions with the highest top-1 probability."""
    top = probs.argmax(1)
    wrong = np.flatnonzero(top != labels)
    return wrong[np.argsort(-probs[wrong, top[wrong]], kind="stable")][:k]


def nearest_neighbours(queries: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    """For each query row, the indices of its ``k`` nearest ``bank`` rows (Euclidean
    distance, as the paper's Figure 4), nearest first."""
    queries, bank = np.asarray(queries, np.float64), np.asarray(bank, np.float64)
    distances = ((queries ** 2).sum(1)[:, None] - 2 * queries @ bank.T
                 + (bank ** 2).sum(1)[None, :])
    return np.argsort(distances, axis=1, kind="stable")[:, :k]


def image_features(model: keras.Model, images: np.ndarray, datasets: Datasets,
                   layer: str = "fc7", batch_size: int = 256) -> np.ndarray:
    """``layer``'s activations (dropout off) for uint8 images at their stored size,
    preprocessed as ``datasets`` evaluates them."""
    pipeline = _pipeline()
    forward = pipeline.forward(layer_outputs(model, [layer]))
    out = []
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start:start + batch_size], np.uint8)
        x = pipeline.eval_views(batch, datasets.normalization, datasets.input_size)
        out.append(np.asarray(forward(x)))
    return np.concatenate(out)


def fc7_neighbours(model: keras.Model, datasets: Datasets, queries: int = 5,
                   bank_size: int = 5000, k: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """The paper's Figure 4: ``queries`` test images and, for each, the ``k`` training
    images (from a seeded bank of ``bank_size``) whose fc7 activations are nearest.

    Returns ``query_images``, ``query_labels``, ``neighbour_images`` (``queries x k``),
    ``neighbour_labels``.
    """
    rng = np.random.default_rng(seed)
    train_images, train_labels = datasets.splits["train"]
    test_images, test_labels = datasets.splits["test"]
    bank_index = np.sort(rng.permutation(len(train_labels))[:bank_size])
    pick = np.sort(rng.permutation(len(test_labels))[:queries])
    size = datasets.canvas_size()
    bank_images = take_images(train_images, bank_index, size)
    query_images = take_images(test_images, pick, size)
    index = nearest_neighbours(image_features(model, query_images, datasets),
                               image_features(model, bank_images, datasets), k)
    return {"query_images": query_images, "query_labels": test_labels[pick],
            "neighbour_images": bank_images[index],
            "neighbour_labels": train_labels[bank_index][index]}
