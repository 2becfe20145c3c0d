"""``predict`` on real files: the first N test images of each class of a class-folder tree.

Runs the same code path as ``python -m alexnet_lib predict`` (files decoded from disk,
preprocessing read from the checkpoint) and counts how many top-1 answers name the folder
the file came from.

Usage:
    python benchmarks/predict_check.py --checkpoint runs/cifar-cpu/checkpoints/best.keras
"""

from __future__ import annotations

import argparse
from pathlib import Path

import alexnet_lib.quiet  # noqa: E402,F401  (before TensorFlow: hides its start-up lines)

# isort: split

from alexnet_lib.paths import shared_cifar10_jpeg  # noqa: E402
from alexnet_lib.predict import predict  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", default=str(shared_cifar10_jpeg()))
    parser.add_argument("--per-class", type=int, default=20)
    args = parser.parse_args(argv)
    test = Path(args.data) / "test"
    classes = sorted(p.name for p in test.iterdir() if p.is_dir())
    files = {c: sorted((test / c).iterdir())[: args.per_class] for c in classes}
    results = predict(args.checkpoint, [f for c in classes for f in files[c]], top_k=1)
    right, i = {}, 0
    for c in classes:
        chunk = results[i:i + len(files[c])]
        i += len(files[c])
        right[c] = sum(r.error is None and r.top[0][0] == c for r in chunk)
    total = sum(len(v) for v in files.values())
    print("| class | right |\n|---|---:|")
    for c in classes:
        print(f"| {c} | {right[c]}/{len(files[c])} |")
    print(f"| **all** | **{sum(right.values())}/{total}** |")


if __name__ == "__main__":
    main()
