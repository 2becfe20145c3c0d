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

import alexnet_lib.quiet  # noqa: E402,F401  (before TensorFlow: hides its start-up lines)

# isort: split

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from harness import Rate, host_line, interleaved, table  # noqa: E402

from alexnet_lib import build_alexnet  # noqa: E402
from alexnet_lib.precision import precision_decision  # noqa: E402


def variant(preset: str, precision: str, xla: bool, batch_size: int) -> Rate:
    """``preset`` built and compiled under ``precision``, training on one resident batch."""
    keras.config.set_dtype_policy(precision)
    try:
        model = build_alexnet(preset)
        optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
        if precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                      jit_compile=xla)
    finally:
        keras.config.set_dtype_policy("float32")
    size, classes = model.input_shape[1], model.output_shape[-1]
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((batch_size, size, size, 3), dtype=np.float32))
    y = tf.constant(rng.integers(0, classes, batch_size))
    return Rate(f"{preset} {precision}{' xla' if xla else ''}",
                lambda: model.train_on_batch(x, y), batch_size)


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
    print(f"# training throughput, batch {args.batch_size}, on {devices}", flush=True)
    print(host_line(), flush=True)
    precision, reason = precision_decision("auto")
    print(f"# precision 'auto' on this machine: {precision} ({reason})", flush=True)
    variants = [variant(preset, precision, xla == "on", args.batch_size)
                for preset in presets for precision in args.precisions.split(",")
                for xla in args.xla.split(",")]
    interleaved(variants, rounds=args.rounds, seconds=args.seconds, min_steps=args.min_steps)

    def base(v):
        return next(b for b in variants if b.name.split()[0] == v.name.split()[0]
                    and b.name.split()[1] == "float32" and ("xla" in b.name) == ("xla" in v.name))

    print()
    print(table(["variant", f"train images/s (best of {args.rounds})", "vs float32"],
                [(v.name, f"{v.best:.1f}", f"{v.best / base(v).best:.2f}x") for v in variants],
                right=(1, 2)))

if __name__ == "__main__":
    main()
