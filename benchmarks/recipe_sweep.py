"""Short-horizon comparison of training choices for the ``cpu`` recipe.

Each variant trains the ``cifar`` preset from scratch on the same seeded subset of the
CIFAR-10 JPEG copy for a few epochs and reports training and validation accuracy per epoch.
The horizon is short (by default 2 epochs of 15,000 images, about 4 minutes per variant on 2
cores), so it ranks choices for a short CPU budget; it does not predict final accuracy.

Usage:
    python benchmarks/recipe_sweep.py                      # every variant (~25 min)
    python benchmarks/recipe_sweep.py --only adamw         # variants whose name contains it
"""

from __future__ import annotations

import argparse
import os
import re
import time

import alexnet_lib.quiet  # noqa: E402,F401  (before TensorFlow: hides its start-up lines)

# isort: split

from alexnet_lib.config import TrainConfig  # noqa: E402
from alexnet_lib.paths import shared_cifar10_jpeg  # noqa: E402
from alexnet_lib.run_data import build_datasets  # noqa: E402
from alexnet_lib.train import Trainer  # noqa: E402

# Every variant starts from this base (the first cpu recipe tried: SGD with Nesterov momentum,
# the paper's weight decay, the preset's dropout 0.5, full 32x32 input) and changes a few fields.
BASE = {"optimizer": "sgd", "nesterov": True, "learning_rate": 0.05, "weight_decay": 5e-4,
        "label_smoothing": 0.1, "augment": "crop,flip",
        "schedule": "onecycle", "warmup_epochs": 0.3}
ADAMW = {"optimizer": "adamw", "weight_decay": 0.05, "nesterov": False}
VARIANTS = {
    "sgd nesterov lr 0.05": {},
    "sgd nesterov lr 0.02": {"learning_rate": 0.02},
    "adamw lr 2e-3": {**ADAMW, "learning_rate": 2e-3},
    "adamw lr 4e-3": {**ADAMW, "learning_rate": 4e-3},
    "adamw lr 1e-3, no label smoothing": {**ADAMW, "learning_rate": 1e-3, "label_smoothing": 0.0},
    "adamw lr 2e-3, dropout 0": {**ADAMW, "learning_rate": 2e-3, "dropout": 0.0},
    "adamw lr 2e-3, dropout 0, flips only": {**ADAMW, "learning_rate": 2e-3, "dropout": 0.0,
                                             "augment": "flip"},
    "adamw lr 2e-3, dropout 0, no augmentation": {**ADAMW, "learning_rate": 2e-3, "dropout": 0.0,
                                                  "augment": "none"},
}
# The variants above ran on the cifar preset as it was then (FIRST_PRESET). The ones below
# are the cpu recipe's first form (batch 64, crops + flips, decay 0.05) against changes to
# the model or its input, on later forms of the preset given in full ("preset": overrides).
FIRST_PRESET = {"conv2_kernel": 5, "lrn_position": "before-pool"}
CPU = {**ADAMW, "learning_rate": 2e-3, "dropout": 0.0, "warmup_epochs": 0.5}
K5 = {"conv2_kernel": 5, "lrn_position": "after-pool"}
VARIANTS.update({
    "cpu, conv2 5x5": {**CPU, "preset": K5},
    "cpu, conv2 3x3": {**CPU, "preset": {**K5, "conv2_kernel": 3}},
    "cpu, conv2 5x5, no LRN": {**CPU, "preset": {**K5, "lrn": False}},
    "cpu, conv2 5x5, the paper's mean image (0..255 scale: LRN acts)": {
        **CPU, "normalization": "mean_image", "preset": K5},
})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(shared_cifar10_jpeg()))
    parser.add_argument("--only", default="")
    parser.add_argument("--train-subset", type=int, default=15000)
    parser.add_argument("--val-size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--runs", default="/tmp/recipe-sweep")
    args = parser.parse_args(argv)
    rows = []
    for name, overrides in VARIANTS.items():
        if args.only not in name:
            continue
        overrides = dict(overrides)
        preset = dict(overrides.pop("preset", FIRST_PRESET))
        if "dropout" in overrides:  # a preset field
            preset["dropout"] = overrides.pop("dropout")
        recipe = {**BASE, "batch_size": args.batch_size, "epochs": args.epochs, **overrides}
        config = TrainConfig(data=args.data, recipe_overrides=recipe, preset_overrides=preset,
                             val_size=args.val_size,
                             train_subset=args.train_subset,
                             run_dir=os.path.join(args.runs, re.sub(r"[^\w.-]+", "_", name)))
        start = time.time()
        datasets, _ = build_datasets(config.resolve())
        history = Trainer(config, datasets=datasets, log=open(os.devnull, "w")).fit()
        rows.append((name, history, time.time() - start))
        print(name, [(round(r["accuracy"], 3), round(r["val_accuracy"], 3)) for r in history],
              f"{time.time() - start:.0f}s", flush=True)
    print(f"\n| variant (batch {args.batch_size}, {args.train_subset} images, one-cycle) | "
          + " | ".join(f"val acc epoch {e + 1}" for e in range(args.epochs)) + " |")
    print("|---|" + "---:|" * args.epochs)
    for name, history, _ in rows:
        print(f"| {name} | " + " | ".join(f"{r['val_accuracy']:.3f}" for r in history) + " |")


if __name__ == "__main__":
    main()
