"""The run folder: its layout, writing its files whole, and reading a run and its model back.

Every path of a run folder is spelled here, and only here::

    <run_dir>/config.yaml         the TrainConfig (rerun with the same arguments to resume)
    <run_dir>/resolved.yaml       the resolved preset and recipe, the data's fingerprint,
                                  the precision chosen and why, library versions, devices
    <run_dir>/normalization.json  the training split's statistics
    <run_dir>/history.csv         epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds
    <run_dir>/checkpoints/        ckpt-* (resume) + best.keras, last.keras (inference)
    <run_dir>/tensorboard/        scalars per epoch
    <run_dir>/metrics.json        written by evaluate
    <run_dir>/ablation.json       the ablation sweep's measures of the run (ablations.py)
    <run_dir>/figures/            the notebooks' figures (PNG)
    <run_dir>/notebooks/          notebooks executed by ``make notebooks``

Text files are written through :func:`alexnet_lib.files.write_atomic` and models through
:func:`save_model` (a temporary name, flushed, one rename), so a crash leaves the previous
file or the new one.
"""

from __future__ import annotations

from . import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import csv
import dataclasses
import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import keras
import yaml

from .config import ResolvedConfig, TrainConfig
from .data.datasets import Datasets, data_fingerprint, load_source, make_datasets, resolve_source
from .data.transforms import Normalization, Preprocessing
from .files import write_atomic, write_through
from .layers import InferenceInfo
from .paths import runs_dir, shared_cifar10_jpeg

HISTORY_FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
CHECKPOINTS = ("best", "last")


class RunFolder:
    """The files of one run folder, by name."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    config = property(lambda self: self.path / "config.yaml")
    resolved = property(lambda self: self.path / "resolved.yaml")
    normalization = property(lambda self: self.path / "normalization.json")
    history = property(lambda self: self.path / "history.csv")
    metrics = property(lambda self: self.path / "metrics.json")
    ablation = property(lambda self: self.path / "ablation.json")
    checkpoints = property(lambda self: self.path / "checkpoints")
    tensorboard = property(lambda self: self.path / "tensorboard")
    figures = property(lambda self: self.path / "figures")
    notebooks = property(lambda self: self.path / "notebooks")

    def model(self, which: str = "best") -> Path:
        """``checkpoints/best.keras`` (best validation accuracy) or ``last.keras``."""
        if which not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be 'best' or 'last'. Received: checkpoint={which!r}")
        return self.checkpoints / f"{which}.keras"

    def epoch_model(self, epoch: int) -> Path:
        """``checkpoints/epoch-N.keras``: the model after epoch ``N`` (1-based), kept when the
        run was trained with ``keep_epochs``."""
        return self.checkpoints / f"epoch-{epoch}.keras"

    @property
    def resumable(self) -> bool:
        """Whether a resume checkpoint exists (a folder with a configuration but no
        checkpoint holds a start that failed before its first one: nothing to resume)."""
        return (self.checkpoints / "checkpoint").exists()

    def require_config(self) -> None:
        """Raise ``FileNotFoundError`` unless this is a run folder (it has a config.yaml)."""
        if not self.config.is_file():
            raise FileNotFoundError(
                f"{self.path} is not a run folder (no config.yaml): pass the --run-dir of a "
                f"train command, or train into it first (python -m alexnet_lib train "
                f"--run-dir {self.path}, or notebook 03).")

    # ---- configuration
    def read_config(self) -> TrainConfig:
        """The :class:`TrainConfig` the run was trained with.

        Raises:
            FileNotFoundError: when this is not a run folder.
            ValueError: when its ``config.yaml`` cannot be read.
        """
        self.require_config()
        try:
            saved = yaml.safe_load(self.config.read_text())
            if not isinstance(saved, dict):
                raise ValueError("not a mapping")
            return TrainConfig.from_dict(saved)
        except (yaml.YAMLError, ValueError, TypeError) as error:
            raise ValueError(f"{self.config} cannot be read as a run configuration ({error}). "
                             f"Train the run again, or restore the file.") from None

    def saved_config(self) -> dict[str, Any]:
        """``config.yaml`` as a mapping (empty when there is none), its data path absolute."""
        if not self.config.exists():
            return {}
        saved = yaml.safe_load(self.config.read_text()) or {}
        if isinstance(saved.get("data"), str):
            saved["data"] = resolve_source(saved["data"])
        return saved

    def write_config(self, config: TrainConfig) -> None:
        write_atomic(self.config, yaml.safe_dump(config.to_dict(), sort_keys=False))

    def write_resolved(self, resolved: dict[str, Any]) -> None:
        write_atomic(self.resolved, yaml.safe_dump(resolved, sort_keys=False))

    # ---- data
    def recorded_data(self) -> dict[str, Any]:
        """The ``data`` section of ``resolved.yaml`` (source, fingerprint, classes...);
        empty for a run folder without one."""
        if not self.resolved.exists():
            return {}
        return (yaml.safe_load(self.resolved.read_text()) or {}).get("data") or {}

    def check_data(self, fingerprint: str | None, source: str) -> None:
        """Raise one ``ValueError`` when data with ``fingerprint`` (read from ``source``) is
        not the data this run was trained on; runs without a record pass."""
        recorded = self.recorded_data()
        expected = recorded.get("fingerprint")
        if expected and fingerprint and expected != fingerprint:
            raise ValueError(
                f"{source} does not hold the data {self.path} was trained on: its images or "
                f"classes differ (fingerprint {fingerprint}, the run's {expected}, recorded "
                f"from {recorded.get('source')}). Point --data at the run's data, or train a "
                f"new run (a new --run-dir) on this one.")

    def read_normalization(self) -> Normalization | None:
        if not self.normalization.exists():
            return None
        return Normalization.from_dict(json.loads(self.normalization.read_text()))

    def write_normalization(self, norm: Normalization) -> None:
        write_atomic(self.normalization, json.dumps(norm.to_dict()))

    # ---- history and metrics
    def read_history(self) -> list[dict[str, Any]]:
        if not self.history.exists():
            return []
        with open(self.history, newline="") as handle:
            return [{k: (int(v) if k == "epoch" else float(v) if v not in ("", None) else None)
                     for k, v in row.items()} for row in csv.DictReader(handle)]

    def write_history(self, rows: list[dict[str, Any]]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, HISTORY_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in HISTORY_FIELDS})
        write_atomic(self.history, buffer.getvalue())

    def read_metrics(self) -> dict[str, Any] | None:
        return json.loads(self.metrics.read_text()) if self.metrics.exists() else None

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_atomic(self.metrics, json.dumps(metrics, indent=2))

    def read_ablation(self) -> dict[str, Any]:
        return json.loads(self.ablation.read_text())

    def write_ablation(self, measures: dict[str, Any]) -> None:
        write_atomic(self.ablation, json.dumps(measures, indent=1))

    def remove_if_only_lock(self) -> None:
        """Remove the folder when a failed start left nothing in it but its lock."""
        try:
            if {p.name for p in self.path.iterdir()} <= {".lock"}:
                shutil.rmtree(self.path)
        except OSError:
            pass


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of a run's ``history.csv`` (empty before its first epoch)."""
    return RunFolder(run_dir).read_history()


