"""Accuracy against wall-clock minutes of a run, from its ``history.csv`` and ``metrics.json``.

A run trained with ``--keep-epochs`` kept each epoch's model (``checkpoints/epoch-N.keras``):
each is then evaluated on the test split too (the centre view and the recipe's views), which
gives the test accuracy at every epoch's minute. The test split chooses nothing here: the
run's own model is its last (or best-validation) one whatever these numbers say.

Usage:
    python benchmarks/accuracy_curve.py runs/cifar-cpu
    python benchmarks/accuracy_curve.py runs/cifar-cpu --plot docs/figures/curve-cpu.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import alexnet_lib.quiet  # noqa: F401  (before TensorFlow: hides its start-up lines)

# isort: split

from alexnet_lib.data.preprocessing import CENTER_VIEW  # noqa: E402
from alexnet_lib.metrics import classification_metrics, predict_probabilities  # noqa: E402
from alexnet_lib.run_data import run_datasets  # noqa: E402
from alexnet_lib.runs import RunFolder, load_model, read_history  # noqa: E402


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
    args = parser.parse_args(argv)
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
