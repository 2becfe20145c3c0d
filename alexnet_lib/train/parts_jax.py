"""The JAX backend's parts of a run: the jitted step (:class:`~.step_jax.JaxTrainStep`), the
resume checkpoints (:class:`~.state_jax.JaxResumeState`), each epoch's batches (augmented on
the device, :mod:`alexnet_lib.data.pipeline_jax`) and the devices line. What only
TensorFlow does -- towers placed on devices, ``tf.distribute`` strategies and clusters,
float16 with loss scaling -- is refused with one error naming the alternative.
"""

from __future__ import annotations

from .. import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import contextlib
import os
from typing import Callable

import jax
import keras

from ..config import Recipe, TrainConfig
from ..data import pipeline_jax
from ..runs import RunFolder
from .report import devices_line
from .schedule import Schedule
from .state_jax import JaxResumeState
from .step_jax import JaxTrainStep


class Parts:
    """What a run computes with on JAX: with ``strategy: auto`` every local device of JAX's
default platform (each GPU; data parallel when there are several), with ``one`` the first.

    Raises:
        ValueError: for a ``strategy`` object, ``tower_devices``, a strategy other than
            ``auto``/``one``, or a ``TF_CONFIG`` cluster.
    """

    def __init__(self, config: TrainConfig, strategy=None):
        if strategy is not None:
            raise ValueError("A tf.distribute strategy needs the TensorFlow backend; this "
                             "process runs on jax: leave strategy unset (on JAX, --strategy "
                             "auto trains data parallel over the local devices).")
        if config.tower_devices:
            raise ValueError(f"--towers-on {','.join(config.tower_devices)} needs the "
                             f"TensorFlow backend (towers are placed with tf.device); this "
                             f"process runs on jax. Train without --towers-on, or with "
                             f"KERAS_BACKEND=tensorflow.")
        if config.strategy not in ("auto", "one"):
            raise ValueError(f"--strategy {config.strategy} is a tf.distribute strategy and "
                             f"needs the TensorFlow backend; this process runs on jax. Pass "
                             f"--strategy auto (data parallel over the local devices) or one, or "
                             f"set KERAS_BACKEND=tensorflow.")
        if os.environ.get("TF_CONFIG"):
            raise ValueError("TF_CONFIG describes a multi-worker cluster, which needs the "
                             "TensorFlow backend; this process runs on jax. Unset TF_CONFIG, "
                             "or set KERAS_BACKEND=tensorflow.")
        local = jax.local_devices()
        self.devices = local if config.strategy == "auto" else local[:1]

    @property
    def replicas(self) -> int:
        return len(self.devices)

    def is_chief(self) -> bool:
        return True

    def check_precision(self, precision: str) -> None:
        """Raises ValueError for ``mixed_float16`` (loss scaling runs on TensorFlow only)."""
        if precision == "mixed_float16":
            raise ValueError("--precision mixed_float16 (float16 with loss scaling) trains on "
                             "the TensorFlow backend only; this process runs on jax. Pass "
                             "--precision mixed_bfloat16 (no loss scaling needed) or float32.")

    def scope(self):
        return contextlib.nullcontext()

    def make_step(self, model: keras.Model, optimizer, recipe: Recipe,
                  num_classes: int) -> JaxTrainStep:
        return JaxTrainStep(model, optimizer, recipe, num_classes, devices=self.devices)

    def make_state(self, run: RunFolder, model: keras.Model, optimizer, step: JaxTrainStep,
                   schedule: Schedule, *, is_chief: bool,
                   say: Callable[[str], None]) -> JaxResumeState:
        return JaxResumeState(run, model, optimizer, step, schedule, say=say)

    def batches(self, datasets, epoch: int, start_step: int):
        return datasets.train(epoch, start_step)

    def forward(self, model: keras.Model):
        return pipeline_jax.forward(model)

    def devices_line(self, precision: str, reason: str) -> str:
        return devices_line([f"{d.platform}:{d.id}" for d in self.devices], self.replicas, None,
                            precision, reason)
