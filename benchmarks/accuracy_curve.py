"""Accuracy against wall-clock minutes of a run, from its ``history.csv`` and ``metrics.json``.

Usage:
    python benchmarks/accuracy_curve.py runs/cifar-cpu
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from alexnet_lib.runs import read_history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    args = parser.parse_args(argv)
    run = Path(args.run_dir)
    minutes = 0.0
    print("| epoch | minutes (cumulative) | train loss | train accuracy "
          "| validation accuracy | lr |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in read_history(run):
        minutes += row["seconds"] / 60
        val = "" if row["val_accuracy"] is None else f"{row['val_accuracy']:.4f}"
        print(f"| {row['epoch'] + 1} | {minutes:.1f} | {row['loss']:.4f} | {row['accuracy']:.4f} "
              f"| {val} | {row['lr']:.2e} |")
    metrics = run / "metrics.json"
    if metrics.exists():
        m = json.loads(metrics.read_text())
        views = m.get("views", "tta" if m["tta"] else "center")
        print(f"\ntest top-1 {m['test_top1']:.4f}, top-5 {m['test_top5']:.4f} over "
              f"{m['num_examples']} images ({m['checkpoint']} checkpoint, views {views!r}; "
              f"evaluation took {m['seconds']:.0f} s)")
        if "center_top1" in m and views != "center":
            print(f"centre view alone: top-1 {m['center_top1']:.4f}, top-5 {m['center_top5']:.4f}")


if __name__ == "__main__":
    main()
