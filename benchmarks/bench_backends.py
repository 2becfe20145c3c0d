"""The same training run on both Keras backends, through the project's own loop: TensorFlow,
and JAX with ``import tensorflow`` blocked (what a JAX-only GPU machine is). No tuning for
either: the ``train`` command as a user types it, in float32, on the CIFAR-10 JPEG copy.

For each backend, ``python -m alexnet_lib train`` runs ``--epochs`` epochs of the ``cpu``
recipe (the ``cifar`` preset) on ``--train-subset`` images in a fresh process; the table
gives training images/s over the epochs after the first (which compiles), the whole
command's wall time, and the test top-1 (the runs draw different random numbers, so the
accuracies agree only roughly).

Usage:
    python benchmarks/bench_backends.py                     # ~3 min on 2 cores
    python benchmarks/bench_backends.py --preset upsampled --train-subset 512 --epochs 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import host_line, table

ROOT = Path(__file__).resolve().parents[1]


def run(backend: str, args, folder: Path) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if backend == "jax":
        site = folder / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text('import sys\nsys.modules["tensorflow"] = None\n')
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    run_dir = folder / backend
    started = time.time()
    subprocess.run([sys.executable, "-m", "alexnet_lib", "train", "--preset", args.preset,
                    "--recipe", args.recipe, "--data", args.data, "--epochs", str(args.epochs),
                    "--train-subset", str(args.train_subset), "--val-size", "1000",
                    "--test-subset", "2000", "--precision", "float32", "--run-dir",
                    str(run_dir)], env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    wall = time.time() - started
    with (run_dir / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    timed = rows[1:] or rows
    resolved = (run_dir / "resolved.yaml").read_text()
    train = int(resolved.split("\n  train: ")[1].split()[0])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"images_per_second": train * len(timed) / sum(float(r["seconds"]) for r in timed),
            "wall": wall, "top1": metrics["test_top1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" /
                                              "cifar10-jpeg"))
    parser.add_argument("--preset", default="cifar")
    parser.add_argument("--recipe", default="cpu")
    parser.add_argument("--train-subset", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    print(host_line())
    print(f"{args.preset} preset, {args.recipe} recipe, float32, {args.train_subset} training "
          f"images of {args.data}, {args.epochs} epochs (images/s over epochs 2-{args.epochs}, "
          f"validation and saving included)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("tensorflow", "jax"):
            folder = Path(tmp) / backend
            folder.mkdir()
            result = run(backend, args, folder)
            rows.append([backend, f"{result['images_per_second']:.0f}",
                         f"{result['wall']:.0f}", f"{result['top1']:.4f}"])
    print(table(["backend", "training images/s", "command wall s", "test top-1"], rows))


if __name__ == "__main__":
    main()
