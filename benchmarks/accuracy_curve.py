"""Accuracy against wall-clock minutes of a run, from its ``history.csv`` and ``metrics.json``.

A run trained with ``--keep-epochs`` kept each epoch's model (``checkpoints/epoch-N.keras``):
each is then evaluated on the test split too (the centre view and the recipe's views), which
gives the test accuracy at every epoch's minute. The test split chooses nothing here: the
run's own model is its last (or best-validation) one whatever these numbers say.

Usage:
    python benchmarks/accuracy_curve.py runs/cifar-cpu
    python benchmarks/accuracy_curve.py runs/cifar-cpu --plot docs/figures/curve-cpu.png
    python benchmarks/accuracy_curve.py models/cifar-cpu --views   # which test views pay

``--views``: top-1 of the run's best model over sets of shifted, mirrored test views. The
model's class probabilities are computed once per view (the test image shifted by
``(dy, dx)`` pixels, the border reflected, with and without its mirror image), and each set
averages them, as ``evaluate --views`` does. ``center``, ``flip``, ``shift6`` and ``shift10``
are the sets of the same names ``evaluate --views`` takes (the ``quick`` recipe evaluates
with ``shift6``, ``cpu`` and ``long`` with ``shift10``); the others are measured here alone.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import alexnet_lib.quiet  # noqa: F401  (before TensorFlow: hides its start-up lines)

# isort: split

import numpy as np  # noqa: E402

from alexnet_lib.data.preprocessing import CENTER_VIEW, SHIFTS  # noqa: E402
from alexnet_lib.metrics import classification_metrics, predict_probabilities  # noqa: E402
from alexnet_lib.run_data import run_datasets  # noqa: E402
from alexnet_lib.runs import RunFolder, load_model, read_history  # noqa: E402


def _views(positions):
    return [(dy, dx, mirrored) for dy, dx in positions for mirrored in (False, True)]


VIEW_SETS = {
    "center": [(0, 0, False)],
    "flip": _views([(0, 0)]),
    "shift6": _views(SHIFTS["shift6"]),
    "diagonal10": _views([(0, 0), (-1, -1), (1, 1), (-1, 1), (1, -1)]),
    "cross10": _views([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]),
    "shift10": _views(SHIFTS["shift10"]),
    "grid18": _views(itertools.product((-1, 0, 1), repeat=2)),
}
VIEW_SETS["all26"] = sorted({v for views in VIEW_SETS.values() for v in views})


def views_table(args) -> None:
    """Print the top-1 of every set of :data:`VIEW_SETS` for the run's best model."""
    run = RunFolder(args.run_dir)
    model = load_model(run.model("best"))
    batches = list(run_datasets(args.run_dir, args.data, eval_batch_size=500).test("center"))
    x = np.concatenate([np.asarray(b[0]) for b in batches])[:args.limit]
    labels = np.concatenate([np.asarray(b[1]) for b in batches])[:args.limit]
    if labels.ndim > 1:
        labels = labels.argmax(axis=1)
    canvas = np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect")
    size = x.shape[1]
    probs = {}
    for dy, dx, mirrored in VIEW_SETS["all26"]:
        view = canvas[:, 2 + dy:2 + dy + size, 2 + dx:2 + dx + size]
        probs[dy, dx, mirrored] = model.predict(view[:, :, ::-1] if mirrored else view,
                                                batch_size=500, verbose=0)
    print(f"{args.run_dir}: {len(labels)} test images\n")
    print("| views | count | test top-1 |\n|---|---:|---:|")
    for name, views in VIEW_SETS.items():
        top1 = float(np.mean(sum(probs[v] for v in views).argmax(axis=1) == labels))
        print(f"| {name} | {len(views)} | {top1:.4f} |")


def epoch_test_accuracy(run: RunFolder, epochs: int) -> dict[int, tuple[float, float]]:
    """``{epoch: (centre top-1, recipe's views top-1)}`` of each kept epoch model."""
    kept = [e for e in range(1, epochs + 1) if run.epoch_model(e).exists()]
    if not kept:
        return {}
    views = run.read_config().resolve().recipe.eval_views
    datasets = run_datasets(run.path)
    scores = {}
    for epoch in kept:
        model = load_model(run.epoch_model(epoch))
        probs, labels, centre = predict_probabilities(model, datasets.test(views),
                                                      keep_view=CENTER_VIEW[views])
        names = datasets.class_names
        scores[epoch] = (classification_metrics(centre, labels, names)["test_top1"],
                         classification_metrics(probs, labels, names)["test_top1"])
    return scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--plot", help="also draw test (or validation) top-1 against minutes")
    parser.add_argument("--views", action="store_true",
                        help="instead: which test-time views pay (the run's best model)")
    parser.add_argument("--data", default=None, help="--views: where the run's data is now")
    parser.add_argument("--limit", type=int, default=None,
                        help="--views: only the first N test images")
    args = parser.parse_args(argv)
    if args.views:
        views_table(args)
        return
    run = RunFolder(args.run_dir)
    history = read_history(run.path)
    tests = epoch_test_accuracy(run, len(history))
    minutes = 0.0
    points = []
    print("| epoch | minutes (cumulative) | train loss | train accuracy "
          "| validation accuracy | test top-1, centre | test top-1, recipe's views | lr |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in history:
        minutes += row["seconds"] / 60
        epoch = row["epoch"] + 1
        val = "" if row["val_accuracy"] is None else f"{row['val_accuracy']:.4f}"
        centre, views = tests.get(epoch, (None, None))
        test = "|  |  |" if centre is None else f"| {centre:.4f} | {views:.4f} |"
        print(f"| {epoch} | {minutes:.1f} | {row['loss']:.4f} | {row['accuracy']:.4f} "
              f"| {val} {test} {row['lr']:.2e} |")
        points.append((minutes, views if views is not None else row["val_accuracy"]))
    metrics = run.path / "metrics.json"
    if metrics.exists():
        m = json.loads(metrics.read_text())
        views = m.get("views", "tta" if m["tta"] else "center")
        print(f"\ntest top-1 {m['test_top1']:.4f}, top-5 {m['test_top5']:.4f} over "
              f"{m['num_examples']} images ({m['checkpoint']} checkpoint, views {views!r}; "
              f"evaluation took {m['seconds']:.0f} s)")
        if "center_top1" in m and views != "center":
            print(f"centre view alone: top-1 {m['center_top1']:.4f}, top-5 {m['center_top5']:.4f}")
    if args.plot:
        import matplotlib  # lazy: only for --plot

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot([m for m, a in points if a is not None], [a for m, a in points if a is not None],
                marker="o")
        ax.set_xlabel("minutes of training")
        ax.set_ylabel("test top-1" if tests else "validation top-1")
        ax.set_title(Path(args.run_dir).name)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
