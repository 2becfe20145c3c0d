"""Training throughput (images/s) of the AlexNet presets, towers on and off, against a
naive Keras implementation, in one run.

Every variant trains on one resident batch with ``train_on_batch`` (no input pipeline,
no per-call set-up), the variants are interleaved round by round so that drift in the
machine's speed hits them alike, and the best round of each is reported.

The naive baselines are AlexNet as a user would write it from the paper with stock
Keras: ``Conv2D(groups=2)`` for the towers (or no towers at all) and the LRN as a
``Lambda`` around ``tf.nn.local_response_normalization``, compiled as ``compile()`` does by
default on a host without a GPU (no XLA). "paper towers, XLA" is the ``paper`` model with
its training step compiled by XLA (``train --xla on``).

Usage:
    python benchmarks/bench_train.py                 # all variants, ~6 min on 2 cores
    python benchmarks/bench_train.py --only cifar    # variants whose name contains "cifar"
    python benchmarks/bench_train.py --only "fc 384" --batch-size 128   # the cpu recipe's widths
    python benchmarks/bench_train.py --layers        # where a step's time goes, layer by layer

``--layers``: forward + backward time of single layers (``--preset``, default ``paper``) and
of the building blocks the model's design rests on (tower convolution, LRN). Each runs one
layer (or op) on a resident batch inside ``tf.function``, takes the gradient with respect to
the input and the layer's weights, and reports the best of ``--repeats`` timings of
``--steps`` calls.
"""

from __future__ import annotations

import argparse
import json
import os

import alexnet_lib.quiet  # noqa: E402,F401  (before TensorFlow: hides its start-up lines)

# isort: split

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from harness import Rate, best_of, host_line, interleaved, table  # noqa: E402

from alexnet_lib import LocalResponseNormalization, build_alexnet, get_preset  # noqa: E402
from alexnet_lib.model import scaled_widths  # noqa: E402


def naive_alexnet(preset: str, groups: int) -> keras.Model:
    """AlexNet the way a user writes it from the paper with stock Keras layers."""
    p = get_preset(preset)
    lrn = lambda x: tf.nn.local_response_normalization(  # noqa: E731
        x, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75
    )
    a = p.activation
    layers = [
        keras.Input((p.image_size, p.image_size, 3)),
        keras.layers.Conv2D(p.conv1_filters, p.conv1_kernel, strides=p.conv1_stride,
                            padding=p.conv1_padding, activation=a),
        keras.layers.Lambda(lrn),
        keras.layers.MaxPooling2D(3, 2),
        keras.layers.Conv2D(p.conv_filters[0], p.conv2_kernel, padding="same", activation=a,
                            groups=groups),
        keras.layers.Lambda(lrn),
        keras.layers.MaxPooling2D(3, 2),
        keras.layers.Conv2D(p.conv_filters[1], 3, padding="same", activation=a),
        keras.layers.Conv2D(p.conv_filters[2], 3, padding="same", activation=a, groups=groups),
        keras.layers.Conv2D(p.conv_filters[3], 3, padding="same", activation=a, groups=groups),
        keras.layers.MaxPooling2D(3, 2),
        keras.layers.Flatten(),
        keras.layers.Dense(p.fc_units, activation=a),
        keras.layers.Dropout(p.dropout),
        keras.layers.Dense(p.fc_units, activation=a),
        keras.layers.Dropout(p.dropout),
        keras.layers.Dense(p.num_classes, activation="softmax"),
    ]
    return keras.Sequential(layers, name=f"naive_{preset}_groups{groups}")


