"""Recipes, the training loop, crash-safe checkpoints and run folders.

One loop serves every case: a ``tf.function`` train step run by ``strategy.run`` under the
default strategy, ``MirroredStrategy`` or ``MultiWorkerMirroredStrategy`` (Keras 3
``model.fit`` fails under the last one in TF 2.21). Loss, accuracy, progress, history and
checkpoints belong to the loop.

Crash safety: the resume state (model, optimizer with its step counter, epoch, step within
the epoch, the plateau schedule's state, the best validation accuracy) is a
``tf.train.Checkpoint`` managed by ``tf.train.CheckpointManager``, which writes to new files
and then replaces its index in one rename, so a ``kill -9`` at any moment leaves the
previous checkpoint loadable. Because the data pipeline's shuffling and augmentation are
derived from ``(seed, epoch, step)``, a resumed run continues with exactly the batches the
uninterrupted run would have seen, and ends after the same number of optimizer steps.
The ``.keras`` models for inference (``best.keras``, ``last.keras``) and every text file of
the run folder are written to a temporary name and renamed into place.

Run folder::

    <run_dir>/config.yaml         the resolved configuration (rerun with train --config)
    <run_dir>/history.csv         epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds
    <run_dir>/checkpoints/        ckpt-* (resume) + best.keras, last.keras (inference)
    <run_dir>/tensorboard/        scalars per epoch
    <run_dir>/metrics.json        written by evaluate()
"""

from __future__ import annotations

from . import quiet  # noqa: F401, I001  (first: hides TensorFlow's start-up lines)

import csv
import dataclasses
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
import yaml

from .checks import check_bool, check_choice, check_float, check_int
from .data.pipeline import (NORMALIZATIONS, VIEWS, Augment, Datasets, Normalization,
                            data_fingerprint, load_source, make_datasets, resolve_source)
from .distribute import check_devices, distribute_batches, make_strategy
from .errors import TrainingDiverged
from .files import FolderLock, remove_debris, remove_path, temp_name, write_atomic
from .layers import InferenceInfo
from .metrics import classification_metrics, predict_probabilities
from .model import Preset, build_alexnet, get_preset
from .paths import PROJECT_ROOT

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "plateau", "onecycle", "cosine")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


# CPU flags of native bfloat16 arithmetic (AVX512-BF16, Intel AMX); see choose_precision.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (empty where there is no such file)."""
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def choose_precision(precision: str, *, gpus: int, flags: frozenset[str] | set[str],
                     measure: Callable[[], float] | None = None) -> tuple[str, str]:
    """``(precision, reason)``: ``auto`` decided by the devices and the CPU.

    * A GPU: ``mixed_bfloat16`` (tensor cores, no loss scaling).
    * A CPU without bfloat16 arithmetic (neither ``avx512_bf16`` nor ``amx_bf16`` among its
      flags): ``float32``; bfloat16 is emulated there, 10x slower.
    * A CPU with it: measured, because the flag does not settle it (docs/benchmarks.md:
      1.54x float32's speed on an AMD EPYC with ``avx512_bf16``, 0.63x on an Intel Xeon
      with ``avx512_bf16`` and no AMX). ``measure()`` returns bfloat16's speed as a multiple
      of float32's; ``mixed_bfloat16`` is chosen when it is at least 1.1.

    Other values are returned as they are.
    """
    if precision != "auto":
        return precision, "asked for"
    if gpus:
        return "mixed_bfloat16", f"auto: {gpus} GPU(s), bfloat16 on tensor cores"
    native = [flag for flag in BF16_CPU_FLAGS if flag in flags]
    if not native:
        return "float32", ("auto: the CPU has no bfloat16 arithmetic (neither "
                           f"{' nor '.join(BF16_CPU_FLAGS)}), where bfloat16 is 10x slower")
    speedup = measure() if measure is not None else None
    if speedup is None:
        return "float32", f"auto: the CPU has {', '.join(native)}, but bfloat16 was not measured"
    chosen = "mixed_bfloat16" if speedup >= BF16_MIN_SPEEDUP else "float32"
    return chosen, (f"auto: the CPU has {', '.join(native)}; bfloat16 measured at {speedup:.2f}x "
                    f"float32's training speed on this host")


