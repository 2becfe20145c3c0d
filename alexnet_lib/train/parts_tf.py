"""The TensorFlow backend's parts of a run: the ``tf.distribute`` strategy (one device,
mirrored over local GPUs, or multi-worker from ``TF_CONFIG``), the compiled step
(:class:`~.step.TrainStep`), the resume checkpoints (:class:`~.state.ResumeState`), each
epoch's batches split over the replicas, and the devices line.
"""

from __future__ import annotations

from .. import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

from typing import Callable

import keras
import tensorflow as tf

from ..config import Recipe, TrainConfig
from ..data import pipeline_tf
from ..distribute import check_devices, distribute_batches, make_strategy
from ..distribute import is_chief as chief_from_tf_config
from ..runs import RunFolder
from .report import devices_line
from .schedule import Schedule
from .state import ResumeState
from .step import TrainStep


class Parts:
    """What a run computes with on TensorFlow.

    Args:
        strategy: a ``tf.distribute`` strategy (default: ``make_strategy(config.strategy)``).
    """

    def __init__(self, config: TrainConfig, strategy: tf.distribute.Strategy | None = None):
        if config.tower_devices:
            check_devices(config.tower_devices)
        self.strategy = strategy or make_strategy(config.strategy)
        self.tower_devices = config.tower_devices

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    def is_chief(self) -> bool:
        """Whether this worker writes the run folder (from ``TF_CONFIG``)."""
        return chief_from_tf_config()

    def check_precision(self, precision: str) -> None:
        """Every precision trains on TensorFlow."""

    def scope(self):
        """Where the model and optimizer are built (their variables mirrored)."""
        return self.strategy.scope()

    def make_step(self, model: keras.Model, optimizer, recipe: Recipe,
                  num_classes: int) -> TrainStep:
        return TrainStep(model, optimizer, recipe, num_classes, self.strategy)

    def make_state(self, run: RunFolder, model: keras.Model, optimizer, step: TrainStep,
                   schedule: Schedule, *, is_chief: bool,
                   say: Callable[[str], None]) -> ResumeState:
        return ResumeState(run, model, optimizer, step, schedule, self.strategy,
                           is_chief=is_chief, say=say)

    def batches(self, datasets, epoch: int, start_step: int):
        """Epoch ``epoch``'s batches from ``start_step`` on, each split over the replicas."""
        if self.replicas > 1:
            return distribute_batches(self.strategy, lambda: datasets.train(epoch, start_step))
        return datasets.train(epoch, start_step)

    def forward(self, model: keras.Model):
        return pipeline_tf.forward(model)

    def devices_line(self, precision: str, reason: str) -> str:
        try:
            devices = sorted({name.split("device:")[-1]
                              for name in self.strategy.extended.worker_devices})
        except RuntimeError:  # the default strategy: TensorFlow's placement, GPU first
            gpus = tf.config.list_logical_devices("GPU")
            devices = [gpus[0].name.split("device:")[-1] if gpus else "CPU:0"]
        return devices_line(devices, self.replicas, self.tower_devices, precision, reason)
