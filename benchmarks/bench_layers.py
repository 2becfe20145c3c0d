"""Forward + backward time of single layers: where a training step's time goes, and the
building blocks the model's design rests on (tower convolution, LRN).

Each measurement runs one layer (or op) on a resident batch inside ``tf.function``, takes
the gradient with respect to the input and the layer's weights, and reports the best
of ``--repeats`` timings of ``--steps`` calls.

Usage:
    python benchmarks/bench_layers.py                  # paper preset, towers on
    python benchmarks/bench_layers.py --preset cifar --batch-size 128
"""

from __future__ import annotations

import argparse
import os

import alexnet_lib.quiet  # noqa: E402,F401  (before TensorFlow: hides its start-up lines)

# isort: split

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from harness import best_of  # noqa: E402

from alexnet_lib import LocalResponseNormalization, build_alexnet  # noqa: E402


def time_grad(fn, inputs, variables, steps: int, repeats: int) -> float:
    """Best-of-``repeats`` mean milliseconds of forward + backward of ``fn(inputs)``."""

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(fn(inputs))
        return tape.gradient(loss, [inputs] + list(variables))

    step()
    step()

    def run():
        for _ in range(steps):
            step()

    return best_of(repeats, run) / steps * 1000


def per_layer(preset: str, batch_size: int, steps: int, repeats: int, **overrides):
    model = build_alexnet(preset, **overrides)
    rng = np.random.default_rng(0)
    print(f"\n## {model.name}{overrides or ''}: forward + backward per layer, batch {batch_size}")
    print("(conv1 includes its input gradient, which training does not compute)\n")
    print("| layer | ms |\n|---|---:|")
    total = 0.0
    for layer in model.layers[1:]:
        shape = (batch_size,) + tuple(layer.input.shape[1:])
        x = tf.constant(rng.uniform(0, 1, shape).astype(np.float32))
        ms = time_grad(lambda t, layer=layer: layer(t, training=True), x,
                       layer.trainable_variables, steps, repeats)
        total += ms
        print(f"| {layer.name} | {ms:.0f} |", flush=True)
    print(f"| **sum** | {total:.0f} |")


def building_blocks(batch_size: int, steps: int, repeats: int):
    rng = np.random.default_rng(1)
    print(f"\n## building blocks, forward + backward, batch {batch_size}\n")
    print("| operation | ms |\n|---|---:|")

    x = tf.constant(rng.uniform(0, 1, (batch_size, 27, 27, 96)).astype(np.float32))
    k1, k2 = (tf.Variable(rng.normal(0, 0.01, (5, 5, 48, 128)).astype(np.float32))
              for _ in range(2))
    kg = tf.Variable(rng.normal(0, 0.01, (5, 5, 48, 256)).astype(np.float32))
    ku = tf.Variable(rng.normal(0, 0.01, (5, 5, 96, 256)).astype(np.float32))

    def split_towers(t):
        a, b = tf.split(t, 2, axis=-1)
        return tf.concat([tf.nn.conv2d(a, k1, 1, "SAME"), tf.nn.conv2d(b, k2, 1, "SAME")], -1)

    rows = [
        ("conv2 as split + two convs + concat (TowerConv2D)", split_towers, x, [k1, k2]),
        ("conv2 ungrouped, 96 -> 256 maps", lambda t: tf.nn.conv2d(t, ku, 1, "SAME"), x, [ku]),
        ("conv2 as tf.nn.conv2d with a grouped (48-deep) filter",
         lambda t: tf.nn.conv2d(t, kg, 1, "SAME"), x, [kg]),
    ]
    a = tf.constant(rng.uniform(0, 50, (batch_size, 55, 55, 96)).astype(np.float32))

    def tf_lrn(t):
        return tf.concat([tf.nn.local_response_normalization(p, 2, 2.0, 1e-4, 0.75)
                          for p in tf.split(t, 2, axis=-1)], -1)

    lrn = LocalResponseNormalization(groups=2)
    rows += [
        ("LRN on conv1's output (55x55x96, 2 groups), tf.nn.local_response_normalization",
         tf_lrn, a, []),
        ("the same, LocalResponseNormalization", lrn, a, []),
    ]
    for name, fn, inputs, variables in rows:
        try:
            ms = f"{time_grad(fn, inputs, variables, steps, repeats):.0f}"
        except (tf.errors.OpError, ValueError) as error:
            ms = f"fails ({type(error).__name__})"
        print(f"| {name} | {ms} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    print(f"# single-layer timings, TF {tf.__version__}, {os.cpu_count()} CPUs")
    per_layer(args.preset, args.batch_size, args.steps, args.repeats)
    building_blocks(args.batch_size, args.steps, args.repeats)


if __name__ == "__main__":
    main()