# bfloat16 must train at least this much faster than float32 to be chosen by `auto`.
BF16_MIN_SPEEDUP = 1.1


def resolve_precision(precision: str, preset: Preset | str = "cifar") -> str:
    """The precision ``precision`` means on this machine (:func:`precision_decision`)."""
    return precision_decision(precision, preset)[0]


def precision_decision(precision: str, preset: Preset | str = "cifar") -> tuple[str, str]:
    """:func:`choose_precision` for this machine's GPUs and CPU, measuring ``preset``'s
    training step in both precisions when the CPU has bfloat16 arithmetic (once per host,
    preset and TensorFlow version: the result is kept in the data folder's cache)."""
    preset = get_preset(preset) if isinstance(preset, str) else preset
    return choose_precision(precision, gpus=len(tf.config.list_logical_devices("GPU")),
                            flags=cpu_flags(), measure=lambda: bfloat16_speedup(preset))


def bfloat16_speedup(preset: Preset, *, batch_size: int = 32, steps: int = 4) -> float:
    """``mixed_bfloat16``'s training speed as a multiple of ``float32``'s for ``preset`` on
    this host: a few SGD steps on one resident random batch in each policy (best of two
    rounds). Cached in ``<data dir>/cache/precision.json``."""
    from .paths import data_dir

    cache = data_dir() / "cache" / "precision.json"
    key = "|".join([_cpu_model(), ",".join(sorted(set(BF16_CPU_FLAGS) & cpu_flags())),
                    tf.__version__, preset.name, str(preset.image_size), str(preset.towers)])
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(key), (int, float)):
        return float(known[key])
    rates = {}
    policy = keras.config.dtype_policy()
    try:
        for name in ("float32", "mixed_bfloat16"):
            keras.config.set_dtype_policy(name)
            model = build_alexnet(preset)
            model.compile(optimizer=keras.optimizers.SGD(0.001),
                          loss="sparse_categorical_crossentropy")
            rng = np.random.default_rng(0)
            x = rng.standard_normal((batch_size, *model.input_shape[1:]), dtype=np.float32)
            y = rng.integers(0, preset.num_classes, batch_size)
            model.train_on_batch(x, y)  # build and trace
            best = 0.0
            for _ in range(2):
                started = time.perf_counter()
                for _ in range(steps):
                    model.train_on_batch(x, y)
                best = max(best, steps * batch_size / (time.perf_counter() - started))
            rates[name] = best
    finally:
        keras.config.set_dtype_policy(policy)
    speedup = round(rates["mixed_bfloat16"] / rates["float32"], 3)
    if isinstance(known, dict):
        known[key] = speedup
        try:
            write_atomic(cache, json.dumps(known, indent=1))
        except OSError:
            pass  # a cache that cannot be written only costs the measurement next time
    return speedup


def _cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return "unknown CPU"


HISTORY_FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")




