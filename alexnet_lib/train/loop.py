"""The training loop: set-up, then epochs of steps, as the recipe says.

``Trainer(config).fit()`` trains (or resumes) a run into its run folder and owns only the
run's course; each concern is a part that owns its state: the compiled step and its sums
(:class:`~.step.TrainStep`), the resume checkpoints (:class:`~.state.ResumeState`), the
learning rate, plateau and weights' average (:class:`~.schedule.Schedule`), and what the run
prints and logs (:class:`~.report.Reporter`). The step and the resume state are the
backend's; the rest is shared. The configuration is :mod:`alexnet_lib.config`'s, the files
it writes are laid out by :mod:`alexnet_lib.runs`.

Divergence stops the run where it starts (see :mod:`.step`): nothing is saved once any
loss, gradient, weight or optimizer slot was non-finite.
"""

from __future__ import annotations

from .. import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import math
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Sequence

import keras

from ..backend import backend_module
from ..config import ResolvedConfig, TrainConfig
from ..data.datasets import Datasets
from ..errors import LOSS_OR_GRADIENTS, TrainingDiverged
from ..files import FolderLock
from ..metrics import classification_metrics, predict_probabilities
from ..model import build_alexnet
from ..precision import cpu_bfloat16_flags, precision_decision
from ..run_data import build_datasets
from ..runs import RunFolder, inference_model, save_model
from .build import conv1, input_model, make_optimizer, whiten_conv1
from .finite import nonfinite_variables
from .report import Reporter, backend_info
from .schedule import Schedule

# Each backend's parts of a run (strategy, step, resume state, batches, devices line).
PARTS = {"tensorflow": ".parts_tf", "jax": ".parts_jax"}

# How a resumed run's precision is explained: the one it started in, kept.
RECORDED = "kept from the run's start"


def run_precision(run: RunFolder, resolved: ResolvedConfig, resumable: bool) -> tuple[str, str]:
    """``(precision, reason)`` of a run: a resumed run keeps the precision it started in
    (``auto`` may measure otherwise today: a lost cache, a busier host), so that it stays
    the run it was; a new one decides (:func:`alexnet_lib.precision.precision_decision`).

    Raises:
        ValueError: when the run asks for a precision other than the recorded one.
    """
    requested = resolved.recipe.precision
    record = (run.read_resolved().get("precision") or {}) if resumable else {}
    recorded = record.get("chosen")
    if not recorded:
        return precision_decision(requested, resolved.preset)
    if requested not in ("auto", recorded):
        raise ValueError(
            f"{run.path} trains in {recorded} (recorded when it started), not in the "
            f"{requested} asked for now: a run keeps one precision to resume exactly. Resume "
            f"it without --precision (or with --precision {recorded}), or pass a new "
            f"--run-dir.")
    reason = record.get("reason") or "auto"
    return recorded, (reason if reason.startswith(RECORDED) else f"{RECORDED}; {reason}")


