"""Which test-time views pay: top-1 of one trained model over sets of shifted, mirrored views.

The model's class probabilities are computed once per view (the test image shifted by
``(dy, dx)`` pixels, the border reflected, with and without its mirror image), and each set
of views averages them, as ``evaluate --views`` does. ``shift6`` is the ``cpu`` and ``quick``
recipes' ``eval_views: shift``, ``shift2`` the ``long`` recipe's; ``flip`` the mirror pair.

Usage:
    python benchmarks/bench_views.py models/cifar-cpu
    python benchmarks/bench_views.py runs/cifar-cpu --limit 1000    # the first 1,000 images
"""

from __future__ import annotations

import argparse
import itertools

import alexnet_lib.quiet  # noqa: F401  (before TensorFlow: hides its start-up lines)

# isort: split

import numpy as np  # noqa: E402

from alexnet_lib.data.preprocessing import SHIFTS  # noqa: E402
from alexnet_lib.run_data import run_datasets  # noqa: E402
from alexnet_lib.runs import RunFolder, load_model  # noqa: E402


def _views(positions):
    return [(dy, dx, mirrored) for dy, dx in positions for mirrored in (False, True)]


VIEW_SETS = {
    "center": [(0, 0, False)],
    "flip": _views([(0, 0)]),
    "shift6": _views(SHIFTS["shift"]),
    "diagonal10": _views([(0, 0), (-1, -1), (1, 1), (-1, 1), (1, -1)]),
    "cross10": _views([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]),
    "shift2": _views(SHIFTS["shift2"]),
    "grid18": _views(itertools.product((-1, 0, 1), repeat=2)),
}
VIEW_SETS["all26"] = sorted({v for views in VIEW_SETS.values() for v in views})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished run folder (or models/cifar-cpu)")
    parser.add_argument("--data", default=None, help="where the run's data is now")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test images")
    args = parser.parse_args(argv)
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
