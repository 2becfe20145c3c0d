"""The schedule: the learning rate of every optimizer step, the paper's plateau rule and the
moving average of the weights (a recipe's ``ema``), with the state they carry across
epochs and restarts.

Plain numbers and Keras operations only, so that every backend's loop shares it. The
plateau state is kept at float32 precision (``lr_scale``, the best accuracy), the
precision the resume checkpoint stores it in, so that a resumed run decides exactly as an
unbroken one.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator

import keras
import numpy as np

from ..config import Recipe


def learning_rate_at(recipe: Recipe, step: int, steps_per_epoch: int) -> float:
    """The scheduled learning rate before the plateau factor, at optimizer step ``step``."""
    total = recipe.epochs * steps_per_epoch
    warmup = recipe.warmup_epochs * steps_per_epoch
    peak = recipe.learning_rate
    if recipe.schedule in ("constant", "plateau"):
        return peak
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1.0, total - warmup))
    if recipe.schedule == "onecycle":
        return peak * max(1.0 - progress, 0.0) + 1e-3 * peak * progress
    return 0.5 * peak * (1 + math.cos(math.pi * progress))


def _float32(value: float) -> float:
    return float(np.float32(value))


def inner_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The optimizer itself, inside float16's loss scaling where there is one."""
    return getattr(optimizer, "inner_optimizer", optimizer)


class Schedule:
    """The learning rate (the recipe's schedule times the plateau factor), the plateau rule
    and the weights' moving average of one run.

    Attributes:
        lr_scale: the plateau factor so far (1, then x ``plateau_factor`` per plateau).
        best: the best epoch metric so far (validation accuracy, else training accuracy).
        wait: epochs since it last improved.
    """

    def __init__(self, recipe: Recipe, steps_per_epoch: int,
                 optimizer: keras.optimizers.Optimizer):
        self.recipe, self.steps_per_epoch = recipe, steps_per_epoch
        self.optimizer = inner_optimizer(optimizer)
        self.lr_scale, self.best, self.wait = 1.0, -1.0, 0

    def learning_rate(self, global_step: int) -> float:
        """The learning rate of optimizer step ``global_step`` (0-based)."""
        lr = learning_rate_at(self.recipe, global_step, self.steps_per_epoch) * self.lr_scale
        return max(lr, self.recipe.min_learning_rate) if self.recipe.schedule == "plateau" else lr

    def apply(self, global_step: int) -> float:
        """Set the optimizer's learning rate for step ``global_step``; returns it."""
        lr = self.learning_rate(global_step)
        self.optimizer.learning_rate.assign(lr)
        return lr

    def end_of_epoch(self, metric: float) -> tuple[bool, str | None]:
        """Record an epoch's ``metric``: ``(improved, message)``, the message saying when the
        plateau rule divided the learning rate."""
        if metric > self.best:
            self.best, self.wait = _float32(metric), 0
            return True, None
        self.wait += 1
        patience = self.recipe.plateau_patience
        if self.recipe.schedule == "plateau" and self.wait >= patience:
            factor = self.recipe.plateau_factor
            self.lr_scale = _float32(np.float32(self.lr_scale) * np.float32(factor))
            self.wait = 0
            return False, (f"  validation accuracy has not improved for {patience} epochs: "
                           f"learning rate x{factor}")
        return False, None

    def state(self) -> dict[str, Any]:
        return {"lr_scale": self.lr_scale, "best_val": self.best, "plateau_wait": self.wait}

    def load(self, state: dict[str, Any]) -> None:
        self.lr_scale = _float32(state["lr_scale"])
        self.best = _float32(state["best_val"])
        self.wait = int(state["plateau_wait"])

    @contextlib.contextmanager
    def averaged_weights(self, model: keras.Model) -> Iterator[keras.Model]:
        """``model`` with the moving average of its weights in place (the recipe's ``ema``;
        without one, the weights as they are), and its own weights back afterwards."""
        if not self.optimizer.use_ema:
            yield model
            return
        variables = model.trainable_variables
        own = [keras.ops.convert_to_numpy(v) for v in variables]
        self.optimizer.finalize_variable_values(variables)  # Keras: the average in place
        try:
            yield model
        finally:
            for variable, value in zip(variables, own):
                variable.assign(value)

    def finalize(self, model: keras.Model) -> None:
        """As Keras' ``fit`` leaves it: the model holds the average it was evaluated with."""
        self.optimizer.finalize_variable_values(model.trainable_variables)
