"""The run folder: its layout, writing its files whole, and reading a run and its model back.

Every path of a run folder is spelled here, and only here::

    <run_dir>/config.yaml         the TrainConfig (rerun with the same arguments to resume)
    <run_dir>/resolved.yaml       the resolved preset and recipe, the data's fingerprint,
                                  the precision chosen and why, library versions, devices
    <run_dir>/normalization.json  the training split's statistics
    <run_dir>/history.csv         epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds
    <run_dir>/checkpoints/        ckpt-* (resume) + best.keras, last.keras (inference)
    <run_dir>/tensorboard/        scalars per epoch
    <run_dir>/metrics.json        written by evaluate (the test split)
    <run_dir>/val-metrics.json    written by evaluate --split val (the validation split)
    <run_dir>/ablation.json       the ablation sweep's measures of the run (ablations.py)
    <run_dir>/figures/            the notebooks' figures (PNG)
    <run_dir>/notebooks/          notebooks executed by ``make notebooks``
    <run_dir>/.alexnet_lib        the marker: this project made (or adopted) the folder

The project writes into a run folder, and cleans what its crashed writers left there, only
once :meth:`RunFolder.claim` has made sure the folder is one of its runs (new, empty, or
holding the marker or a run's ``config.yaml``): a folder of someone else's is refused with
one error, never cleaned or overwritten. Every file read back is checked before use: YAML
through :func:`alexnet_lib.files.read_yaml` (safe types, a size and alias budget), then
its types.

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
from typing import Any, Sequence

import keras
import numpy as np

from .config import TrainConfig, migrate_saved
from .data.preprocessing import Normalization, Preprocessing
from .data.sources import resolve_source
from .files import MARKER, claim_folder, dump_yaml, read_yaml, write_atomic, write_through
from .layers import InferenceInfo

HISTORY_FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
CHECKPOINTS = ("best", "last")
# What the project writes at the top of a run folder and in its checkpoints folder: the
# names whose temporary files (files.temp_name) are its own crashed writers' debris.
RUN_FILES = ("config.yaml", "resolved.yaml", "normalization.json", "history.csv",
             "metrics.json", "val-metrics.json", "ablation.json", MARKER, "write-check")
MODEL_FILES = ("best.keras", "last.keras", "epoch-*.keras")


def _json(path: Path) -> Any:
    """A JSON file of the run, or ``ValueError`` naming it."""
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} cannot be read as JSON ({error}). Restore the file, or "
                         f"train the run again.") from None


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
    val_metrics = property(lambda self: self.path / "val-metrics.json")
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

    def is_run(self) -> bool:
        """Whether this folder holds a run's configuration (``config.yaml``)."""
        return self.config.is_file()

    def claim(self, option: str = "--run-dir", data: str | None = None) -> bool:
        """Make sure this folder is a run folder of this project before anything is written
        or cleaned in it: a missing or empty folder becomes one (marked), a folder with the
        marker or a ``config.yaml`` is one; any other folder, a folder inside the data
        ``data`` (a class-folder tree would take the run's files for images), or a file, is
        refused. Returns whether the folder was created.

        Raises:
            ValueError: naming the folder and what to do; nothing was written.
        """
        if data is not None and data != "cifar10" and Path(data).is_dir():
            root, here = Path(data).resolve(), self.path.resolve()
            if here == root or root in here.parents:
                raise ValueError(
                    f"{option} {self.path} is inside the data {data}: the run's files would "
                    f"be read as data by later runs. Pass a folder outside it, e.g. "
                    f"{option} runs/<name>.")
        return claim_folder(self.path, what="a run folder of this project",
                            option=option, proof=lambda folder: RunFolder(folder).is_run())

    @property
    def resumable(self) -> bool:
        """Whether a resume checkpoint exists (a folder with a configuration but no
        checkpoint holds a start that failed before its first one: nothing to resume)."""
        return any((self.checkpoints / index).exists()
                   for index in ("checkpoint", "checkpoint.json"))  # TensorFlow's, JAX's

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
        saved = self._mapping(self.config, "run configuration")
        try:
            return TrainConfig.from_dict(saved)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{self.config} cannot be read as a run configuration ({error}). "
                             f"Train the run again, or restore the file.") from None

    def _mapping(self, path: Path, what: str) -> dict[str, Any]:
        """A YAML file of the run that must hold a mapping (empty when it is missing)."""
        if not path.exists():
            return {}
        saved = read_yaml(path, f"The {what}")
        if saved is None:
            return {}
        if not isinstance(saved, dict) or not all(isinstance(k, str) for k in saved):
            raise ValueError(f"The {what} {path} holds {type(saved).__name__} where a mapping "
                             f"of names to values belongs. Restore the file, or train the run "
                             f"again in a new --run-dir.")
        return saved

    def saved_config(self) -> dict[str, Any]:
        """``config.yaml`` as a mapping (empty when there is none), its data path absolute."""
        saved = migrate_saved(self._mapping(self.config, "run configuration"))
        if isinstance(saved.get("data"), str):
            saved["data"] = resolve_source(saved["data"])
        return saved

    def check_same_config(self, config: TrainConfig) -> None:
        """Raise one ``ValueError`` when ``config`` would train something else than the run
        this folder holds (where and how it runs may change between restarts; what it
        trains may not)."""
        saved = self.saved_config()
        if not saved:
            return
        mine = config.to_dict()
        runtime = ("run_dir", "checkpoint_every", "strategy", "keep_epochs")
        differ = sorted(k for k in mine if k not in runtime and saved.get(k, mine[k]) != mine[k])
        if differ:
            detail = ", ".join(f"{k}: saved {saved.get(k)!r}, now {mine[k]!r}" for k in differ)
            raise ValueError(
                f"{self.path} holds a run with a different configuration ({detail}). "
                f"Resume it with the same arguments, or pass a new --run-dir.")

    def write_config(self, config: TrainConfig) -> None:
        write_atomic(self.config, dump_yaml(config.to_dict()))

    def write_resolved(self, resolved: dict[str, Any]) -> None:
        write_atomic(self.resolved, dump_yaml(resolved))

    def read_resolved(self) -> dict[str, Any]:
        """``resolved.yaml`` as a mapping (empty when there is none), checked: its ``data``
        and ``precision`` sections are mappings of the types the project writes."""
        resolved = self._mapping(self.resolved, "run record")
        types = {"data": {"source": str, "fingerprint": str, "classes": list},
                 "precision": {"requested": str, "chosen": str, "reason": str}}
        for section, fields in types.items():
            value = resolved.get(section)
            if value is None:
                continue
            bad = not isinstance(value, dict) or any(
                value.get(k) is not None and not isinstance(value.get(k), t)
                for k, t in fields.items())
            if bad:
                raise ValueError(
                    f"The run record {self.resolved} has a bad `{section}` entry (expected a "
                    f"mapping with {', '.join(f'{k}: {t.__name__}' for k, t in fields.items())}"
                    f"). Restore the file, or train the run again in a new --run-dir.")
        return resolved

    # ---- data
    def recorded_data(self) -> dict[str, Any]:
        """The ``data`` section of ``resolved.yaml`` (source, fingerprint, classes...);
        empty for a run folder without one."""
        return self.read_resolved().get("data") or {}

    def recorded_precision(self) -> str | None:
        """The precision the run trains in, as recorded when it started (``None``: no
        record)."""
        return (self.read_resolved().get("precision") or {}).get("chosen")

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
        try:
            return Normalization.from_dict(_json(self.normalization))
        except ValueError as error:
            raise ValueError(f"{self.normalization}: {error}"[:400]) from None

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
        return _json(self.metrics) if self.metrics.exists() else None

    def write_metrics(self, metrics: dict[str, Any], split: str = "test") -> None:
        """``metrics.json`` (the test split) or ``val-metrics.json`` (``split="val"``)."""
        path = self.val_metrics if split == "val" else self.metrics
        write_atomic(path, json.dumps(metrics, indent=2))

    def read_ablation(self) -> dict[str, Any]:
        return _json(self.ablation)

    def write_ablation(self, measures: dict[str, Any]) -> None:
        write_atomic(self.ablation, json.dumps(measures, indent=1))

    def remove_if_only_lock(self) -> None:
        """Remove the folder when a failed start left nothing in it but its lock."""
        try:
            if {p.name for p in self.path.iterdir()} <= {".lock", MARKER}:
                shutil.rmtree(self.path)
        except OSError:
            pass


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of a run's ``history.csv`` (empty before its first epoch)."""
    return RunFolder(run_dir).read_history()


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


