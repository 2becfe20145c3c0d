"""What a run trains: the model behind its input, conv1's whitened start, and the optimizer
the recipe names. Keras operations only."""

from __future__ import annotations

from typing import Iterator

import keras
import numpy as np

from ..config import Recipe
from ..model import Preset, whitening_kernel


def input_model(model: keras.Model, datasets) -> keras.Model:
    """Prefix ``model`` with an upsampling layer when the pipeline (``datasets``, a
    :class:`~alexnet_lib.data.datasets.Datasets`) yields stored-size images."""
    if datasets.input_size == datasets.image_size:
        return model
    inputs = keras.Input((datasets.input_size, datasets.input_size, 3), name="stored_image")
    x = keras.layers.Resizing(datasets.image_size, datasets.image_size, name="upsample")(inputs)
    return keras.Model(inputs, model(x), name=model.name)


def all_layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    """Every layer of ``model``, those of nested models included."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


def conv1(model: keras.Model) -> keras.layers.Layer:
    return next(layer for layer in all_layers(model) if layer.name == "conv1")


def whiten_conv1(model: keras.Model, datasets, preset: Preset, seed: int,
                 images: int = 2048) -> None:
    """conv1's kernel from the principal components of training patches (the recipe's
    ``conv1_init: whiten``), computed from the first ``images`` training images as
    evaluation sees them (normalized, centre view)."""
    batches, count = [], 0
    for x, _ in datasets.evaluation("train"):
        batches.append(keras.ops.convert_to_numpy(x))
        count += len(x)
        if count >= images:
            break
    x = np.concatenate(batches, 0)[:images]
    if x.shape[1] != preset.image_size:
        x = keras.ops.convert_to_numpy(
            keras.ops.image.resize(x, (preset.image_size, preset.image_size)))
    kernel = whitening_kernel(x, preset.conv1_kernel, preset.conv1_filters, seed=seed)
    # With its towers placed on two devices, conv1 is a TowerConv2D: one Conv2D per tower,
    # each holding its share of the filters.
    layer = conv1(model)
    convs = getattr(layer, "convs", [layer])
    for conv, part in zip(convs, np.split(kernel, len(convs), axis=-1)):
        conv.kernel.assign(part.astype(conv.kernel.dtype))
        conv.bias.assign(np.zeros(conv.bias.shape, conv.bias.dtype))


def make_optimizer(recipe: Recipe) -> keras.optimizers.Optimizer:
    """The recipe's optimizer. The moving average of the weights (``ema``) lives in its
    slots, so the resume checkpoints carry it."""
    average = dict(use_ema=recipe.ema > 0, ema_momentum=recipe.ema or 0.99)
    if recipe.optimizer == "sgd":
        opt = keras.optimizers.SGD(learning_rate=recipe.learning_rate, momentum=recipe.momentum,
                                   nesterov=recipe.nesterov, **average)
    elif recipe.optimizer == "adam":
        opt = keras.optimizers.Adam(learning_rate=recipe.learning_rate, **average)
    else:
        opt = keras.optimizers.AdamW(learning_rate=recipe.learning_rate,
                                     weight_decay=recipe.weight_decay, **average)
    if recipe.precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt
