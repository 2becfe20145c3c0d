"""The training loop: one crash-safe, resumable loop for every strategy.

One loop serves every case: a ``tf.function`` train step run by ``strategy.run`` under the
default strategy, ``MirroredStrategy`` or ``MultiWorkerMirroredStrategy`` (Keras 3
``model.fit`` fails under the last one in TF 2.21). Loss, accuracy, progress, history and
checkpoints belong to the loop; the configuration is :mod:`alexnet_lib.config`'s, the files
it writes are laid out by :mod:`alexnet_lib.runs`.

Crash safety: the resume state (model, optimizer with its step counter, epoch, step within
the epoch, the plateau schedule's state, the best validation accuracy) is a
``tf.train.Checkpoint`` managed by ``tf.train.CheckpointManager``, which writes to new files
and then replaces its index in one rename, so a ``kill -9`` at any moment leaves the
previous checkpoint loadable. Because the data pipeline's shuffling and augmentation are
derived from ``(seed, epoch, step)``, a resumed run continues with exactly the batches the
uninterrupted run would have seen, and ends after the same number of optimizer steps.
The ``.keras`` models for inference (``best.keras``, ``last.keras``) and every text file of
the run folder are written to a temporary name and renamed into place.

Divergence is caught where it starts: every step checks the loss, the gradients and, after
the update, every weight and optimizer slot, and nothing is saved once any was non-finite.
"""

from __future__ import annotations

from . import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import contextlib
import dataclasses
import math
import re
import shutil
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from .config import Recipe, TrainConfig
from .data.datasets import Datasets
from .data.sources import resolve_source
from .distribute import check_devices, distribute_batches, make_strategy
from .distribute import is_chief as chief_from_tf_config
from .errors import TrainingDiverged
from .files import FolderLock, remove_debris, remove_path
from .metrics import classification_metrics, predict_probabilities
from .model import build_alexnet, whitening_kernel
from .precision import cpu_bfloat16_flags, precision_decision
from .run_data import build_datasets
from .runs import (
    MODEL_FILES,
    RUN_FILES,
    RunFolder,
    default_run_dir,
    inference_model,
    save_model,
)

# How a resumed run's precision is explained: the one it started in, kept.
RECORDED = "kept from the run's start"

# ----------------------------------------------------------------------------- models

def input_model(model: keras.Model, datasets: Datasets) -> keras.Model:
    """Prefix ``model`` with an upsampling layer when the pipeline yields stored-size images."""
    if datasets.input_size == datasets.image_size:
        return model
    inputs = keras.Input((datasets.input_size, datasets.input_size, 3), name="stored_image")
    x = keras.layers.Resizing(datasets.image_size, datasets.image_size, name="upsample")(inputs)
    return keras.Model(inputs, model(x), name=model.name)


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _all_finite(tensors) -> tf.Tensor:
    """Whether every value of ``tensors`` is finite: one sum per tensor, which is NaN or
    infinite as soon as any element is (or when the values are astronomically large, which
    is divergence too)."""
    sums = [tf.reduce_sum(tf.cast(t, tf.float32)) for t in tensors if t is not None]
    return tf.math.is_finite(tf.add_n(sums)) if sums else tf.constant(True)


def _float_state(model: keras.Model, optimizer) -> list:
    """The model's trainable weights and the optimizer's floating-point slots."""
    slots = [v for v in optimizer.variables if "float" in str(v.dtype)]
    return list(model.trainable_variables) + slots


# ----------------------------------------------------------------------------- schedules

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


def _make_optimizer(recipe: Recipe) -> keras.optimizers.Optimizer:
    # The moving average of the weights (recipe.ema) lives in the optimizer's slots, so the
    # resume checkpoints carry it.
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


# ----------------------------------------------------------------------------- progress

