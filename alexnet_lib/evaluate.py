"""Evaluating a run: top-1, top-5, per-class accuracy and confusion over the whole test split,
with dropout off, written to the run's ``metrics.json``.

Accuracy is counted over every example (not a mean of per-batch means). With
``views="flip"`` the class probabilities of each image and its mirror image are averaged
before ranking; with ``views="shift6"`` or ``"shift10"`` those of the image and its one- or
two-pixel shifts, mirrored; with ``views="tta"`` those of the paper's 10 views (four corners,
centre, and their mirror images; see :mod:`alexnet_lib.data.transforms`). The centre view's
own accuracy is reported beside the averaged one (it is one of the views, so it costs
nothing more).
"""

from __future__ import annotations

from . import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import contextlib
import time
from pathlib import Path
from typing import Any

from .data.datasets import Datasets
from .data.preprocessing import CENTER_VIEW, check_views
from .files import FolderLock, check_writable
from .metrics import classification_metrics, predict_probabilities
from .run_data import run_datasets
from .runs import RunFolder, check_model_fits, load_model


def evaluate(run_dir: str | Path, *, views: str | None = None, tta: bool = False,
             checkpoint: str = "best", batch_size: int = 256, datasets: Datasets | None = None,
             data: str | None = None, write: bool = True) -> dict[str, Any]:
    """Evaluate a run's ``best`` (or ``last``) model on the whole test split.

    Args:
        views: test-time views, one of :data:`~alexnet_lib.data.preprocessing.VIEWS`:
            ``"center"``, ``"flip"`` (average each image and its mirror image), ``"shift6"``,
            ``"shift10"`` (6 or 10 shifted views, mirrored) or ``"tta"`` (average the
            paper's 10 views); ``None``: the run's recipe's ``eval_views``.
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
        ValueError: for unknown ``views`` or ``checkpoint``, data other than the run's, or a
            model of other data (other classes or normalization) in the run folder.
        FolderBusy: when another process trains or evaluates in the run folder.
    """
    run = RunFolder(run_dir)
    config = run.read_config()
    run.read_resolved()  # its record checked before anything is loaded
    model_path = run.model(checkpoint)
    if tta:
        if views not in (None, "tta"):
            raise ValueError(f"tta=True means views='tta'. Received: views={views!r}, tta=True")
        views = "tta"
    views = check_views(views or config.resolve().recipe.eval_views)
    if write:
        check_writable(run.path, "The run folder")
    with FolderLock(run.path, "run folder") if write else contextlib.nullcontext():
        started = time.time()
        model = load_model(model_path)
        if datasets is None:
            datasets = run_datasets(run_dir, data, eval_batch_size=batch_size)
        check_model_fits(model, model_path, datasets.class_names, datasets.normalization)
        probs, labels, center = predict_probabilities(model, datasets.test(views),
                                                      keep_view=CENTER_VIEW[views])
        metrics = classification_metrics(probs, labels, datasets.class_names)
        alone = classification_metrics(center, labels, datasets.class_names)
        metrics.update(views=views, tta=views == "tta", center_top1=alone["test_top1"],
                       center_top5=alone["test_top5"], checkpoint=checkpoint,
                       data=datasets.source, seconds=round(time.time() - started, 2))
        if write:
            run.write_metrics(metrics)
    return metrics

