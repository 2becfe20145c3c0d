"""What the divergence check costs: the training step with and without it.

Each step of the training loop checks the loss, the gradients and, after the update, every
weight and optimizer slot for NaN or infinity (``alexnet_lib.train._all_finite``). This
times ``Trainer``'s compiled step on real images with the check and with it replaced by a
constant, interleaved round by round in one process, and reports the median of the rounds.

Usage:
    python benchmarks/bench_divergence_check.py                      # cifar, batch 32
    python benchmarks/bench_divergence_check.py --preset paper --batch-size 32 --steps 8
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import alexnet_lib.quiet  # noqa: E402,F401  (before TensorFlow: hides its start-up lines)

# isort: split

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import alexnet_lib.train as train  # noqa: E402
from alexnet_lib.config import TrainConfig  # noqa: E402
from alexnet_lib.paths import shared_cifar10_jpeg  # noqa: E402

CHECK = train._all_finite


def step_seconds(args, check: bool, folder: str) -> float:
    train._all_finite = CHECK if check else (lambda tensors: tf.constant(True))
    config = TrainConfig(
        preset=args.preset, recipe="cpu", data=args.data, val_size=0, test_subset=64,
        train_subset=args.batch_size * (args.steps + 3),
        run_dir=tempfile.mkdtemp(dir=folder), recipe_overrides={"batch_size": args.batch_size})
    with open(os.devnull, "w") as quiet:
        trainer = train.Trainer(config, log=quiet)
    batches = iter(trainer.datasets.train(0))
    for _ in range(3):  # tracing and warm-up
        trainer._train_step(batches)
    started = time.perf_counter()
    for _ in range(args.steps):
        trainer._train_step(batches)
    float(trainer.loss_sum.read_value())  # wait for the last step
    trainer.close()
    return (time.perf_counter() - started) / args.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cifar")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", default=str(shared_cifar10_jpeg()))
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"{args.preset}, batch {args.batch_size}, {args.steps} steps x {args.rounds} rounds")
    rounds = {True: [], False: []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for check in (True, False):
                rounds[check].append(step_seconds(args, check, folder))
    with_check, without = np.median(rounds[True]), np.median(rounds[False])
    print(f"step with the check {with_check * 1000:.1f} ms, without {without * 1000:.1f} ms: "
          f"{(with_check / without - 1) * 100:+.1f}%")
    print(f"rounds (ms): with {[round(s * 1000, 1) for s in rounds[True]]}, "
          f"without {[round(s * 1000, 1) for s in rounds[False]]}")


if __name__ == "__main__":
    main()
