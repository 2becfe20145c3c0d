"""The resume state of the TensorFlow backend: where a run is and everything needed to go on
exactly from there.

A ``tf.train.Checkpoint`` of the model, the optimizer (with its step counter), the position
(epoch, step within it), the schedule's plateau state, the step's running sums and
dropout's random state, managed by ``tf.train.CheckpointManager``: it writes new files and
then replaces its index in one rename, so a ``kill -9`` at any moment leaves the previous
checkpoint loadable; two are kept, and a damaged newest one falls back to the one before.
Because the data pipeline's shuffling and augmentation derive from ``(seed, epoch, step)``,
a resumed run continues with exactly the batches the unbroken run would have seen.
"""

from __future__ import annotations

from .. import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import keras
import tensorflow as tf

from ..files import remove_debris, remove_path
from ..runs import MODEL_FILES, RUN_FILES, RunFolder
from .build import all_layers
from .schedule import Schedule
from .step import TrainStep


class ResumeState:
    """The resume checkpoints of one run folder.

    Every worker of a cluster takes part in each save (the sync-on-read sums are
    all-reduced), but only the chief's files matter: the others write to a temporary folder,
    and every worker restores from the chief's.

    Attributes:
        epoch, step: where the run is (0-based epoch; optimizer steps done in it), as
            restored or last saved.
    """

    def __init__(self, run: RunFolder, model: keras.Model, optimizer, step: TrainStep,
                 schedule: Schedule, strategy: tf.distribute.Strategy, *, is_chief: bool,
                 say: Callable[[str], None]):
        self.run, self.optimizer, self.schedule, self.say = run, optimizer, schedule, say
        self.epoch, self.step = 0, 0
        with strategy.scope():
            self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self._plateau = {
                "lr_scale": tf.Variable(1.0, dtype=tf.float32, trainable=False, name="lr_scale"),
                "best_val": tf.Variable(-1.0, dtype=tf.float32, trainable=False,
                                        name="best_val"),
                "plateau_wait": tf.Variable(0, dtype=tf.int64, trainable=False, name="wait")}
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, epoch=self._epoch, step=self._step,
            **self._plateau, **step.checkpoint_objects(),
            # Dropout's random state, so a resumed run draws the same masks as an unbroken one.
            dropout_seeds=[layer.seed_generator.state for layer in all_layers(model)
                           if isinstance(getattr(layer, "seed_generator", None),
                                         keras.random.SeedGenerator)])
        self.is_chief = is_chief
        self._scratch = None if is_chief else tempfile.mkdtemp(prefix="alexnet-worker-")
        folder = str(run.checkpoints)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self._scratch or folder,
                                                  max_to_keep=2)
        self.chief_manager = self.manager if is_chief else tf.train.CheckpointManager(
            self.checkpoint, folder, max_to_keep=2)

    @property
    def latest(self) -> str | None:
        """The newest checkpoint in the run folder (``None``: none yet)."""
        return self.chief_manager.latest_checkpoint

    def restore(self) -> bool:
        """Restore the newest readable checkpoint, if any (position, schedule and all).
        Returns whether one was found.

        A checkpoint whose files were damaged after they were written (truncated, altered)
        is reported and skipped for the one before it.

        Raises:
            ValueError: when checkpoints exist but none can be read.
        """
        candidates = list(reversed(self.chief_manager.checkpoints))
        for i, prefix in enumerate(candidates):
            try:
                self.checkpoint.restore(prefix).assert_existing_objects_matched()
            except Exception as error:  # noqa: BLE001  (any damage: report, try the older one)
                reason = str(error).splitlines()[0][:200]
                self.say(f"warning: checkpoint {prefix} cannot be read ({reason})"
                         + ("; trying the previous one." if i + 1 < len(candidates) else "."))
                continue
            self.epoch, self.step = int(self._epoch.numpy()), int(self._step.numpy())
            self.schedule.load({k: v.numpy() for k, v in self._plateau.items()})
            return True
        if candidates:
            raise ValueError(
                f"No checkpoint in {self.run.checkpoints} can be read ({', '.join(candidates)}). "
                f"Move the folder aside to start over, or pass a new --run-dir.")
        return False

    def save(self, epoch: int, step: int) -> None:
        """A checkpoint at ``(epoch, step)``, numbered by the optimizer's step counter."""
        self.epoch, self.step = epoch, step
        self._epoch.assign(epoch)
        self._step.assign(step)
        for key, value in self.schedule.state().items():
            self._plateau[key].assign(value)
        self.manager.save(checkpoint_number=int(self.optimizer.iterations.numpy()))

    def remove_debris(self) -> list[Path]:
        """Remove what crashed writers left: temporary files of the run folder, checkpoint
        files being written (``ckpt-N_temp``) and checkpoints outside the index. Returns
        what was removed."""
        folder = self.run.checkpoints
        removed = remove_debris(self.run.path, RUN_FILES) + remove_debris(folder, MODEL_FILES)
        if folder.is_dir():
            indexed = {Path(p).name for p in self.chief_manager.checkpoints}
            for entry in folder.iterdir():
                match = re.fullmatch(r"(ckpt-\d+)(_temp|\.index|\.data-\d+-of-\d+)", entry.name)
                if match and (match[2] == "_temp" or match[1] not in indexed):
                    remove_path(entry)
                    removed.append(entry)
        return removed

    def close(self) -> None:
        """Remove a worker's scratch folder."""
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
