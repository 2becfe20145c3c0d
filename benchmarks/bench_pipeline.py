"""Input pipeline throughput against training consumption, and peak memory while training.

For each preset the script measures, on the real CIFAR-10 data:

* delivered: images/s the training pipeline (gather, normalize, resize, crop, flip, PCA
  jitter, batch, prefetch) yields when nothing consumes them;
* consumed: images/s the real training step (``Trainer``) takes from it;
* their ratio (target >= 5x).

Then, in a fresh process, it builds the ``upsampled`` preset's ``Trainer`` on all of CIFAR-10
(images upsampled to 227 on the fly), runs some training steps and reports the process's
peak resident memory (target < 3 GB).

Usage:
    python benchmarks/bench_pipeline.py [--data ../shared/datasets/cifar10-jpeg]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import alexnet_lib.quiet  # noqa: E402,F401  (before TensorFlow: hides its start-up lines)

# isort: split

import tensorflow as tf  # noqa: E402

from alexnet_lib.config import TrainConfig  # noqa: E402
from alexnet_lib.data.sources import load_source  # noqa: E402
from alexnet_lib.paths import shared_cifar10_jpeg  # noqa: E402
from alexnet_lib.run_data import build_datasets  # noqa: E402
from alexnet_lib.train import Trainer  # noqa: E402


def delivered(dataset, seconds: float) -> float:
    iterator = iter(dataset)
    next(iterator)  # trace
    n, start = 0, time.perf_counter()
    for x, _ in iterator:
        n += int(x.shape[0])
        if time.perf_counter() - start > seconds:
            break
    return n / (time.perf_counter() - start)


def consumed(trainer: Trainer, steps: int) -> float:
    iterator = iter(trainer.datasets.train(0))
    trainer.step(iterator)  # trace
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step(iterator)
    trainer.step.sums()  # wait for the last step
    return steps * trainer.recipe.batch_size / (time.perf_counter() - start)


def _peak_rss_mb() -> float:
    """This process's peak resident memory. ``VmHWM`` belongs to the process image (exec
    starts it afresh), unlike ``ru_maxrss``, which a child started with fork + exec inherits
    from its parent on Linux."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss(data: str, steps: int) -> None:
    """Child process: the upsampled preset on all of CIFAR-10, ``steps`` training steps."""
    import tempfile

    with tempfile.TemporaryDirectory() as run_dir:
        config = TrainConfig(preset="upsampled", recipe="origin", data=data, run_dir=run_dir)
        trainer = Trainer(config)
        iterator = iter(trainer.datasets.train(0))
        for _ in range(steps):
            trainer.step(iterator)
        trainer.step.sums()
        rss_mb = _peak_rss_mb()
        print(json.dumps({"train_images": trainer.datasets.size("train"), "steps": steps,
                          "batch_size": trainer.recipe.batch_size, "peak_rss_mb": rss_mb}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(shared_cifar10_jpeg()))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rss-steps", type=int, default=10)
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        return peak_rss(args.data, args.rss_steps)

    print(f"# input pipeline on {args.data}, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), TF {tf.__version__}", flush=True)
    start = time.perf_counter()
    loaded = load_source(args.data)
    print(f"loaded {sum(len(y) for _, y in loaded[0].values())} images in "
          f"{time.perf_counter() - start:.1f}s (uint8, stored size)", flush=True)
    del loaded  # each case below builds its own datasets from the same cache
    rows = []
    cases = [("cifar", "cpu", {}, 30), ("upsampled", "origin", {}, 3),
             ("upsampled", "origin", {"resize_in_model": True}, 3)]
    for preset, recipe, overrides, steps in cases:
        config = TrainConfig(preset=preset, recipe=recipe, data=args.data,
                             recipe_overrides=overrides, run_dir=tempfile.mkdtemp(prefix="bench-"))
        datasets, _ = build_datasets(config.resolve())
        trainer = Trainer(config, datasets=datasets)
        pipeline = delivered(datasets.train(0), args.seconds)
        training = consumed(trainer, steps)
        label = f"{preset} ({datasets.input_size}x{datasets.input_size} delivered"
        label += ", upsampled in the model)" if overrides else ")"
        rows.append((label, datasets.batch_size, pipeline, training))
        print(f"{label}: pipeline {pipeline:.0f} img/s, training {training:.1f} img/s, "
              f"ratio {pipeline / training:.1f}x", flush=True)
        del trainer, datasets
    print("\n| preset (input delivered) | batch | pipeline images/s | training images/s | ratio |")
    print("|---|---:|---:|---:|---:|")
    for label, batch, pipeline, training in rows:
        print(f"| {label} | {batch} | {pipeline:.0f} | {training:.1f} "
              f"| {pipeline / training:.0f}x |")

    child = subprocess.run([sys.executable, __file__, "--rss-child", "--data", args.data,
                            "--rss-steps", str(args.rss_steps)],
                           capture_output=True, text=True, check=True)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"\npeak RSS training the upsampled preset on {result['train_images']} CIFAR-10 training "
          f"images ({result['steps']} steps of {result['batch_size']} at 227x227): "
          f"{result['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