def default_run_dir(config: TrainConfig) -> Path:
    """``runs/<preset>-<recipe>``: the same command finds the same run."""
    return runs_dir() / f"{config.preset}-{config.recipe}"


# ----------------------------------------------------------------------------- data

def build_datasets(resolved: ResolvedConfig, normalization: Normalization | None = None, *,
                   run: RunFolder | None = None, **kwargs) -> tuple[Datasets, ResolvedConfig]:
    """The run's :class:`Datasets`, and ``resolved`` with the preset's ``num_classes``
    following the data (unless the configuration overrides it).

    Args:
        normalization: statistics to reuse (a resumed run's, an evaluation's); default:
            computed from the training split as the recipe says.
        run: a run folder whose recorded data these must be (checked as soon as the data is
            loaded, before anything depends on its size).
    """
    config, recipe = resolved.config, resolved.recipe
    loaded = load_source(config.data, skip_corrupt=config.skip_corrupt)
    fingerprint = data_fingerprint(loaded[0], loaded[1])
    if run is not None:
        run.check_data(fingerprint, config.data)
    resolved = resolved.with_classes(len(loaded[1]))
    options = dict(batch_size=recipe.batch_size, val_size=config.val_size,
                   train_subset=config.train_subset, test_subset=config.test_subset,
                   augment=recipe.augment, normalization=normalization or recipe.normalization,
                   seed=config.seed, resize_in_model=recipe.resize_in_model)
    options.update(kwargs)
    datasets = make_datasets(config.data, resolved.preset, loaded=loaded,
                             fingerprint=fingerprint, **options)
    return datasets, resolved


def run_datasets(run_dir: str | Path, data: str | None = None, **overrides) -> Datasets:
    """A finished run's data with the normalization it was trained with.

    Args:
        data: read the run's data from here instead of the recorded source (e.g. after
            moving it); it must hold the same images. By default: the recorded source, or,
            when that path does not exist here, the CIFAR-10 JPEG copy beside the project
            (``../shared/datasets/cifar10-jpeg``) if it holds the same images.

    Raises:
        ValueError: when the data found is not the data the run was trained on.
    """
    run = RunFolder(run_dir)
    config = run.read_config()
    if data is not None:
        config.data = resolve_source(data)
    elif config.data != "cifar10" and not Path(config.data).exists() and (
            shared_cifar10_jpeg().is_dir()):
        # A run trained elsewhere (the shipped model) on the CIFAR-10 JPEG copy: the copy
        # beside this project holds the same images if the fingerprints agree (checked).
        config.data = str(shared_cifar10_jpeg())
    return build_datasets(config.resolve(), run.read_normalization(), run=run, **overrides)[0]


