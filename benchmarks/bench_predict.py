"""``predict`` over every test image of a class-folder tree: images/s, and its top-1 against
the folder names beside ``evaluate``'s top-1 for the same run.

Runs the code path of ``python -m alexnet_lib predict RUN DATA/test`` (files decoded from disk
in parallel, preprocessing and test-time views read from the model file, batches through one
compiled forward pass). The time covers decoding, preprocessing and the model, not loading
the model.

Usage:
    python benchmarks/bench_predict.py --run-dir runs/cifar-cpu     # its best.keras, 10,000 JPEGs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import alexnet_lib.quiet  # noqa: F401  (before TensorFlow: hides its start-up lines)

# isort: split

from alexnet_lib.paths import shared_cifar10_jpeg
from alexnet_lib.precision import cpu_flags
from alexnet_lib.predict import Predictor, expand_folders


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, help="a run folder evaluated on DATA")
    parser.add_argument("--data", default=str(shared_cifar10_jpeg()))
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    run = Path(args.run_dir)
    avx = "AVX-512" if "avx512f" in cpu_flags() else "AVX2" if "avx2" in cpu_flags() else "?"
    print(f"# {os.cpu_count()} CPUs ({platform.machine()}, {avx}); {run}")
    predictor = Predictor(run, batch_size=args.batch_size)
    files = expand_folders([Path(args.data) / "test"])
    predictor.predict_files(files[: args.batch_size])  # trace the forward pass once
    started = time.perf_counter()
    results = predictor.predict_files([Path(args.data) / "test"], top_k=1)
    seconds = time.perf_counter() - started
    right = sum(r.top[0][0] == Path(r.path).parent.name for r in results if r.top)
    errors = sum(r.error is not None for r in results)
    print(f"predict: {len(results)} images ({errors} unreadable) in {seconds:.1f} s = "
          f"{len(results) / seconds:.0f} images/s, views {predictor.views!r}, "
          f"top-1 {right / len(results):.4f}")
    metrics = json.loads((run / "metrics.json").read_text())
    print(f"evaluate (metrics.json): top-1 {metrics['test_top1']:.4f} over "
          f"{metrics['num_examples']} images, views {metrics['views']!r}")


if __name__ == "__main__":
    main()