class Trainer:
    """Builds data, model and optimizer for a :class:`~alexnet_lib.config.TrainConfig`, and
    runs or resumes it.

    Args:
        config: the run's configuration.
        strategy: a ``tf.distribute`` strategy on TensorFlow (default:
            ``make_strategy(config.strategy)``); refused on JAX.
        datasets: prebuilt :class:`Datasets` (to share data already in memory).
        log: where messages go (default stdout; progress bars only there).
        is_chief: whether this worker writes the run folder (default: from ``TF_CONFIG`` on
            TensorFlow, see :func:`alexnet_lib.distribute.is_chief`; JAX runs one process).
        on_epoch_end: callables ``f(row, history)`` run after each epoch's history row is
            written (e.g. a notebook's live learning curves).
    """

    def __init__(self, config: TrainConfig, *, strategy=None,
                 datasets: Datasets | None = None, log=None, is_chief: bool | None = None,
                 on_epoch_end: Sequence[Callable] = ()):
        resolved = config.resolve()  # checked once; settled below into self.resolved
        self.config, self.on_epoch_end = resolved.config, list(on_epoch_end)
        self.requested_precision = resolved.recipe.precision
        self.parts = backend_module(PARTS, __package__).Parts(self.config, strategy)
        self.strategy = getattr(self.parts, "strategy", None)
        self.is_chief = self.parts.is_chief() if is_chief is None else is_chief
        self.run_dir = Path(self.config.run_dir)
        self.run = RunFolder(self.run_dir)
        self.ckpt_dir = self.run.checkpoints
        self.report = Reporter(self.run.tensorboard, is_chief=self.is_chief, stream=log)
        # Nothing is written or cleaned in a folder that is not one of this project's runs.
        created = self.run.claim("--run-dir", data=self.config.data) if self.is_chief else False
        # One live process per run folder; the kernel drops the lock when the process dies.
        self._lock = FolderLock(self.run_dir, "run folder") if self.is_chief else None
        try:
            self._set_up(resolved, datasets)
        except BaseException:
            self.close()
            if created and self.is_chief:
                self.run.remove_if_only_lock()
            raise
        if self._lock is not None:
            weakref.finalize(self, self._lock.release)

    def close(self) -> None:
        """Release the run folder's lock (``fit`` does this when it returns or fails)."""
        if self._lock is not None:
            self._lock.release()

    def _set_up(self, resolved: ResolvedConfig, datasets: Datasets | None) -> None:
        config = self.config
        # A folder with a configuration but no checkpoint holds a start that failed before
        # its first checkpoint: nothing to resume, so its files do not bind this start.
        self.resumable = self.run.resumable
        if self.resumable:
            self.run.check_same_config(config)
        resolved = resolved.with_precision(*run_precision(self.run, resolved,
                                                          self.resumable))
        self.parts.check_precision(resolved.recipe.precision)
        keras.utils.set_random_seed(config.seed)
        keras.config.set_dtype_policy(resolved.recipe.precision)
        resumed = self.run if self.resumable else None
        if datasets is None:
            normalization = resumed.read_normalization() if resumed else None
            datasets, resolved = build_datasets(resolved, normalization, run=resumed)
        else:
            if resumed is not None:
                resumed.check_data(datasets.fingerprint, datasets.source)
            resolved = resolved.with_classes(datasets.num_classes)
        self.datasets, self.resolved = datasets, resolved
        replicas = self.parts.replicas
        if self.recipe.batch_size % replicas:
            raise ValueError(f"batch_size={self.recipe.batch_size} does not split evenly over "
                             f"{replicas} replicas: use a multiple of {replicas}.")
        self.steps_per_epoch = datasets.steps_per_epoch
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"batch_size={self.recipe.batch_size} is larger than the training split "
                f"({datasets.size('train')} images): pass a smaller --batch-size or use "
                f"more training images.")
        with self.parts.scope():
            self.model = input_model(build_alexnet(self.preset, tower_devices=config.tower_devices),
                                     datasets)
            if self.recipe.conv1_init == "whiten" and not self.resumable:
                whiten_conv1(self.model, datasets, self.preset, config.seed)
            if self.recipe.freeze_conv1:
                conv1(self.model).trainable = False
            self.optimizer = make_optimizer(self.recipe)
            self.optimizer.build(self.model.trainable_variables)
        self.schedule = Schedule(self.recipe, self.steps_per_epoch, self.optimizer)
        self.step = self.parts.make_step(self.model, self.optimizer, self.recipe,
                                         self.preset.num_classes)
        self.state = self.parts.make_state(self.run, self.model, self.optimizer, self.step,
                                           self.schedule, is_chief=self.is_chief,
                                           say=self.report.say)
        self._eval_step = self.parts.forward(self.model)
        if self.is_chief:
            removed = self.state.remove_debris()
            if removed:
                names = ", ".join(p.name for p in removed[:4]) + (", ..." * (len(removed) > 4))
                self.report.say(f"Removed {len(removed)} file(s) left by an interrupted run: "
                                f"{names}")

    recipe = property(lambda self: self.resolved.recipe, doc="The recipe, its precision decided.")
    preset = property(lambda self: self.resolved.preset, doc="The preset, with the data's classes.")
    precision_reason = property(lambda self: self.resolved.precision_reason)

    # ---- what the run computes and writes
    def devices_line(self) -> str:
        """One line: where the run computes and in which precision, and why."""
        return self.parts.devices_line(self.recipe.precision, self.precision_reason)

    def evaluate_split(self, dataset) -> dict[str, float]:
        """Loss and accuracy over every example of ``dataset`` (no augmentation, no dropout;
        the moving average of the weights where the recipe keeps one)."""
        self.step.sync()
        with self.schedule.averaged_weights(self.model):
            probs, labels = predict_probabilities(self.model, dataset, self._eval_step)
        metrics = classification_metrics(probs, labels, self.datasets.class_names, split="val")
        return {"loss": metrics["val_loss"], "accuracy": metrics["val_top1"]}

    def inference_model(self) -> keras.Model:
        """The model behind the layer that carries its preprocessing, as it is saved."""
        return inference_model(self.model, self.datasets.preprocessing(self.recipe.eval_views),
                               preset=self.preset.to_dict(), recipe=self.recipe.name,
                               run_dir=str(self.run_dir))

    def export(self, best: bool, epoch: int | None = None) -> None:
        """Save ``last.keras`` (and ``best.keras``; ``epoch-N.keras`` for ``epoch``), with
        the weights' average where the recipe keeps one."""
        self.check_finite()
        self.step.sync()
        with self.schedule.averaged_weights(self.model):
            model = self.inference_model()
            for path in ([self.run.model("last")] + [self.run.model("best")] * best
                         + ([self.run.epoch_model(epoch)] if epoch is not None else [])):
                save_model(model, path)

    def save(self, epoch: int, step: int) -> None:
        """A resume checkpoint at ``(epoch, step)``, once the state is known to be finite."""
        self.check_finite()
        self.state.save(epoch, step)

    def _write_run_files(self) -> None:
        data = self.datasets
        self.run.write_config(self.config)
        self.run.write_normalization(data.normalization)
        self.run.write_resolved(
            {"preset": self.preset.to_dict(), "recipe": self.recipe.to_dict(),
             "data": {"source": data.source, "fingerprint": data.fingerprint,
                      "classes": list(data.class_names), "train": data.size("train"),
                      "val": data.size("val"), "test": data.size("test"),
                      "skipped": len(data.skipped)},
             "precision": {"requested": self.requested_precision,
                           "chosen": self.recipe.precision, "reason": self.precision_reason,
                           "cpu_bfloat16_flags": cpu_bfloat16_flags()},
             "backend": backend_info()})

    # ---- the loop
    def restore(self) -> bool:
        """Restore the newest readable resume checkpoint, if any (see :class:`ResumeState`)."""
        return self.state.restore()

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
            self.report.close()
            self.close()

    def _fit(self) -> list[dict[str, Any]]:
        resumed, state, say = self.restore(), self.state, self.report.say
        if self.is_chief:
            self._write_run_files()
        history = [r for r in self.run.read_history() if r["epoch"] < state.epoch] \
            if resumed else []
        epochs, steps = self.recipe.epochs, self.steps_per_epoch
        if resumed and state.epoch >= epochs:
            say(f"{self.run_dir} has finished its {epochs} epochs; nothing to train (pass a "
                f"new --run-dir for a new run).")
        elif resumed:
            say(f"Resuming {self.run_dir} at epoch {state.epoch + 1}, step {state.step} "
                f"(optimizer step {int(keras.ops.convert_to_numpy(self.optimizer.iterations))}).")
        else:
            say(f"Training {self.preset.name!r} with recipe {self.recipe.name!r} on "
                f"{self.datasets.source}: {self.datasets.size('train')} training images, "
                f"{self.datasets.size('val')} validation, {epochs} epochs of {steps} steps "
                f"-> {self.run_dir}")
        if state.epoch < epochs:
            say(self.devices_line())
        for epoch in range(state.epoch, epochs):
            row = self._epoch(epoch, state.step if epoch == state.epoch else 0)
            history = [r for r in history if r["epoch"] < epoch] + [row]
            if self.is_chief:
                self.run.write_history(history)
            self.report.end_epoch(row)
            self.save(epoch + 1, 0)
            if self.is_chief:
                for hook in self.on_epoch_end:
                    hook(row, history)
        if self.is_chief and not self.run.model("last").exists():
            self.export(best=not self.run.model("best").exists())
        self.step.sync()
        self.schedule.finalize(self.model)
        state.close()
        return history

    def _epoch(self, epoch: int, start_step: int) -> dict[str, Any]:
        """Epoch ``epoch`` from step ``start_step``, its models saved: its history row."""
        started, steps = time.time(), self.steps_per_epoch
        batch, every = self.recipe.batch_size, self.config.checkpoint_every
        if start_step == 0:
            self.step.reset_sums()
        iterator = iter(self.parts.batches(self.datasets, epoch, start_step))
        self.report.start_epoch(epoch, self.recipe.epochs, steps, start_step)
        # The (all-reduced) sums are read every `read_every` steps: the same steps on every
        # worker of a cluster, whatever it prints.
        read_every, lr = max(1, steps // 50), 0.0
        for step in range(start_step, steps):
            lr = self.schedule.apply(epoch * steps + step)
            self.step(iterator)
            if (step + 1) % read_every == 0 or (step + 1) % every == 0:
                loss, correct = self.step.sums()
                seen = (step + 1) * batch
                self.check_finite(loss / seen, epoch, step)
                self.report.progress(step + 1, loss / seen, correct / seen)
                if (step + 1) % every == 0 and step + 1 < steps:
                    self.save(epoch, step + 1)
        loss, correct = self.step.sums()
        row = {"epoch": epoch, "loss": loss / (steps * batch),
               "accuracy": correct / (steps * batch), "val_loss": None, "val_accuracy": None,
               "lr": lr}
        self.check_finite(row["loss"], epoch, steps - 1)
        val = self.datasets.val()
        if val is not None:
            scores = self.evaluate_split(val)
            row.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        row["seconds"] = round(time.time() - started, 2)
        metric = row["val_accuracy"] if row["val_accuracy"] is not None else row["accuracy"]
        improved, message = self.schedule.end_of_epoch(metric)
        if message:
            self.report.say(message)
        if self.is_chief:
            self.export(best=improved, epoch=epoch + 1 if self.config.keep_epochs else None)
        return row

    # ---- divergence
    def check_finite(self, loss: float | None = None, epoch: int = 0, step: int = 0) -> None:
        """Raise :class:`TrainingDiverged` once the training ``loss`` is non-finite or any
        step has seen a non-finite loss, gradient, weight or optimizer slot: nothing is saved
        after that."""
        at, kind = self.step.nonfinite()
        if at >= 0:
            epoch_at, step_at = divmod(at - 1, self.steps_per_epoch)
            where = f"at optimizer step {at} (epoch {epoch_at + 1}, step {step_at + 1})"
            if kind == LOSS_OR_GRADIENTS:
                self._diverged(f"The loss or its gradients became non-finite (NaN or "
                               f"infinite) {where}.")
            self.step.sync()
            bad = nonfinite_variables(self.model, self.optimizer)
            named = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            self._diverged(f"The update {where} left non-finite values in the model or "
                           f"optimizer state ({named or 'since restored'}) while the loss was "
                           f"still finite.")
        if loss is not None and not math.isfinite(loss):
            self._diverged(f"The training loss became {loss} at epoch {epoch + 1}, step "
                           f"{step + 1}.")

    def _diverged(self, what: str) -> None:
        latest = self.state.latest
        kept = (f"the last good checkpoint ({latest}) is kept" if latest else
                "no checkpoint had been written yet")
        raise TrainingDiverged(
            f"{what} Training stopped: {kept}, and nothing non-finite was saved. Lower the "
            f"learning rate (--set learning_rate=...) or check the data.")


def train(config: TrainConfig | None = None, *, on_epoch_end: Sequence[Callable] = (),
          **kwargs) -> Trainer:
    """Train (or resume) a run; returns the :class:`Trainer` (its ``run_dir``, ``model``...).

    ``train(preset="cifar", recipe="cpu", data="cifar10", recipe_overrides={"epochs": 2})``
    """
    config = config or TrainConfig(**kwargs)
    trainer = Trainer(config, on_epoch_end=on_epoch_end)
    trainer.fit()
    return trainer
