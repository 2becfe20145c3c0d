"""Evaluating a run: top-1, top-5, per-class accuracy and confusion over the whole test split,
with dropout off, written to the run's ``metrics.json`` -- or over its validation split
(``split="val"``, written to ``val-metrics.json``), which is what chooses between recipes
without reading the test images.

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

SPLITS = ("test", "val")


def evaluate(run_dir: str | Path, *, views: str | None = None, tta: bool = False,
             checkpoint: str = "best", batch_size: int = 256, datasets: Datasets | None = None,
             data: str | None = None, write: bool = True, split: str = "test") -> dict[str, Any]:
    """Evaluate a run's ``best`` (or ``last``) model on the whole test (or validation) split.

    Args:
        views: test-time views, one of :data:`~alexnet_lib.data.preprocessing.VIEWS`:
            ``"center"``, ``"flip"`` (average each image and its mirror image), ``"shift6"``,
            ``"shift10"`` (6 or 10 shifted views, mirrored) or ``"tta"`` (average the
            paper's 10 views); ``None``: the run's recipe's ``eval_views``.
        tta: shorthand for ``views="tta"``.
        data: where the run's data is now, when it moved (the run's recorded source by
            default); refused unless it holds the same images.
        split: ``"test"`` (default) or ``"val"``: the validation images the run carved from
            its training split (``--val-size``), the same ones, with the run's seed.

    Writes ``<run_dir>/metrics.json`` (``val-metrics.json`` for ``split="val"``; atomically)
    and returns the metrics: ``test_top1``, ``test_top5``, ``test_loss`` (over the averaged
    views; ``val_*`` for the validation split), ``per_class``, ``confusion``, ``views``,
    ``tta`` (whether the 10 views were averaged), ``center_top1`` and ``center_top5`` (the
    centre view alone), ``split``, ``checkpoint``, ``data``, ``seconds``.

    Raises:
        FileNotFoundError: when the run folder or its model is missing.
        PermissionError: when ``metrics.json`` could not be written (checked first).
        ValueError: for unknown ``views``, ``checkpoint`` or ``split``, a validation split
            the run does not have, data other than the run's, or a model of other data
            (other classes or normalization) in the run folder.
        FolderBusy: when another process trains or evaluates in the run folder.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}: choose from {list(SPLITS)}.")
    run = RunFolder(run_dir)
    config = run.read_config()
    if split == "val" and not config.resolve().config.val_size:
        raise ValueError(f"The run {run.path} has no validation split (it trained with "
                         f"val_size=0): train with --val-size N to evaluate on one, or "
                         f"evaluate the test split.")
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
        probs, labels, center = predict_probabilities(model, datasets.evaluation(split, views),
                                                      keep_view=CENTER_VIEW[views])
        metrics = classification_metrics(probs, labels, datasets.class_names, split=split)
        alone = classification_metrics(center, labels, datasets.class_names, split=split)
        metrics.update(views=views, tta=views == "tta", center_top1=alone[f"{split}_top1"],
                       center_top5=alone[f"{split}_top5"], split=split, checkpoint=checkpoint,
                       data=datasets.source, seconds=round(time.time() - started, 2))
        if write:
            run.write_metrics(metrics, split)
    return metrics

