"""Metrics over a whole split with dropout off: top-1, top-5, per-class accuracy, confusion.

Accuracy is counted over every example (not a mean of per-batch means). With
``views="flip"`` the class probabilities of each image and its mirror image are averaged
before ranking; with ``views="tta"`` those of the paper's 10 views (four corners, centre, and
their mirror images; see :mod:`alexnet_lib.data.pipeline`). The centre view's own accuracy is
reported beside the averaged one (it is one of the views, so it costs nothing more).
"""

from __future__ import annotations

from . import quiet  # noqa: F401, I001  (first: hides TensorFlow's start-up lines)

import contextlib
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import keras
import yaml

from .checks import check_int
from .data.pipeline import CENTER_VIEW, Datasets, Normalization, check_views, resolve_source
from .files import FolderLock, check_writable, write_atomic
from .metrics import classification_metrics, predict_probabilities  # noqa: F401  (re-exported)
from .model import MAX_IMAGE_SIZE
from .train import TrainConfig, build_datasets


def load_model(path: str | Path) -> keras.Model:
    """A saved ``.keras`` model, loaded with ``safe_mode=True``.

    Raises:
        FileNotFoundError: naming the path.
        ValueError: when the file is not a model this project saved (not a zip archive,
            truncated, or holding layers that safe mode refuses).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "best.keras"
    if not path.exists():
        raise FileNotFoundError(f"No model at {path}: pass a .keras file written by train "
                                f"(<run_dir>/checkpoints/best.keras) or a run folder.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a .keras model file: it is not a zip archive (it may "
                         f"be truncated or corrupt). Use <run_dir>/checkpoints/best.keras or "
                         f"last.keras of a finished run, or train again.")
    from . import layers  # noqa: F401  (registers the custom layers)
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # noqa: BLE001  (Keras raises many kinds for a bad file)
        text = str(error).strip()
        reason = text.splitlines()[0][:300] if text else type(error).__name__
        raise ValueError(f"{path} is not a model saved by alexnet_lib ({reason}).") from error


def model_info(model: keras.Model, path: str | Path | None = None) -> dict[str, Any]:
    """The :class:`~alexnet_lib.layers.InferenceInfo` a saved model carries, checked: class
    names (one string per output), sizes and normalization statistics.

    Raises:
        ValueError: naming the model file and the missing or bad entry.
    """
    where = str(path) if path is not None else f"Model {model.name!r}"
    try:
        info = model.get_layer("inference_info").info
    except ValueError:
        raise ValueError(f"{where} carries no inference_info layer: it was not saved by "
                         f"alexnet_lib's train.") from None

    def bad(what: str) -> ValueError:
        return ValueError(f"{where} carries bad inference information: {what}. The file was "
                          f"altered or not written by alexnet_lib's train; use a model saved "
                          f"by train.")

    if not isinstance(info, dict):
        raise bad(f"expected a mapping, found {type(info).__name__}")
    names = info.get("class_names")
    outputs = model.output_shape[-1]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
        raise bad(f"class_names must be a list of non-empty strings, found {names!r}"[:300])
    if len(names) != outputs:
        raise bad(f"{len(names)} class names for a model with {outputs} outputs")
    for key in ("input_size", "image_size"):
        if key in info:
            try:
                check_int(key, info[key], 1, MAX_IMAGE_SIZE)
            except ValueError as error:
                raise bad(str(error)) from None
    stored = info.get("stored_size") or []
    if not isinstance(stored, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in stored):
        raise bad(f"stored_size must list positive integers, found {stored!r}")
    try:
        Normalization.from_dict(info.get("normalization"))
    except ValueError as error:
        raise bad(str(error)) from None
    if "eval_views" in info:
        try:
            check_views(info["eval_views"])
        except ValueError as error:
            raise bad(str(error)) from None
    return info


def run_config(run_dir: Path):
    """The :class:`~alexnet_lib.train.TrainConfig` a run folder was trained with.

    Raises:
        FileNotFoundError: when ``run_dir`` is not a run folder.
        ValueError: when its ``config.yaml`` cannot be read.
    """
    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.yaml): pass the "
                                f"--run-dir of a train command.")
    try:
        saved = yaml.safe_load(path.read_text())
        if not isinstance(saved, dict):
            raise ValueError("not a mapping")
        return TrainConfig.from_dict(saved)
    except (yaml.YAMLError, ValueError, TypeError) as error:
        raise ValueError(f"{path} cannot be read as a run configuration ({error}). Train "
                         f"the run again, or restore the file.") from None


def run_datasets(run_dir: Path, data: str | None = None, **overrides) -> Datasets:
    """The run's data with the normalization it was trained with.

    Args:
        data: read the run's data from here instead of the recorded source (e.g. after
            moving it); it must hold the same images.

    Raises:
        ValueError: when the data found is not the data the run was trained on.
    """
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    if data is not None:
        config.data = resolve_source(data)
    norm = Normalization.from_dict(json.loads((run_dir / "normalization.json").read_text()))
    return build_datasets(config, norm, run_dir=run_dir, **overrides)


def evaluate(run_dir: str | Path, *, views: str | None = None, tta: bool = False,
             checkpoint: str = "best", batch_size: int = 256, datasets: Datasets | None = None,
             data: str | None = None, write: bool = True) -> dict[str, Any]:
    """Evaluate a run's ``best`` (or ``last``) model on the whole test split.

    Args:
        views: test-time views, one of ``"center"``, ``"flip"`` (average each image and
            its mirror image) or ``"tta"`` (average the paper's 10 views); ``None``: the
            run's recipe's ``eval_views``.
        tta: shorthand for ``views="tta"``.
        data: where the run's data is now, when it moved (the run's recorded source by
            default); refused unless it holds the same images.

    Writes ``<run_dir>/metrics.json`` (atomically) and returns the metrics: ``test_top1``,
    ``test_top5``, ``test_loss`` (over the averaged views), ``per_class``, ``confusion``,
    ``views``, ``tta`` (whether the 10 views were averaged), ``center_top1`` and
    ``center_top5`` (the centre view alone), ``checkpoint``, ``data``, ``seconds``.

    Raises:
        FileNotFoundError: when the run folder or its model is missing.
        PermissionError: when ``metrics.json`` could not be written (checked first).
        ValueError: for unknown ``views`` or ``checkpoint``, or data other than the run's.
        FolderBusy: when another process trains or evaluates in the run folder.
    """
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint must be 'best' or 'last'. Received: checkpoint={checkpoint!r}")
    if tta:
        if views not in (None, "tta"):
            raise ValueError(f"tta=True means views='tta'. Received: views={views!r}, tta=True")
        views = "tta"
    views = check_views(views or config.resolved_recipe().eval_views)
    if write:
        check_writable(run_dir, "The run folder")
    with FolderLock(run_dir, "run folder") if write else contextlib.nullcontext():
        started = time.time()
        model = load_model(run_dir / "checkpoints" / f"{checkpoint}.keras")
        if datasets is None:
            datasets = run_datasets(run_dir, data, eval_batch_size=batch_size)
        probs, labels, center = predict_probabilities(model, datasets.test(views),
                                                      keep_view=CENTER_VIEW[views])
        metrics = classification_metrics(probs, labels, datasets.class_names)
        centre = classification_metrics(center, labels, datasets.class_names)
        metrics.update(views=views, tta=views == "tta", center_top1=centre["test_top1"],
                       center_top5=centre["test_top5"], checkpoint=checkpoint,
                       data=datasets.source, seconds=round(time.time() - started, 2))
        if write:
            write_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    return metrics