# ----------------------------------------------------------------------------- models

def inference_model(model: keras.Model, preprocessing: Preprocessing,
                    **extra: Any) -> keras.Model:
    """``model`` behind an :class:`~alexnet_lib.layers.InferenceInfo` layer that carries
    its preprocessing (class names, sizes, normalization, views) and ``extra`` entries
    inside the saved ``.keras`` file."""
    inputs = keras.Input(model.input_shape[1:], name="image")
    x = InferenceInfo({**preprocessing.to_info(), **extra}, name="inference_info")(inputs)
    return keras.Model(inputs, model(x), name=f"{model.name}_inference")


def save_model(model: keras.Model, path: Path) -> None:
    """``model.save`` to a temporary ``.keras`` file, then rename it into place."""
    write_through(path, model.save, suffix=".keras")


def load_model(path: str | Path) -> keras.Model:
    """A saved ``.keras`` model (or a run folder's best), loaded with ``safe_mode=True``.

    Raises:
        FileNotFoundError: naming the path.
        ValueError: when the file is not a model this project saved (not a zip archive,
            truncated, or holding layers that safe mode refuses).
    """
    path = Path(path)
    if path.is_dir():
        path = RunFolder(path).model("best")
    if not path.exists():
        raise FileNotFoundError(f"No model at {path}: pass a .keras file written by train "
                                f"(<run_dir>/checkpoints/best.keras) or a run folder.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a .keras model file: it is not a zip archive (it may "
                         f"be truncated or corrupt). Use <run_dir>/checkpoints/best.keras or "
                         f"last.keras of a finished run, or train again.")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # noqa: BLE001  (Keras raises many kinds for a bad file)
        text = str(error).strip()
        reason = text.splitlines()[0][:300] if text else type(error).__name__
        raise ValueError(f"{path} is not a model saved by alexnet_lib ({reason}).") from error


def model_info(model: keras.Model, path: str | Path | None = None) -> Preprocessing:
    """The :class:`~alexnet_lib.data.transforms.Preprocessing` a saved model carries,
    checked (class names, one per output; sizes; normalization; views).

    Raises:
        ValueError: naming the model file and the missing or bad entry.
    """
    where = str(path) if path is not None else f"Model {model.name!r}"
    try:
        info = model.get_layer("inference_info").info
    except ValueError:
        raise ValueError(f"{where} carries no inference_info layer: it was not saved by "
                         f"alexnet_lib's train.") from None
    try:
        preprocessing = Preprocessing.from_info(info)
        outputs = model.output_shape[-1]
        if len(preprocessing.class_names) != outputs:
            raise ValueError(f"{len(preprocessing.class_names)} class names for a model with "
                             f"{outputs} outputs")
    except ValueError as error:
        raise ValueError(f"{where} carries bad inference information: {error}. The file was "
                         f"altered or not written by alexnet_lib's train; use a model saved "
                         f"by train.") from None
    return preprocessing


# ----------------------------------------------------------------------------- a finished run

@dataclasses.dataclass
class Run:
    """A run folder read back: its configuration, history, metrics and best model."""

    folder: RunFolder
    config: dict[str, Any]
    history: list[dict[str, Any]]
    metrics: dict[str, Any] | None

    @property
    def run_dir(self) -> Path:
        return self.folder.path

    @property
    def checkpoint(self) -> Path:
        return self.folder.model("best")

    @property
    def figures(self) -> Path:
        return self.folder.figures

    def model(self) -> keras.Model:
        return load_model(self.checkpoint)

    def datasets(self, data: str | None = None, **overrides) -> Datasets:
        """The run's data, normalized as it was in training (see :func:`run_datasets`)."""
        return run_datasets(self.run_dir, data, **overrides)


def load_run(run_dir: str | Path) -> Run:
    """Read a run folder written by ``train``.

    Raises:
        FileNotFoundError: naming what is missing and the command that writes it.
    """
    folder = RunFolder(run_dir)
    folder.require_config()
    if not folder.model("best").exists():
        raise FileNotFoundError(f"{folder.path} has no checkpoints/best.keras yet: its training "
                                f"has not finished an epoch. Resume it with the same command.")
    return Run(folder=folder, config=yaml.safe_load(folder.config.read_text()),
               history=folder.read_history(), metrics=folder.read_metrics())