VARIANTS = {
    "paper towers": lambda: build_alexnet("paper"),
    "paper towers, XLA": lambda: build_alexnet("paper"),
    "paper no-towers": lambda: build_alexnet("paper", towers=False),
    "paper naive ungrouped": lambda: naive_alexnet("paper", groups=1),
    "paper naive groups=2": lambda: naive_alexnet("paper", groups=2),
    "cifar towers": lambda: build_alexnet("cifar"),
    "cifar no-towers": lambda: build_alexnet("cifar", towers=False),
    "cifar towers, LRN before pool": lambda: build_alexnet("cifar", lrn_position="before-pool"),
    # Other widths of the cifar topology (0.5x and 1.5x: the quick and long recipes'; 0.75x:
    # the cpu recipe's before).
    **{f"cifar towers, {scale:g}x widths":
       (lambda scale=scale: build_alexnet("cifar", **scaled_widths("cifar", scale)))
       for scale in (0.5, 0.75, 1.25, 1.5, 2)},
    # Where the 0.75x widths (48-96-144-144-96, fc 384) were narrowed for the cpu recipe
    # (conv1's and conv2's maps are the dearest, and tower widths that are multiples of 16 run
    # fastest), and where the quick recipe's 0.5x widths (32-64-96-96-64, fc 256) could go.
    **{f"cifar towers, widths {'-'.join(map(str, w))}, fc {fc}":
       (lambda w=w, fc=fc: build_alexnet("cifar", conv1_filters=w[0], conv_filters=w[1:],
                                         fc_units=fc))
       for fc, widths in ((384, ((48, 96, 144, 144, 96), (48, 96, 128, 128, 96),
                                 (32, 96, 144, 144, 96), (32, 96, 128, 128, 96),
                                 (32, 64, 144, 144, 96), (32, 64, 128, 128, 96),
                                 (32, 64, 128, 128, 128))),
                          (256, ((32, 64, 96, 96, 64), (32, 64, 64, 64, 64),
                                 (32, 32, 64, 64, 64), (32, 64, 128, 128, 96))))
       for w in widths},
}


def variant(name: str, batch_size: int, seed: int = 0) -> Rate:
    """The variant ``name``, compiled, training on one resident random batch."""
    model = VARIANTS[name]()
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy",
                  jit_compile=name.endswith(", XLA"))  # stock Keras: no XLA on CPU-only hosts
    size, classes = model.input_shape[1], model.output_shape[-1]
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.standard_normal((batch_size, size, size, 3), dtype=np.float32))
    y = tf.constant(rng.integers(0, classes, batch_size))
    rate = Rate(name, lambda: model.train_on_batch(x, y), batch_size)
    rate.params = model.count_params()
    return rate


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
    parser.add_argument("--layers", action="store_true",
                        help="time single layers and building blocks instead")
    parser.add_argument("--preset", default="paper", help="--layers: the preset")
    parser.add_argument("--steps", type=int, default=3, help="--layers: calls per timing")
    parser.add_argument("--repeats", type=int, default=2, help="--layers: timings, best kept")
    parser.add_argument("--only", default="", help="run the variants whose name contains this")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=12.0, help="minimum time per round")
    parser.add_argument("--min-steps", type=int, default=3, help="minimum steps per round")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.layers:
        print(f"# single-layer timings, TF {tf.__version__}, {os.cpu_count()} CPUs")
        print(host_line(), flush=True)
        per_layer(args.preset, args.batch_size, args.steps, args.repeats)
        building_blocks(args.batch_size, args.steps, args.repeats)
        return

    names = [n for n in VARIANTS if args.only in n]
    if not names:
        parser.error(f"--only {args.only!r} matches none of {list(VARIANTS)}")
    print(f"# training throughput, batch {args.batch_size}, float32", flush=True)
    print(host_line(), flush=True)
    variants = [variant(name, args.batch_size) for name in names]
    interleaved(variants, rounds=args.rounds, seconds=args.seconds, min_steps=args.min_steps)
    best = {v.name: v.best for v in variants}
    print()
    print(table(["variant", "params", f"train images/s (best of {args.rounds})"],
                [(v.name, f"{v.params:,}", f"{v.best:.1f}") for v in variants], right=(1, 2)))
    for ours in ("paper towers", "paper towers, XLA"):
        if {ours, "paper naive ungrouped", "paper naive groups=2"} <= best.keys():
            t = best[ours]
            print(f"\n{ours} vs naive ungrouped: {t / best['paper naive ungrouped']:.2f}x "
                  f"(target >= 1.3x); vs naive groups=2: {t / best['paper naive groups=2']:.2f}x "
                  f"(target >= 3x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"batch_size": args.batch_size, "best_images_per_s": best}, f, indent=2)


if __name__ == "__main__":
    main()