@dataclasses.dataclass(frozen=True)
class Recipe:
    """How to train: optimizer, schedule, batch size, epochs, augmentation, precision.

    Attributes:
        name: the recipe's name.
        description: one line on where it comes from.
        preset: the preset it is meant for (``train`` uses it when no preset is given).
        optimizer: ``sgd`` (with ``momentum``, ``nesterov``), ``adam`` or ``adamw``.
        learning_rate: the base (``constant``, ``plateau``) or peak (``onecycle``,
            ``cosine``) learning rate.
        weight_decay: the paper's L2 weight decay, added to the gradient of every
            kernel before the optimizer (for ``adamw``: decoupled decay).
        schedule: ``constant``; ``plateau`` (divide by ``plateau_factor`` when validation
            accuracy has not improved for ``plateau_patience`` epochs, as the paper did by
            hand); ``onecycle`` (linear warm-up over ``warmup_epochs``, then linear decay to
            zero); ``cosine`` (warm-up, then cosine decay to zero).
        label_smoothing: mass moved from the true class to the others.
        augment: training augmentation (see ``Augment.from_value``).
        precision: ``auto`` (see :func:`resolve_precision`), ``float32``, ``mixed_bfloat16``
            or ``mixed_float16`` (with loss scaling).
        jit_compile: compile the train step with XLA.
        normalization: ``channel`` (mean/std per channel) or ``mean_image`` (the paper's).
        resize_in_model: for upsampled inputs, move stored-size images and resize in the
            model's first layer instead of in the data pipeline.
        dropout: the dropout rate of fc6/fc7 for this recipe (``None``: the preset's, 0.5);
            a ``--set dropout=...`` on the command line still wins.
        image_size: the input size this recipe trains at (``None``: the preset's); e.g. 24
            crops of CIFAR's 32x32 images. ``--set image_size=...`` still wins.
        eval_views: the test-time views of the evaluation after training: ``center``,
            ``flip`` (each image and its mirror image, probabilities averaged) or ``tta``
            (the paper's 10 views). ``evaluate --views`` picks others later.
    """

    name: str
    description: str
    preset: str
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 10
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    plateau_factor: float = 0.1
    plateau_patience: int = 2
    min_learning_rate: float = 1e-6
    label_smoothing: float = 0.0
    augment: str = "crop,flip"
    precision: str = "auto"
    jit_compile: bool = False
    normalization: str = "channel"
    resize_in_model: bool = False
    dropout: float | None = None
    image_size: int | None = None
    eval_views: str = "center"

    def replace(self, **overrides) -> "Recipe":
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"Unknown recipe field(s) {unknown}: choose from {sorted(names)}.")
        return dataclasses.replace(self, **overrides).validate()

    def validate(self) -> "Recipe":
        """Check every field; return the recipe with its values in their proper types
        (``1`` -> ``1.0`` for a rate, ``"1e-3"`` -> ``0.001``), or raise one ``ValueError``
        naming the recipe, the field and the value received."""
        try:
            values = dict(
                optimizer=check_choice("optimizer", self.optimizer, OPTIMIZERS),
                learning_rate=check_float("learning_rate", self.learning_rate, 0.0, min_open=True),
                momentum=check_float("momentum", self.momentum, 0.0, 1.0, max_open=True),
                nesterov=check_bool("nesterov", self.nesterov),
                weight_decay=check_float("weight_decay", self.weight_decay, 0.0),
                batch_size=check_int("batch_size", self.batch_size, 1),
                epochs=check_int("epochs", self.epochs, 1),
                schedule=check_choice("schedule", self.schedule, SCHEDULES),
                plateau_factor=check_float("plateau_factor", self.plateau_factor, 0.0, 1.0,
                                           min_open=True, max_open=True),
                plateau_patience=check_int("plateau_patience", self.plateau_patience, 1),
                min_learning_rate=check_float("min_learning_rate", self.min_learning_rate, 0.0),
                label_smoothing=check_float("label_smoothing", self.label_smoothing, 0.0, 1.0,
                                            max_open=True),
                precision=check_choice("precision", self.precision, PRECISIONS),
                jit_compile=check_bool("jit_compile", self.jit_compile),
                normalization=check_choice("normalization", self.normalization, NORMALIZATIONS),
                resize_in_model=check_bool("resize_in_model", self.resize_in_model),
                dropout=check_float("dropout", self.dropout, 0.0, 1.0, max_open=True,
                                    allow_none=True),
                image_size=check_int("image_size", self.image_size, 1, allow_none=True),
                eval_views=check_choice("eval_views", self.eval_views, VIEWS),
            )
            values["warmup_epochs"] = check_float("warmup_epochs", self.warmup_epochs, 0.0,
                                                  float(values["epochs"]))
            Augment.from_value(self.augment)
        except ValueError as error:
            raise ValueError(f"Recipe {self.name!r}: {error}") from None
        return dataclasses.replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RECIPES: dict[str, Recipe] = {
    "seed": Recipe(
        name="seed",
        description="The seed's CIFAR-10 experiment: Adam, lr 5e-5, batch 64, 18 epochs, "
                    "images upsampled to the model's input, no augmentation.",
        preset="seed", optimizer="adam", learning_rate=5e-5, batch_size=64, epochs=18,
        schedule="constant", augment="none"),
    "paper": Recipe(
        name="paper",
        description="The paper's (Section 5): SGD, momentum 0.9, weight decay 5e-4, batch 128, "
                    "lr 0.01 divided by 10 when validation accuracy stops improving; random "
                    "crops, flips and PCA colour jitter; the mean image subtracted.",
        preset="paper", optimizer="sgd", learning_rate=0.01, momentum=0.9, weight_decay=5e-4,
        batch_size=128, epochs=90, schedule="plateau", plateau_factor=0.1, plateau_patience=2,
        augment="crop,flip,pca", normalization="mean_image"),
    "cpu": Recipe(
        name="cpu",
        description="The default for the cifar preset on a CPU: AdamW (lr 2e-3, decay 0.2), "
                    "batch 32, a one-cycle learning rate over 9 epochs, label smoothing 0.1, "
                    "random flips (no crops: a short schedule underfits with them), no dropout, "
                    "test images averaged with their mirror images; chosen by measurement "
                    "(docs/benchmarks.md) to finish inside 30 minutes on 2 cores.",
        preset="cifar", optimizer="adamw", learning_rate=2e-3, weight_decay=0.2,
        batch_size=32, epochs=9, schedule="onecycle", warmup_epochs=0.5,
        label_smoothing=0.1, augment="flip", dropout=0.0, eval_views="flip"),
}