class _Progress:
    """One line per epoch: ``\\r``-updated on a terminal, a few lines per epoch otherwise."""

    def __init__(self, epoch: int, epochs: int, steps: int, start_step: int, stream=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self.start_step, self.start = start_step, time.time()
        # The loop reads the (all-reduced) running sums every `every` steps. This must not
        # depend on the stream: every worker of a cluster has to read at the same steps.
        self.every = max(1, steps // 50)
        self.print_every = self.every if self.tty else max(1, steps // 5)

    def update(self, step: int, loss: float, accuracy: float, final: bool = False) -> None:
        if not final and (step % self.print_every or step == self.steps):
            return
        done = step - self.start_step
        elapsed = time.time() - self.start
        eta = elapsed / max(done, 1) * (self.steps - step)
        text = (f"epoch {self.epoch + 1}/{self.epochs} step {step}/{self.steps} "
                f"loss {loss:.4f} accuracy {accuracy:.4f} "
                f"{'took' if final else 'ETA'} {(elapsed if final else eta):.0f}s")
        if self.tty:
            self.stream.write("\r" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


# ----------------------------------------------------------------------------- trainer

class Trainer:
    """Builds data, model and optimizer for a :class:`~alexnet_lib.config.TrainConfig`, and
    runs or resumes it.

    Args:
        config: the run's configuration.
        strategy: a ``tf.distribute`` strategy (default: ``make_strategy(config.strategy)``).
        datasets: prebuilt :class:`Datasets` (to share data already in memory).
        log: where progress goes (default stdout).
        is_chief: whether this worker writes the run folder (default: from ``TF_CONFIG``,
            see :func:`alexnet_lib.distribute.is_chief`).
        on_epoch_end: callables ``f(row, history)`` run after each epoch's history row is
            written (e.g. a notebook's live learning curves).
    """

    def __init__(self, config: TrainConfig, *, strategy: tf.distribute.Strategy | None = None,
                 datasets: Datasets | None = None, log=None, is_chief: bool | None = None,
                 on_epoch_end: Sequence[Callable] = ()):
        resolved = config.resolve()
        self.config = config
        self.on_epoch_end = list(on_epoch_end)
        self.requested_precision = resolved.recipe.precision
        self.strategy = strategy or make_strategy(config.strategy)
        self.log = log or sys.stdout
        self.is_chief = chief_from_tf_config() if is_chief is None else is_chief
        self.run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
        self.config.run_dir = str(self.run_dir)
        self.config.data = resolve_source(config.data)
        self.run = RunFolder(self.run_dir)
        self.ckpt_dir = self.run.checkpoints
        # Nothing is written or cleaned in a folder that is not one of this project's runs.
        created = self.run.claim("--run-dir", data=self.config.data) if self.is_chief else False
        # One live process per run folder; the kernel drops the lock when the process dies.
        self._lock = FolderLock(self.run_dir, "run folder") if self.is_chief else None
        try:
            precision, self.precision_reason = self._precision(resolved)
            self.recipe = dataclasses.replace(resolved.recipe, precision=precision)
            self._resolved = dataclasses.replace(resolved, recipe=self.recipe)
            self._set_up(datasets)
        except BaseException:
            self.close()
            if created and self.is_chief:
                self.run.remove_if_only_lock()
            raise
        if self._lock is not None:
            weakref.finalize(self, self._lock.release)

    def _precision(self, resolved) -> tuple[str, str]:
        """``(precision, reason)``: a resumed run keeps the precision it started in (``auto``
        may measure otherwise today: a lost cache, a busier host), so that it stays the run
        it was; a new one decides (:func:`alexnet_lib.precision.precision_decision`).

        Raises:
            ValueError: when the run asks for a precision other than the recorded one.
        """
        requested = resolved.recipe.precision
        record = (self.run.read_resolved().get("precision") or {}) if self.run.resumable else {}
        recorded = record.get("chosen")
        if not recorded:
            return precision_decision(requested, resolved.preset)
        if requested not in ("auto", recorded):
            raise ValueError(
                f"{self.run_dir} trains in {recorded} (recorded when it started), not in the "
                f"{requested} asked for now: a run keeps one precision to resume exactly. Resume "
                f"it without --precision (or with --precision {recorded}), or pass a new "
                f"--run-dir.")
        reason = record.get("reason") or "auto"
        return recorded, (reason if reason.startswith(RECORDED) else f"{RECORDED}; {reason}")

    def close(self) -> None:
        """Release the run folder's lock (``fit`` does this when it returns or fails)."""
        if self._lock is not None:
            self._lock.release()

    def _set_up(self, datasets: Datasets | None) -> None:
        config = self.config
        # A folder with a configuration but no checkpoint holds a start that failed before
        # its first checkpoint: nothing to resume, so its files do not bind this start.
        self.resumable = self.run.resumable
        if config.tower_devices:
            check_devices(config.tower_devices)
        if self.resumable:
            self._check_existing_config()
        keras.utils.set_random_seed(config.seed)
        keras.config.set_dtype_policy(self.recipe.precision)

        resumed = self.run if self.resumable else None
        resolved = self._resolved
        if datasets is None:
            normalization = resumed.read_normalization() if resumed else None
            datasets, resolved = build_datasets(resolved, normalization, run=resumed)
        else:
            if resumed is not None:
                resumed.check_data(datasets.fingerprint, datasets.source)
            resolved = resolved.with_classes(datasets.num_classes)
        self.datasets = datasets
        self.preset = resolved.preset
        replicas = self.strategy.num_replicas_in_sync
        if self.recipe.batch_size % replicas:
            raise ValueError(f"batch_size={self.recipe.batch_size} does not split evenly over "
                             f"{replicas} replicas: use a multiple of {replicas}.")
        self.steps_per_epoch = self.datasets.steps_per_epoch
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"batch_size={self.recipe.batch_size} is larger than the training split "
                f"({self.datasets.size('train')} images): pass a smaller --batch-size or use "
                f"more training images.")

        with self.strategy.scope():
            self.model = input_model(build_alexnet(self.preset, tower_devices=config.tower_devices),
                                     self.datasets)
            if self.recipe.conv1_init == "whiten" and not self.resumable:
                self._whiten_conv1()
            if self.recipe.freeze_conv1:
                self._conv1().trainable = False
            self.optimizer = _make_optimizer(self.recipe)
            self.optimizer.build(self.model.trainable_variables)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.lr_scale = tf.Variable(1.0, dtype=tf.float32, trainable=False, name="lr_scale")
            self.best_val = tf.Variable(-1.0, dtype=tf.float32, trainable=False, name="best_val")
            self.plateau_wait = tf.Variable(0, dtype=tf.int64, trainable=False, name="wait")
            self.loss_sum = tf.Variable(0.0, dtype=tf.float32, trainable=False,
                                        synchronization=tf.VariableSynchronization.ON_READ,
                                        aggregation=tf.VariableAggregation.SUM)
            self.correct_sum = tf.Variable(0.0, dtype=tf.float32, trainable=False,
                                           synchronization=tf.VariableSynchronization.ON_READ,
                                           aggregation=tf.VariableAggregation.SUM)
            # The optimizer step at which a loss, a gradient or the updated state (weights,
            # optimizer slots) first held a non-finite value, agreed by every replica; -1:
            # never. Not checkpointed: no checkpoint is written once it is set.
            self.nonfinite_at = tf.Variable(-1, dtype=tf.int64, trainable=False,
                                            name="nonfinite_at")
            self.nonfinite_kind = tf.Variable(0, dtype=tf.int64, trainable=False,
                                              name="nonfinite_kind")
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, epoch=self.epoch,
            step=self.step_in_epoch, lr_scale=self.lr_scale, best_val=self.best_val,
            plateau_wait=self.plateau_wait, loss_sum=self.loss_sum, correct_sum=self.correct_sum,
            # Dropout's random state, so a resumed run draws the same masks as an unbroken one.
            dropout_seeds=[layer.seed_generator.state for layer in _all_layers(self.model)
                           if isinstance(getattr(layer, "seed_generator", None),
                                         keras.random.SeedGenerator)])
        # Every worker takes part in each save (the sync-on-read sums are all-reduced), but
        # only the chief's files matter: the others write to a temporary folder, and every
        # worker restores from the chief's.
        self._scratch = None if self.is_chief else tempfile.mkdtemp(prefix="alexnet-worker-")
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self._scratch or str(self.ckpt_dir), max_to_keep=2)
        self.chief_manager = self.manager if self.is_chief else tf.train.CheckpointManager(
            self.checkpoint, str(self.ckpt_dir), max_to_keep=2)
        self._train_step = self._build_train_step()
        self._eval_step = tf.function(lambda x: self.model(x, training=False))
        if self.is_chief:
            self._remove_debris()

    # ---- set-up helpers
    def _conv1(self) -> keras.layers.Layer:
        return next(layer for layer in _all_layers(self.model) if layer.name == "conv1")

    def _whiten_conv1(self, images: int = 2048) -> None:
        """conv1's kernel from the principal components of training patches (the recipe's
        ``conv1_init: whiten``), computed from the first ``images`` training images as
        evaluation sees them (normalized, centre view)."""
        conv1 = self._conv1()
        batches, count = [], 0
        for x, _ in self.datasets.evaluation("train"):
            batches.append(x)
            count += len(x)
            if count >= images:
                break
        x = tf.concat(batches, 0)[:images]
        if x.shape[1] != self.preset.image_size:
            x = tf.image.resize(x, (self.preset.image_size, self.preset.image_size))
        kernel = whitening_kernel(x.numpy(), self.preset.conv1_kernel, self.preset.conv1_filters,
                                  seed=self.config.seed)
        # With its towers placed on two devices, conv1 is a TowerConv2D: one Conv2D per
        # tower, each holding its share of the filters.
        convs = getattr(conv1, "convs", [conv1])
        for conv, part in zip(convs, np.split(kernel, len(convs), axis=-1)):
            conv.kernel.assign(tf.cast(part, conv.kernel.dtype))
            conv.bias.assign(tf.zeros_like(conv.bias))


    def _check_existing_config(self) -> None:
        saved = self.run.saved_config()
        if not saved:
            return
        mine = self.config.to_dict()
        # Where and how it runs may change between restarts; what it trains may not.
        runtime = ("run_dir", "checkpoint_every", "strategy", "keep_epochs")
        differ = sorted(k for k in mine if k not in runtime and saved.get(k, mine[k]) != mine[k])
        if differ:
            detail = ", ".join(f"{k}: saved {saved.get(k)!r}, now {mine[k]!r}" for k in differ)
            raise ValueError(
                f"{self.run_dir} holds a run with a different configuration ({detail}). "
                f"Resume it with the same arguments, or pass a new --run-dir.")

    def _remove_debris(self) -> None:
        """Remove what crashed writers left: temporary files of the run folder, checkpoint
        files being written (``ckpt-N_temp``) and checkpoints outside the index."""
        removed = (remove_debris(self.run_dir, RUN_FILES)
                   + remove_debris(self.ckpt_dir, MODEL_FILES))
        if self.ckpt_dir.is_dir():
            indexed = {Path(p).name for p in self.chief_manager.checkpoints}
            for entry in self.ckpt_dir.iterdir():
                match = re.fullmatch(r"(ckpt-\d+)(_temp|\.index|\.data-\d+-of-\d+)", entry.name)
                if match and (match[2] == "_temp" or match[1] not in indexed):
                    remove_path(entry)
                    removed.append(entry)
        if removed:
            names = ", ".join(p.name for p in removed[:4]) + (", ..." if len(removed) > 4 else "")
            self._say(f"Removed {len(removed)} file(s) left by an interrupted run: {names}")

    # ---- the step
    def _build_train_step(self) -> Callable:
        recipe, model, optimizer = self.recipe, self.model, self.optimizer
        num_classes = self.preset.num_classes
        global_batch = float(recipe.batch_size)
        decay = recipe.weight_decay if recipe.optimizer != "adamw" else 0.0
        decayed = [v for v in model.trainable_variables if "kernel" in v.path]
        decayed_ids = {id(v) for v in decayed}
        scaled = recipe.precision == "mixed_float16"

        def replica_step(x, y):
            with tf.GradientTape() as tape:
                probs = model(x, training=True)
                target = tf.one_hot(y, num_classes)
                if recipe.label_smoothing:
                    smoothing = recipe.label_smoothing
                    target = target * (1 - smoothing) + smoothing / num_classes
                per_example = keras.losses.categorical_crossentropy(target, probs)
                loss = tf.reduce_sum(per_example) / global_batch
                scaled_loss = optimizer.scale_loss(loss) if scaled else loss
            variables = model.trainable_variables
            grads = tape.gradient(scaled_loss, variables)
            if decay:
                grads = [g + decay * tf.cast(v, g.dtype) if id(v) in decayed_ids else g
                         for g, v in zip(grads, variables)]
            optimizer.apply_gradients(zip(grads, variables))
            correct = tf.cast(tf.equal(tf.argmax(probs, -1, output_type=tf.int32),
                                       tf.cast(y, tf.int32)), tf.float32)
            self.loss_sum.assign_add(tf.reduce_sum(per_example))
            self.correct_sum.assign_add(tf.reduce_sum(correct))
            # Where divergence starts: the loss and gradients (a loss-scaled float16 step
            # skips non-finite gradients itself), then every weight and optimizer slot after
            # the update -- an update can overflow the state while the loss is still finite.
            inputs_bad = tf.logical_not(_all_finite([loss] + ([] if scaled else grads)))
            state_bad = tf.logical_not(_all_finite(_float_state(model, optimizer)))
            return tf.stack([tf.cast(inputs_bad, tf.float32), tf.cast(state_bad, tf.float32)])

        # XLA compiles the replica's computation; the iterator stays outside it.
        replica = (tf.function(replica_step, jit_compile=True) if recipe.jit_compile
                   else replica_step)
        strategy = self.strategy
        nonfinite_at, nonfinite_kind = self.nonfinite_at, self.nonfinite_kind

        def step(iterator):
            x, y = next(iterator)
            flags = strategy.run(replica, args=(x, y))
            # Summed over the replicas (and workers), so that all of them agree.
            flags = strategy.reduce(tf.distribute.ReduceOp.SUM, flags, axis=None)
            first = tf.logical_and(tf.reduce_any(flags > 0), nonfinite_at < 0)
            kind = tf.where(flags[0] > 0, tf.constant(1, tf.int64), tf.constant(2, tf.int64))
            nonfinite_at.assign(tf.where(first, tf.cast(optimizer.iterations, tf.int64),
                                         nonfinite_at))
            nonfinite_kind.assign(tf.where(first, kind, nonfinite_kind))

        return tf.function(step)

    def _set_lr(self, global_step: int) -> float:
        lr = (learning_rate_at(self.recipe, global_step, self.steps_per_epoch)
              * float(self.lr_scale.numpy()))
        lr = max(lr, self.recipe.min_learning_rate) if self.recipe.schedule == "plateau" else lr
        self._inner_optimizer.learning_rate.assign(lr)
        return lr

    # ---- evaluation
    @contextlib.contextmanager
    def averaged_weights(self) -> Iterator[keras.Model]:
        """The model with the moving average of its weights in place (the recipe's ``ema``;
        without one, the weights as they are), and its own weights back afterwards."""
        if not self._inner_optimizer.use_ema:
            yield self.model
            return
        variables = self.model.trainable_variables
        own = [v.numpy() for v in variables]
        self._inner_optimizer.finalize_variable_values(variables)  # Keras: the average in place
        try:
            yield self.model
        finally:
            for variable, value in zip(variables, own):
                variable.assign(value)

    @property
    def _inner_optimizer(self) -> keras.optimizers.Optimizer:
        """The optimizer itself, inside float16's loss scaling where there is one."""
        return getattr(self.optimizer, "inner_optimizer", self.optimizer)

    def evaluate_split(self, dataset: tf.data.Dataset) -> dict[str, float]:
        """Loss and accuracy over every example of ``dataset`` (no augmentation, no dropout;
        the moving average of the weights where the recipe keeps one)."""
        with self.averaged_weights():
            probs, labels = predict_probabilities(self.model, dataset, self._eval_step)
        metrics = classification_metrics(probs, labels, self.datasets.class_names)
        return {"loss": metrics["test_loss"], "accuracy": metrics["test_top1"]}

    # ---- the loop
    def restore(self) -> bool:
        """Restore the newest readable checkpoint, if any. Returns whether one was found.

        A checkpoint whose files were damaged after they were written (truncated, altered)
        is reported and skipped for the one before it.

        Raises:
            ValueError: when checkpoints exist but none can be read.
        """
        candidates = list(reversed(self.chief_manager.checkpoints))
        for i, prefix in enumerate(candidates):
            try:
                self.checkpoint.restore(prefix).assert_existing_objects_matched()
                return True
            except Exception as error:  # noqa: BLE001  (any damage: report, try the older one)
                reason = str(error).splitlines()[0][:200]
                self._say(f"warning: checkpoint {prefix} cannot be read ({reason})"
                          + ("; trying the previous one." if i + 1 < len(candidates) else "."))
        if candidates:
            raise ValueError(
                f"No checkpoint in {self.ckpt_dir} can be read ({', '.join(candidates)}). "
                f"Move the folder aside to start over, or pass a new --run-dir.")
        return False

    def _save(self) -> None:
        self._check_state()
        self.manager.save(checkpoint_number=int(self.optimizer.iterations.numpy()))

    def _write_run_files(self) -> None:
        if not self.is_chief:
            return
        self.run.write_config(self.config)
        self.run.write_normalization(self.datasets.normalization)
        self.run.write_resolved(
            {"preset": self.preset.to_dict(), "recipe": self.recipe.to_dict(),
             "data": {"source": self.datasets.source, "fingerprint": self.datasets.fingerprint,
                      "classes": list(self.datasets.class_names),
                      "train": self.datasets.size("train"), "val": self.datasets.size("val"),
                      "test": self.datasets.size("test"), "skipped": len(self.datasets.skipped)},
             "precision": {"requested": self.requested_precision,
                           "chosen": self.recipe.precision, "reason": self.precision_reason,
                           "cpu_bfloat16_flags": cpu_bfloat16_flags()},
             "tensorflow": tf.__version__, "keras": keras.__version__,
             "devices": [d.name for d in tf.config.list_logical_devices()]})

    def devices_line(self) -> str:
        """One line: where the run computes and in which precision, and why."""
        replicas = self.strategy.num_replicas_in_sync
        try:
            devices = sorted({name.split("device:")[-1]
                              for name in self.strategy.extended.worker_devices})
        except RuntimeError:  # the default strategy: TensorFlow's placement, GPU first
            gpus = tf.config.list_logical_devices("GPU")
            devices = [gpus[0].name.split("device:")[-1] if gpus else "CPU:0"]
        placed = (f"; towers on {', '.join(self.config.tower_devices)}"
                  if self.config.tower_devices else "")
        return (f"Devices: {', '.join(devices)} ({replicas} replica{'s' * (replicas > 1)}"
                f"{placed}); precision {self.recipe.precision} ({self.precision_reason}).")

    def inference_model(self) -> keras.Model:
        """The model behind the layer that carries its preprocessing, as it is saved."""
        return inference_model(self.model, self.datasets.preprocessing(self.recipe.eval_views),
                               preset=self.preset.to_dict(), recipe=self.recipe.name,
                               run_dir=str(self.run_dir))

    def fit(self) -> list[dict[str, Any]]:
        """Train (or resume) to the recipe's last epoch. Returns the history rows.

        The run folder's lock is released when it returns or fails.

        Raises:
            TrainingDiverged: when a loss, gradient, weight or optimizer slot became
                non-finite (the checkpoints on disk hold the state before it).
        """
        try:
            return self._fit()
        finally:
            self.close()

    def _fit(self) -> list[dict[str, Any]]:
        resumed = self.restore()
        self._write_run_files()
        history = [r for r in self.run.read_history() if r["epoch"] < int(self.epoch.numpy())] \
            if resumed else []
        writer = tf.summary.create_file_writer(str(self.run.tensorboard)) \
            if self.is_chief else tf.summary.create_noop_writer()
        epochs, steps = self.recipe.epochs, self.steps_per_epoch
        if resumed and int(self.epoch.numpy()) >= epochs:
            self._say(f"{self.run_dir} has finished its {epochs} epochs; nothing to train "
                      f"(pass a new --run-dir for a new run).")
        elif resumed:
            self._say(f"Resuming {self.run_dir} at epoch {int(self.epoch.numpy()) + 1}, step "
                      f"{int(self.step_in_epoch.numpy())} (optimizer step "
                      f"{int(self.optimizer.iterations.numpy())}).")
        else:
            self._say(f"Training {self.preset.name!r} with recipe {self.recipe.name!r} on "
                      f"{self.datasets.source}: {self.datasets.size('train')} training images, "
                      f"{self.datasets.size('val')} validation, {epochs} epochs of {steps} steps "
                      f"-> {self.run_dir}")
        if int(self.epoch.numpy()) < epochs:
            self._say(self.devices_line())
        while int(self.epoch.numpy()) < epochs:
            epoch, start_step = int(self.epoch.numpy()), int(self.step_in_epoch.numpy())
            started = time.time()
            if start_step == 0:
                self.loss_sum.assign(0.0)
                self.correct_sum.assign(0.0)
            dataset = distribute_batches(
                self.strategy, lambda: self.datasets.train(epoch, start_step)) \
                if self.strategy.num_replicas_in_sync > 1 \
                else self.datasets.train(epoch, start_step)
            iterator = iter(dataset)
            progress = _Progress(epoch, epochs, steps, start_step, self.log)
            lr = 0.0
            for step in range(start_step, steps):
                lr = self._set_lr(epoch * steps + step)
                self._train_step(iterator)
                self.step_in_epoch.assign(step + 1)
                seen = (step + 1) * self.recipe.batch_size
                every = self.config.checkpoint_every
                if (step + 1) % progress.every == 0 or (step + 1) % every == 0:
                    loss = float(self.loss_sum.read_value()) / seen
                    self._check_finite(loss, epoch, step)
                    progress.update(step + 1, loss, float(self.correct_sum.read_value()) / seen)
                    if (step + 1) % self.config.checkpoint_every == 0 and step + 1 < steps:
                        self._save()
            seen = steps * self.recipe.batch_size
            train_loss = float(self.loss_sum.read_value()) / seen
            self._check_finite(train_loss, epoch, steps - 1)
            train_acc = float(self.correct_sum.read_value()) / seen
            progress.update(steps, train_loss, train_acc, final=True)
            row = {"epoch": epoch, "loss": train_loss, "accuracy": train_acc,
                   "val_loss": None, "val_accuracy": None, "lr": lr}
            val = self.datasets.val()
            if val is not None:
                scores = self.evaluate_split(val)
                row.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
                self._say(f"  validation loss {scores['loss']:.4f} "
                          f"accuracy {scores['accuracy']:.4f}")
            row["seconds"] = round(time.time() - started, 2)
            self._end_of_epoch(row)
            history = [r for r in history if r["epoch"] < epoch] + [row]
            if self.is_chief:
                self.run.write_history(history)
                with writer.as_default(step=epoch + 1):
                    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
                        if row[key] is not None:
                            tf.summary.scalar(key, row[key])
                writer.flush()
            self.epoch.assign(epoch + 1)
            self.step_in_epoch.assign(0)
            self._save()
            if self.is_chief:
                for hook in self.on_epoch_end:
                    hook(row, history)
        if self.is_chief and not self.run.model("last").exists():
            self._export(best=not self.run.model("best").exists())
        # As Keras' fit leaves it: the model holds the average it was evaluated and saved with.
        self._inner_optimizer.finalize_variable_values(self.model.trainable_variables)
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
        return history

    def _end_of_epoch(self, row: dict[str, Any]) -> None:
        metric = row["val_accuracy"] if row["val_accuracy"] is not None else row["accuracy"]
        improved = metric > float(self.best_val.numpy())
        if improved:
            self.best_val.assign(metric)
            self.plateau_wait.assign(0)
        else:
            self.plateau_wait.assign_add(1)
            patience = self.recipe.plateau_patience
            if self.recipe.schedule == "plateau" and int(self.plateau_wait.numpy()) >= patience:
                self.lr_scale.assign(self.lr_scale * self.recipe.plateau_factor)
                self.plateau_wait.assign(0)
                self._say(f"  validation accuracy has not improved for {patience}"
                          f" epochs: learning rate x{self.recipe.plateau_factor}")
        if self.is_chief:
            self._export(best=improved, epoch=row["epoch"] + 1 if self.config.keep_epochs
                         else None)

    def _export(self, best: bool, epoch: int | None = None) -> None:
        self._check_state()
        with self.averaged_weights():
            model = self.inference_model()
            save_model(model, self.run.model("last"))
            if best:
                save_model(model, self.run.model("best"))
            if epoch is not None:
                save_model(model, self.run.epoch_model(epoch))

    def _check_finite(self, loss: float, epoch: int, step: int) -> None:
        if not math.isfinite(loss):
            self._check_state()  # names the step where it started, when the step saw it
            self._diverged(f"The training loss became {loss} at epoch {epoch + 1}, step "
                           f"{step + 1}.")
        self._check_state()

    def _check_state(self) -> None:
        """Raise :class:`TrainingDiverged` once any step has seen a non-finite loss,
        gradient, weight or optimizer slot: nothing is saved after that."""
        at = int(self.nonfinite_at.numpy())
        if at < 0:
            return
        epoch, step = divmod(at - 1, self.steps_per_epoch)
        where = f"at optimizer step {at} (epoch {epoch + 1}, step {step + 1})"
        if int(self.nonfinite_kind.numpy()) == 1:
            self._diverged(f"The loss or its gradients became non-finite (NaN or infinite) "
                           f"{where}.")
        bad = [v.path for v in _float_state(self.model, self.optimizer)
               if not np.isfinite(np.asarray(v.numpy(), np.float64)).all()]
        named = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        self._diverged(f"The update {where} left non-finite values in the model or optimizer "
                       f"state ({named or 'since restored'}) while the loss was still finite.")

    def _diverged(self, what: str) -> None:
        latest = self.chief_manager.latest_checkpoint
        kept = (f"the last good checkpoint ({latest}) is kept" if latest else
                "no checkpoint had been written yet")
        raise TrainingDiverged(
            f"{what} Training stopped: {kept}, and nothing non-finite was saved. Lower the "
            f"learning rate (--set learning_rate=...) or check the data.")

    def _say(self, text: str) -> None:
        if self.is_chief:
            print(text, file=self.log, flush=True)


def train(config: TrainConfig | None = None, *, on_epoch_end: Sequence[Callable] = (),
          **kwargs) -> Trainer:
    """Train (or resume) a run; returns the :class:`Trainer` (its ``run_dir``, ``model``...).

    ``train(preset="cifar", recipe="cpu", data="cifar10", recipe_overrides={"epochs": 2})``
    """
    config = config or TrainConfig(**kwargs)
    trainer = Trainer(config, on_epoch_end=on_epoch_end)
    trainer.fit()
    return trainer