def check_model_fits(model: keras.Model, path: str | Path, class_names: Sequence[str],
                     normalization: Normalization) -> Preprocessing:
    """The preprocessing ``model`` (loaded from ``path``) carries, checked against the data
    it is about to classify: the same classes in the same order, normalized alike (another
    run's model in a run folder would score its outputs against the wrong labels).

    Raises:
        ValueError: naming the model file and the difference.
    """
    prep = model_info(model, path)
    if list(prep.class_names) != list(class_names):
        ours, theirs = len(prep.class_names), len(class_names)
        detail = (f"{ours} classes against the data's {theirs}" if ours != theirs else
                  f"classes {list(prep.class_names)[:4]}... against the data's "
                  f"{list(class_names)[:4]}...")
        raise ValueError(f"{path} is not a model of this run's data ({detail}): it was "
                         f"trained on other data. Put back the run's own model, or evaluate "
                         f"this one in its own run folder.")
    mine, data = prep.normalization.to_dict(), normalization.to_dict()
    same = mine.keys() == data.keys() and all(
        mine[k] == data[k] if isinstance(mine[k], str) else
        np.shape(mine[k]) == np.shape(data[k]) and np.allclose(mine[k], data[k], atol=1e-3)
        for k in mine)
    if not same:
        raise ValueError(f"{path} was trained with other normalization statistics than this "
                         f"run's normalization.json: it is another run's model. Put back the "
                         f"run's own model, or evaluate this one in its own run folder.")
    return prep


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
    return Run(folder=folder, config=folder._mapping(folder.config, "run configuration"),
               history=folder.read_history(), metrics=folder.read_metrics())