def get_recipe(recipe: str | Recipe = "cpu", **overrides) -> Recipe:
    """A named recipe with ``overrides`` applied (unknown names raise ``ValueError``)."""
    if isinstance(recipe, Recipe):
        return recipe.replace(**overrides) if overrides else recipe.validate()
    if recipe not in RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}: choose from {sorted(RECIPES)}.")
    return RECIPES[recipe].replace(**overrides)


# ----------------------------------------------------------------------------- config

@dataclasses.dataclass
class TrainConfig:
    """Everything a run needs; saved as ``config.yaml`` and compared on resume."""

    preset: str = "cifar"
    preset_overrides: dict = dataclasses.field(default_factory=dict)
    recipe: str = "cpu"
    recipe_overrides: dict = dataclasses.field(default_factory=dict)
    data: str = "cifar10"
    val_size: int = 5000
    train_subset: int | None = None
    test_subset: int | None = None
    seed: int = 0
    run_dir: str | None = None
    skip_corrupt: bool = False
    checkpoint_every: int = 200  # optimizer steps between resume checkpoints (and every epoch)
    strategy: str = "auto"  # tf.distribute strategy (distribute.STRATEGIES)
    tower_devices: list | None = None  # run the two towers on these two devices

    def validate(self) -> "TrainConfig":
        """Check every field with its type and range (and the preset and recipe they
        resolve to), in place; raise one ``ValueError`` naming the first bad value."""
        from .distribute import STRATEGIES

        self.val_size = check_int("val_size", self.val_size, 0)
        self.train_subset = check_int("train_subset", self.train_subset, 1, allow_none=True)
        self.test_subset = check_int("test_subset", self.test_subset, 1, allow_none=True)
        self.seed = check_int("seed", self.seed, 0)
        self.checkpoint_every = check_int("checkpoint_every", self.checkpoint_every, 1)
        self.skip_corrupt = check_bool("skip_corrupt", self.skip_corrupt)
        self.strategy = check_choice("strategy", self.strategy, STRATEGIES)
        if not isinstance(self.data, (str, os.PathLike)) or not str(self.data).strip():
            raise ValueError(f"`data` must be 'cifar10' or a path. Received: data={self.data!r}")
        if self.tower_devices is not None and (
                not isinstance(self.tower_devices, (list, tuple)) or len(self.tower_devices) != 2
                or not all(isinstance(d, str) and d for d in self.tower_devices)):
            raise ValueError(f"`tower_devices` names two devices, e.g. ['/GPU:0', '/GPU:1']. "
                             f"Received: tower_devices={self.tower_devices!r}")
        for name in ("preset_overrides", "recipe_overrides"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"`{name}` must be a mapping of field names to values. "
                                 f"Received: {name}={getattr(self, name)!r}")
        self.resolved_preset()  # the preset and the recipe, with their overrides
        return self

    def resolved_recipe(self) -> Recipe:
        return get_recipe(self.recipe, **self.recipe_overrides)

    def resolved_preset(self, num_classes: int | None = None) -> Preset:
        overrides = dict(self.preset_overrides)
        recipe = self.resolved_recipe()
        for field in ("dropout", "image_size"):
            if getattr(recipe, field) is not None:
                overrides.setdefault(field, getattr(recipe, field))
        if num_classes is not None:
            overrides.setdefault("num_classes", num_classes)
        return get_preset(self.preset, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def build_datasets(config: TrainConfig, normalization: Normalization | None = None, *,
                   run_dir: Path | None = None, **kwargs) -> Datasets:
    """The run's :class:`Datasets`; the preset's ``num_classes`` follows the data unless the
    configuration overrides it.

    Args:
        run_dir: a run folder whose recorded data these must be (checked as soon as the
            data is loaded, before anything depends on its size).
    """
    recipe = config.resolved_recipe()
    loaded = load_source(config.data, skip_corrupt=config.skip_corrupt)
    fingerprint = data_fingerprint(loaded[0], loaded[1])
    if run_dir is not None:
        check_run_data(run_dir, fingerprint, config.data)
    preset = config.resolved_preset(num_classes=len(loaded[1]))
    options = dict(batch_size=recipe.batch_size, val_size=config.val_size,
                   train_subset=config.train_subset, test_subset=config.test_subset,
                   augment=recipe.augment, normalization=normalization or recipe.normalization,
                   seed=config.seed, resize_in_model=recipe.resize_in_model)
    options.update(kwargs)
    return make_datasets(config.data, preset, loaded=loaded, fingerprint=fingerprint, **options)


def default_run_dir(config: TrainConfig) -> Path:
    """``runs/<preset>-<recipe>`` under the project: the same command finds the same run."""
    return PROJECT_ROOT / "runs" / f"{config.preset}-{config.recipe}"


def save_model_atomic(model: keras.Model, path: Path) -> None:
    """``model.save`` to a temporary ``.keras`` file, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path, ".keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_if_only_lock(folder: Path) -> None:
    """Remove a folder this process created when a failed start left only its lock in it."""
    try:
        if {p.name for p in folder.iterdir()} <= {".lock"}:
            shutil.rmtree(folder)
    except OSError:
        pass


def recorded_data(run_dir: Path) -> dict[str, Any]:
    """The ``data`` section of a run's ``resolved.yaml`` (source, fingerprint, classes...);
    empty for a run folder without one."""
    path = Path(run_dir) / "resolved.yaml"
    if not path.exists():
        return {}
    return (yaml.safe_load(path.read_text()) or {}).get("data") or {}


def check_run_data(run_dir: Path, fingerprint: str, source: str) -> None:
    """Raise one ``ValueError`` when data with ``fingerprint`` (read from ``source``) is not
    the data the run in ``run_dir`` was trained on; runs without a record pass."""
    recorded = recorded_data(run_dir)
    expected = recorded.get("fingerprint")
    if expected and fingerprint and expected != fingerprint:
        raise ValueError(
            f"{source} does not hold the data {run_dir} was trained on: its images or "
            f"classes differ (fingerprint {fingerprint}, the run's {expected}, recorded from "
            f"{recorded.get('source')}). Point --data at the run's data, or train a new run "
            f"(a new --run-dir) on this one.")


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "history.csv"
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [{k: (int(v) if k == "epoch" else float(v) if v not in ("", None) else None)
                 for k, v in row.items()} for row in csv.DictReader(handle)]


def _write_history(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in HISTORY_FIELDS})
    write_atomic(run_dir / "history.csv", buffer.getvalue())


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


def inference_model(model: keras.Model, info: dict[str, Any]) -> keras.Model:
    """``model`` behind an :class:`InferenceInfo` layer that carries class names, sizes and
    normalization inside the saved ``.keras`` file."""
    shape = model.input_shape[1:]
    inputs = keras.Input(shape, name="image")
    x = InferenceInfo(info, name="inference_info")(inputs)
    return keras.Model(inputs, model(x), name=f"{model.name}_inference")


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
    if recipe.optimizer == "sgd":
        opt = keras.optimizers.SGD(learning_rate=recipe.learning_rate, momentum=recipe.momentum,
                                   nesterov=recipe.nesterov)
    elif recipe.optimizer == "adam":
        opt = keras.optimizers.Adam(learning_rate=recipe.learning_rate)
    else:
        opt = keras.optimizers.AdamW(learning_rate=recipe.learning_rate,
                                     weight_decay=recipe.weight_decay)
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
    """Builds data, model and optimizer for a :class:`TrainConfig`, and runs or resumes it.

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
        from .distribute import is_chief as chief_from_tf_config

        self.config = config.validate()
        self.on_epoch_end = list(on_epoch_end)
        recipe = config.resolved_recipe()
        precision, self.precision_reason = precision_decision(recipe.precision,
                                                              config.resolved_preset())
        self.recipe = dataclasses.replace(recipe, precision=precision)
        self.strategy = strategy or make_strategy(config.strategy)
        self.log = log or sys.stdout
        self.is_chief = chief_from_tf_config() if is_chief is None else is_chief
        self.run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ValueError(f"--run-dir {self.run_dir} is a file, not a folder: pass a folder "
                             f"path (it is created if missing).")
        self.config.run_dir = str(self.run_dir)
        self.config.data = resolve_source(config.data)
        self.ckpt_dir = self.run_dir / "checkpoints"
        created = not self.run_dir.exists()
        # One live process per run folder; the kernel drops the lock when the process dies.
        self._lock = FolderLock(self.run_dir, "run folder") if self.is_chief else None
        try:
            self._set_up(datasets)
        except BaseException:
            self.close()
            if created and self.is_chief:
                _remove_if_only_lock(self.run_dir)
            raise
        if self._lock is not None:
            weakref.finalize(self, self._lock.release)

    def close(self) -> None:
        """Release the run folder's lock (``fit`` does this when it returns or fails)."""
        if self._lock is not None:
            self._lock.release()

    def _set_up(self, datasets: Datasets | None) -> None:
        config = self.config
        # A folder with a configuration but no checkpoint holds a start that failed before
        # its first checkpoint: nothing to resume, so its files do not bind this start.
        self.resumable = (self.ckpt_dir / "checkpoint").exists()
        if config.tower_devices:
            check_devices(config.tower_devices)
        if self.resumable:
            self._check_existing_config()
        keras.utils.set_random_seed(config.seed)
        keras.config.set_dtype_policy(self.recipe.precision)

        resumed_run = self.run_dir if self.resumable else None
        if datasets is None:
            datasets = build_datasets(config, self._stored_normalization(), run_dir=resumed_run)
        elif resumed_run is not None:
            check_run_data(resumed_run, datasets.fingerprint, datasets.source)
        self.datasets = datasets
        self.preset = config.resolved_preset(self.datasets.num_classes)
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
                           if isinstance(getattr(layer, "seed_generator", None), keras.random.SeedGenerator)])
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
    def _check_existing_config(self) -> None:
        path = self.run_dir / "config.yaml"
        if not path.exists():
            return
        saved = yaml.safe_load(path.read_text()) or {}
        if isinstance(saved.get("data"), str):
            saved["data"] = resolve_source(saved["data"])
        mine = self.config.to_dict()
        # Where and how it runs may change between restarts; what it trains may not.
        runtime = ("run_dir", "checkpoint_every", "strategy")
        differ = sorted(k for k in mine if k not in runtime and saved.get(k, mine[k]) != mine[k])
        if differ:
            detail = ", ".join(f"{k}: saved {saved.get(k)!r}, now {mine[k]!r}" for k in differ)
            raise ValueError(
                f"{self.run_dir} holds a run with a different configuration ({detail}). "
                f"Resume it with the same arguments, or pass a new --run-dir.")

    def _stored_normalization(self) -> Normalization | None:
        path = self.run_dir / "normalization.json"
        if self.resumable and path.exists():
            return Normalization.from_dict(json.loads(path.read_text()))
        return None

    def _remove_debris(self) -> None:
        """Remove what crashed writers left: temporary files of the run folder, checkpoint
        files being written (``ckpt-N_temp``) and checkpoints outside the index."""
        removed = remove_debris(self.run_dir) + remove_debris(self.ckpt_dir)
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
                    target = target * (1 - recipe.label_smoothing) + recipe.label_smoothing / num_classes
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
        replica = tf.function(replica_step, jit_compile=True) if recipe.jit_compile else replica_step
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
        lr = learning_rate_at(self.recipe, global_step, self.steps_per_epoch) * float(self.lr_scale.numpy())
        lr = max(lr, self.recipe.min_learning_rate) if self.recipe.schedule == "plateau" else lr
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        inner.learning_rate.assign(lr)
        return lr

    # ---- evaluation
    def evaluate_split(self, dataset: tf.data.Dataset) -> dict[str, float]:
        """Loss and accuracy over every example of ``dataset`` (no augmentation, no dropout)."""
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
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.run_dir / "config.yaml", yaml.safe_dump(
            self.config.to_dict(), sort_keys=False))
        write_atomic(self.run_dir / "normalization.json",
                     json.dumps(self.datasets.normalization.to_dict()))
        write_atomic(self.run_dir / "resolved.yaml", yaml.safe_dump(
            {"preset": self.preset.to_dict(), "recipe": self.recipe.to_dict(),
             "data": {"source": self.datasets.source, "fingerprint": self.datasets.fingerprint,
                      "classes": list(self.datasets.class_names),
                      "train": self.datasets.size("train"), "val": self.datasets.size("val"),
                      "test": self.datasets.size("test"), "skipped": len(self.datasets.skipped)},
             "precision": {"requested": self.config.resolved_recipe().precision,
                           "chosen": self.recipe.precision, "reason": self.precision_reason,
                           "cpu_bfloat16_flags": sorted(set(BF16_CPU_FLAGS) & cpu_flags())},
             "tensorflow": tf.__version__, "keras": keras.__version__,
             "devices": [d.name for d in tf.config.list_logical_devices()]}, sort_keys=False))

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

    def info(self) -> dict[str, Any]:
        return {**self.datasets.preprocessing(), "preset": self.preset.to_dict(),
                "recipe": self.recipe.name, "eval_views": self.recipe.eval_views,
                "run_dir": str(self.run_dir)}

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
        history = [r for r in read_history(self.run_dir) if r["epoch"] < int(self.epoch.numpy())] \
            if resumed else []
        writer = tf.summary.create_file_writer(str(self.run_dir / "tensorboard")) \
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
                if self.strategy.num_replicas_in_sync > 1 else self.datasets.train(epoch, start_step)
            iterator = iter(dataset)
            progress = _Progress(epoch, epochs, steps, start_step, self.log)
            lr = 0.0
            for step in range(start_step, steps):
                lr = self._set_lr(epoch * steps + step)
                self._train_step(iterator)
                self.step_in_epoch.assign(step + 1)
                seen = (step + 1) * self.recipe.batch_size
                if (step + 1) % progress.every == 0 or (step + 1) % self.config.checkpoint_every == 0:
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
                self._say(f"  validation loss {scores['loss']:.4f} accuracy {scores['accuracy']:.4f}")
            row["seconds"] = round(time.time() - started, 2)
            self._end_of_epoch(row)
            history = [r for r in history if r["epoch"] < epoch] + [row]
            if self.is_chief:
                _write_history(self.run_dir, history)
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
        if self.is_chief and not (self.ckpt_dir / "last.keras").exists():
            self._export(best=not (self.ckpt_dir / "best.keras").exists())
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
            if self.recipe.schedule == "plateau" and int(self.plateau_wait.numpy()) >= self.recipe.plateau_patience:
                self.lr_scale.assign(self.lr_scale * self.recipe.plateau_factor)
                self.plateau_wait.assign(0)
                self._say(f"  validation accuracy has not improved for {self.recipe.plateau_patience}"
                          f" epochs: learning rate x{self.recipe.plateau_factor}")
        if self.is_chief:
            self._export(best=improved)

    def _export(self, best: bool) -> None:
        self._check_state()
        model = inference_model(self.model, self.info())
        save_model_atomic(model, self.ckpt_dir / "last.keras")
        if best:
            save_model_atomic(model, self.ckpt_dir / "best.keras")

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
