"""GPU check: the original CIFAR-10 experiment on this machine's GPU, and the paper's two-GPU
tower split on two logical GPUs.

1. Speed: the `upsampled` preset with the `origin` recipe (Adam 5e-5, batch 64, 227x227 input) is
   trained for ``--steps`` steps by the project's own training step (``Trainer``), on
   CIFAR-10-shaped data (random 32x32 images, or ``--data`` for real ones), for each
   precision and with the upsampling in the input pipeline or on the GPU
   (``resize_in_model``). Prints training and evaluation images/s and the projected wall time
   of the original experiment's 18 epochs (45,000 training and 5,000 validation images per
   epoch, then the 10,000 test images). The original took 1 h 45 min on a V100; the target
   is <= 3 minutes.
2. Towers: in a fresh process the first GPU is split into two logical GPUs (unless there are
   two), the `upsampled` model is built with ``tower_devices=["/GPU:0", "/GPU:1"]``, its output is
   compared with the unplaced model's, the placer's log is checked for tower ops on both
   devices, and a few training steps run.

Usage (on a GPU machine):  python benchmarks/gpu_check.py [--steps 200] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import alexnet_lib.quiet  # noqa: E402,F401  (before TensorFlow: hides its start-up lines)

# The original experiment: 18 epochs of 45,000 training and 5,000 validation images, then the
# 10,000 test images.
SEED_EPOCHS, SEED_TRAIN, SEED_VAL, SEED_TEST = 18, 45_000, 5_000, 10_000


def projected_seed_seconds(train_rate: float, eval_rate: float) -> float:
    """The original experiment, whole, at these training and evaluation images/s."""
    return SEED_EPOCHS * (SEED_TRAIN / train_rate + SEED_VAL / eval_rate) + SEED_TEST / eval_rate


TOWERS = r'''
import json, sys
import tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
if len(gpus) == 1:
    tf.config.set_logical_device_configuration(
        gpus[0], [tf.config.LogicalDeviceConfiguration(memory_limit=20000)] * 2)
tf.debugging.set_log_device_placement(True)
import numpy as np
from alexnet_lib.distribute import placed_twin
devices = ["/GPU:0", "/GPU:1"]
reference, placed = placed_twin("upsampled", devices)  # the same weights
x = np.random.default_rng(0).normal(size=(8, 227, 227, 3)).astype("float32")
diff = float(np.abs(reference(x).numpy() - placed(x).numpy()).max())
print("=== placed ===", file=sys.stderr, flush=True)
tf.function(lambda x: placed(x, training=False))(x)
print("=== end ===", file=sys.stderr, flush=True)
placed.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
y = np.random.default_rng(1).integers(0, 10, 8)
losses = [float(placed.train_on_batch(x, y)) for _ in range(3)]
print(json.dumps({"max_output_difference": diff, "losses": losses}))
'''


def speed(args) -> list[dict]:
    import numpy as np
    import tensorflow as tf

    from alexnet_lib.config import TrainConfig
    from alexnet_lib.data.datasets import make_datasets
    from alexnet_lib.train import Trainer

    print(f"devices: {[d.name for d in tf.config.list_logical_devices()]}", flush=True)
    if args.data:
        from alexnet_lib.data.sources import load_source
        loaded = load_source(args.data)
    else:
        rng = np.random.default_rng(0)
        splits = {"train": (rng.integers(0, 256, (50_000, 32, 32, 3), dtype=np.uint8),
                            rng.integers(0, 10, 50_000).astype(np.int32)),
                  "test": (rng.integers(0, 256, (10_000, 32, 32, 3), dtype=np.uint8),
                           rng.integers(0, 10, 10_000).astype(np.int32))}
        loaded = (splits, tuple(f"class{i}" for i in range(10)), [])
    results = []
    for precision in args.precisions.split(","):
        for in_model in (False, True):
            overrides = {"precision": precision, "resize_in_model": in_model, "epochs": 1}
            config = TrainConfig(preset="upsampled", recipe="origin", recipe_overrides=overrides,
                                 data="synthetic" if not args.data else args.data,
                                 run_dir=f"/tmp/gpu-check-{precision}-{in_model}")
            resolved = config.resolve().with_classes(10)
            recipe = resolved.recipe
            datasets = make_datasets(config.data, resolved.preset,
                                     loaded=loaded, batch_size=recipe.batch_size,
                                     eval_batch_size=256, augment=recipe.augment,
                                     normalization=recipe.normalization,
                                     resize_in_model=in_model)
            trainer = Trainer(config, datasets=datasets)
            iterator = iter(trainer.datasets.train(0))
            for _ in range(args.warmup):
                trainer.step(iterator)
            trainer.step.sums()
            start = time.perf_counter()
            for _ in range(args.steps):
                trainer.step(iterator)
            trainer.step.sums()  # waits for the last step
            train_rate = args.steps * recipe.batch_size / (time.perf_counter() - start)
            start = time.perf_counter()
            trainer.evaluate_split(trainer.datasets.val())
            eval_rate = trainer.datasets.size("val") / (time.perf_counter() - start)
            projected = projected_seed_seconds(train_rate, eval_rate)
            row = {"precision": precision, "resize": "model" if in_model else "pipeline",
                   "train_images_per_s": round(train_rate, 1),
                   "eval_images_per_s": round(eval_rate, 1),
                   "projected_18_epochs_minutes": round(projected / 60, 2)}
            print(json.dumps(row), flush=True)
            results.append(row)
    return results


def towers() -> dict:
    result = subprocess.run([sys.executable, "-c", TOWERS], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}, timeout=600)
    if result.returncode:
        return {"ok": False, "error": result.stderr[-2000:]}
    log = result.stderr.split("=== placed ===")[1].split("=== end ===")[0]
    devices = {}
    for line in log.splitlines():
        if "placer.cc" in line and "(Conv2D)" in line and "_tower" in line:
            tower = "tower1" if "tower1" in line else "tower2"
            devices.setdefault(tower, set()).add(line.rsplit("device:", 1)[-1].strip())
    data = json.loads(result.stdout.strip().splitlines()[-1])
    ok = (devices.get("tower1") == {"GPU:0"} and devices.get("tower2") == {"GPU:1"}
          and data["max_output_difference"] < 1e-3)
    return {"ok": ok, "tower_conv_devices": {k: sorted(v) for k, v in devices.items()}, **data}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--precisions", default="float32,mixed_bfloat16,mixed_float16")
    parser.add_argument("--data", help="a CIFAR-10 source (default: random CIFAR-shaped data)")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args(argv)
    if not args.skip_speed:
        rows = speed(args)
        best = min(rows, key=lambda r: r["projected_18_epochs_minutes"])
        print(f"\nfastest: {best} -> the original experiment's 18 epochs projected at "
              f"{best['projected_18_epochs_minutes']} minutes (target <= 3)", flush=True)
    print("towers on two logical GPUs:", json.dumps(towers()), flush=True)


if __name__ == "__main__":
    main()
