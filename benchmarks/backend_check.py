"""The original experiment on one of Keras's other backends (JAX by default), for a machine
whose accelerator TensorFlow cannot use (no TensorFlow build for its CUDA, say).

The project trains with TensorFlow; its model (``alexnet_lib.model``, ``alexnet_lib.layers``)
is written in Keras operations only, so it also runs on ``KERAS_BACKEND=jax`` or ``torch``.
This script measures that model there, with no TensorFlow installed:

1. LRN: :class:`~alexnet_lib.layers.LocalResponseNormalization` against a NumPy reference
   of the paper's formula, and (on JAX) its hand-written gradient against autodiff of it.
2. Speed, per precision: the `upsampled` preset (the paper's network at 227x227, 10 classes)
   behind an upsampling of 32x32 uint8 images to 227x227, compiled with the `origin` recipe's
   optimizer (Adam, lr 5e-5, batch 64) and trained with ``model.fit`` on random
   CIFAR-10-shaped images for one epoch of ``--train`` images (the first, which compiles,
   is timed apart). Prints training and evaluation images/s and the projected wall time of
   the original experiment's 18 epochs (45,000 training and 5,000 validation images each,
   then the 10,000 test images; the original took 1 h 45 min on a V100).
3. With ``--full``: the 18 epochs themselves, in the first precision, timed end to end.

``--preset paper`` measures the paper's own network instead (1000 classes, 60,965,224
parameters, batch 128, SGD with momentum 0.9: the `paper` recipe's step) and projects the
paper's 90 epochs of ImageNet's 1,281,167 training images with its 50,000 validation images
each epoch (the paper: five to six days on two GTX 580s).

The random images make the times real and the accuracies meaningless. The tower placement
(``tower_devices``) uses ``tf.device`` and is TensorFlow's alone: ``benchmarks/gpu_check.py``.

Usage:  KERAS_BACKEND=jax python benchmarks/backend_check.py [--full] [--preset paper] [--train N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from gpu_check import (  # noqa: E402  (the script beside this one)
    SEED_EPOCHS,
    SEED_TEST,
    SEED_TRAIN,
    SEED_VAL,
    projected_seed_seconds,
)

from alexnet_lib.layers import LocalResponseNormalization  # noqa: E402
from alexnet_lib.model import build_alexnet, get_preset  # noqa: E402

PAPER_EPOCHS, PAPER_TRAIN, PAPER_VAL = 90, 1_281_167, 50_000


def check_lrn() -> dict:
    """Largest differences from the paper's formula: forward, and gradient (JAX only)."""
    rng = np.random.default_rng(0)
    x = rng.normal(scale=10.0, size=(4, 6, 6, 16)).astype(np.float32)
    k, n, alpha, beta = 2.0, 5, 1e-4, 0.75

    def reference(a, xp=np):
        squares = xp.stack([(a[..., max(0, i - n // 2):i + n // 2 + 1] ** 2).sum(-1)
                            for i in range(a.shape[-1])], axis=-1)
        return a / (k + alpha * squares) ** beta

    layer = LocalResponseNormalization(k=k, n=n, alpha=alpha, beta=beta)
    out = keras.ops.convert_to_numpy(layer(x))
    result = {"forward_max_difference": float(np.abs(out - reference(x)).max())}
    if keras.backend.backend() == "jax":
        import jax
        import jax.numpy as jnp

        weights = jnp.asarray(rng.normal(size=x.shape).astype(np.float32))
        ours = jax.grad(lambda a: jnp.sum(layer(a) * weights))(jnp.asarray(x))
        autodiff = jax.grad(lambda a: jnp.sum(reference(a, jnp) * weights))(jnp.asarray(x))
        result["gradient_max_difference"] = float(jnp.abs(ours - autodiff).max())
    return result


def compiled_model(precision: str, preset: str = "upsampled") -> keras.Model:
    """32x32 uint8 images upsampled to the preset's input, then the preset's network."""
    keras.mixed_precision.set_dtype_policy(precision)
    size = get_preset(preset).image_size
    inputs = keras.Input((32, 32, 3), dtype="uint8", name="images")
    x = keras.layers.Rescaling(1 / 64.0, offset=-2.0)(keras.ops.cast(inputs, "float32"))
    x = keras.layers.Resizing(size, size, interpolation="bilinear")(x)
    model = keras.Model(inputs, build_alexnet(preset)(x))
    optimizer = (keras.optimizers.Adam(5e-5) if preset == "upsampled"  # the recipes' optimizers
                 else keras.optimizers.SGD(0.01, momentum=0.9))
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def images(count: int, seed: int, classes: int = 10):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8),
            rng.integers(0, classes, count).astype(np.int32))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def speed(precision: str, train, test, batch: int, preset: str = "upsampled") -> dict:
    model = compiled_model(precision, preset)
    first = timed(lambda: model.fit(*train, batch_size=batch, epochs=1, verbose=0))
    epoch = timed(lambda: model.fit(*train, batch_size=batch, epochs=1, verbose=0))
    model.evaluate(*test, batch_size=batch, verbose=0)  # compiles the test step
    evaluation = timed(lambda: model.evaluate(*test, batch_size=batch, verbose=0))
    train_ips, eval_ips = len(train[0]) / epoch, len(test[0]) / evaluation
    result = {"preset": preset, "precision": precision, "batch": batch,
              "first_epoch_s": round(first, 1), "train_images_per_s": round(train_ips, 1),
              "eval_images_per_s": round(eval_ips, 1)}
    if preset == "upsampled":
        result["projected_seed_18_epochs_s"] = round(projected_seed_seconds(train_ips, eval_ips), 1)
    else:
        result["projected_paper_90_epochs_h"] = round(
            PAPER_EPOCHS * (PAPER_TRAIN / train_ips + PAPER_VAL / eval_ips) / 3600, 2)
    return result


def full_run(precision: str, batch: int) -> dict:
    model = compiled_model(precision)
    train, val, test = images(SEED_TRAIN, 1), images(SEED_VAL, 2), images(SEED_TEST, 3)
    start = time.perf_counter()
    model.fit(*train, batch_size=batch, epochs=SEED_EPOCHS, validation_data=val, verbose=2)
    model.evaluate(*test, batch_size=batch, verbose=0)
    return {"precision": precision, "seed_18_epochs_wall_s": round(time.perf_counter() - start, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--train", type=int, default=12_800, help="images per timed epoch")
    parser.add_argument("--test", type=int, default=SEED_TEST)
    parser.add_argument("--preset", choices=("upsampled", "paper"), default="upsampled")
    parser.add_argument("--batch", type=int, default=None,
                        help="default: the recipe's (origin 64, paper 128)")
    parser.add_argument("--full", action="store_true",
                        help="then the original experiment's 18 epochs")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="skip --full where its projected time would end past this many "
                             "seconds from the start")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.full and args.preset != "upsampled":
        parser.error("--full runs the original experiment: it needs --preset upsampled")
    batch = args.batch or (64 if args.preset == "upsampled" else 128)
    classes = 10 if args.preset == "upsampled" else 1000
    start = time.perf_counter()
    print(f"backend: {keras.backend.backend()} {keras.__version__}; devices: "
          f"{keras.distribution.list_devices()}", flush=True)
    results = {"lrn": check_lrn()}
    print(json.dumps(results["lrn"]), flush=True)
    train, test = images(args.train, 1, classes), images(args.test, 3, classes)
    results["speed"] = []
    for precision in args.precisions.split(","):
        results["speed"].append(speed(precision, train, test, batch, args.preset))
        print(json.dumps(results["speed"][-1]), flush=True)
    projected = results["speed"][0].get("projected_seed_18_epochs_s", 0.0)
    if args.full and args.budget_s and time.perf_counter() - start + projected > args.budget_s:
        print(f"--full skipped: {projected:.0f} s projected, past --budget-s", flush=True)
    elif args.full:
        results["full"] = full_run(args.precisions.split(",")[0], batch)
        print(json.dumps(results["full"]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
