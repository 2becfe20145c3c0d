"""Training throughput (images/s) in float32 against mixed precision, with XLA on and off,
for the `cifar` and `paper` presets, on whatever device TensorFlow picks (the CPU here).

Each variant builds its model under its dtype policy and trains on one resident batch with
``train_on_batch``; variants are interleaved round by round and the best round of each is
reported, as in ``bench_train.py``. The LRN layers and the softmax stay float32 in every
policy (see ``alexnet_lib.layers``).

Usage:
    python benchmarks/bench_precision.py                    # cifar and paper, ~5 min on 2 cores
    python benchmarks/bench_precision.py --only cifar
    python benchmarks/bench_precision.py --precisions float32,mixed_bfloat16,mixed_float16
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import alexnet_lib.quiet  # noqa: E402,F401  (before TensorFlow: hides its start-up lines)

# isort: split

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from alexnet_lib import build_alexnet  # noqa: E402
from alexnet_lib.precision import cpu_flags, precision_decision  # noqa: E402


class Variant:
    def __init__(self, preset: str, precision: str, xla: bool, batch_size: int):
        self.name = f"{preset} {precision}{' xla' if xla else ''}"
        keras.config.set_dtype_policy(precision)
        try:
            self.model = build_alexnet(preset)
            optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
            if precision == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                               jit_compile=xla)
        finally:
            keras.config.set_dtype_policy("float32")
        size, classes = self.model.input_shape[1], self.model.output_shape[-1]
        rng = np.random.default_rng(0)
        self.x = tf.constant(rng.standard_normal((batch_size, size, size, 3), dtype=np.float32))
        self.y = tf.constant(rng.integers(0, classes, batch_size))
        self.batch_size = batch_size
        self.rates: list[float] = []

    def round(self, seconds: float, min_steps: int) -> float:
        steps, start = 0, time.perf_counter()
        while steps < min_steps or time.perf_counter() - start < seconds:
            self.model.train_on_batch(self.x, self.y)
            steps += 1
        self.rates.append(steps * self.batch_size / (time.perf_counter() - start))
        return self.rates[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="presets whose name contains this")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--xla", default="off,on", help="off, on, or off,on")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--min-steps", type=int, default=2)
    args = parser.parse_args(argv)
    presets = [p for p in ("cifar", "paper") if args.only in p]
    devices = [d.name for d in tf.config.list_logical_devices() if "CPU" not in d.name] or ["CPU"]
    print(f"# training throughput, batch {args.batch_size}, on {devices}, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), TF {tf.__version__}", flush=True)
    flags = cpu_flags()
    shown = sorted(f for f in flags if f.startswith(("avx", "amx")) or f == "fma")
    print(f"# CPU flags: {' '.join(shown) or 'none listed'}", flush=True)
    precision, reason = precision_decision("auto")
    print(f"# precision 'auto' on this machine: {precision} ({reason})", flush=True)
    variants = []
    for preset in presets:
        for precision in args.precisions.split(","):
            for xla in args.xla.split(","):
                v = Variant(preset, precision, xla == "on", args.batch_size)
                for _ in range(2):
                    v.model.train_on_batch(v.x, v.y)
                variants.append(v)
    for r in range(args.rounds):
        for v in variants:
            print(f"round {r + 1}: {v.name:28s} {v.round(args.seconds, args.min_steps):8.1f} img/s",
                  flush=True)
    print(f"\n| variant | train images/s (best of {args.rounds}) | vs float32 |")
    print("|---|---:|---:|")
    for v in variants:
        base = next(b for b in variants if b.name.split()[0] == v.name.split()[0]
                    and b.name.split()[1] == "float32" and ("xla" in b.name) == ("xla" in v.name))
        print(f"| {v.name} | {max(v.rates):.1f} | {max(v.rates) / max(base.rates):.2f}x |")


if __name__ == "__main__":
    main()
