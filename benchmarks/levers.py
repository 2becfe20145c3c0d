"""What each lever gives: whole runs of one recipe, each with one change, same seed and split.

Every lever is one ``python -m alexnet_lib train`` command (the recipe named by ``--recipe``
with the lever's ``--set`` overrides) on the CIFAR-10 JPEG copy, timed as a whole (start-up,
training and the final evaluation), into ``<root>/<recipe>/<lever>``. Afterwards every run
is evaluated again with the ``shift`` views (``evaluate(write=False)``: its ``metrics.json``
keeps the recipe's own). A rerun skips finished runs, so the table can be built in pieces.

Usage:
    python benchmarks/levers.py --recipe quick                 # every lever (~4 min each)
    python benchmarks/levers.py --recipe quick --only crop     # levers whose name contains it
    python benchmarks/levers.py --recipe quick --table         # the table of finished runs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import alexnet_lib.quiet  # noqa: F401  (before TensorFlow: hides its start-up lines)

# isort: split

from alexnet_lib.evaluate import evaluate  # noqa: E402
from alexnet_lib.paths import shared_cifar10_jpeg  # noqa: E402
from alexnet_lib.precision import cpu_flags, cpu_model  # noqa: E402
from alexnet_lib.runs import read_history  # noqa: E402

# Where every lever starts: the quick recipe as it was before these levers went into it
# (the cifar widths over 3 epochs of batch 32 at a peak rate of 2e-3, label smoothing 0.1,
# random flips, He-initialized conv1, 5,000 validation images). Pass --base "" to start from
# the recipe as it is now.
BASE = ("--epochs 3 --batch-size 32 --set learning_rate=2e-3 --set conv1_filters=64 "
        "--set conv_filters=[128,192,192,128] --set fc_units=512 --val-size 5000 "
        "--set label_smoothing=0.1 --set augment=flip --set conv1_init=preset")
# Each lever: the train command's extra arguments, after the base's (later ones win).
LEVERS: dict[str, list[str]] = {
    "base (nothing changed)": [],
    "label smoothing 0.2": ["--set", "label_smoothing=0.2"],
    "translations of up to 2 px": ["--set", "augment=crop=2,flip"],
    "alternating flips": ["--set", "augment=flip=alternate"],
    "translations 2 px + alternating flips": ["--set", "augment=crop=2,flip=alternate"],
    "all 50,000 training images, no validation": ["--val-size", "0"],
    "learning rate 4e-3": ["--set", "learning_rate=4e-3"],
    "weight decay 0.05": ["--set", "weight_decay=0.05"],
    "batch 64, learning rate 4e-3": ["--batch-size", "64", "--set", "learning_rate=4e-3"],
    "whitened conv1": ["--set", "conv1_init=whiten"],
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def run_lever(name: str, args, root: Path) -> None:
    run_dir = root / slug(name)
    if (run_dir / "lever.json").exists():
        print(f"{name}: done before ({run_dir})")
        return
    command = [sys.executable, "-m", "alexnet_lib", "train", "--data", args.data,
               "--recipe", args.recipe, "--seed", str(args.seed), "--run-dir", str(run_dir),
               *args.base.split(), *LEVERS[name], *args.extra]
    print(f"{name}: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - started
    shift = evaluate(run_dir, views="shift", write=False)
    record = {"lever": name, "command": " ".join(["python", *command[1:]]), "wall_s": wall,
              "shift_top1": shift["test_top1"], "shift_seconds": shift["seconds"],
              "cpu": cpu_model(), "cpu_flags": sorted(cpu_flags() & {"avx2", "avx512f",
                                                                      "avx512_bf16", "amx_bf16"})}
    (run_dir / "lever.json").write_text(json.dumps(record, indent=2))


def table(root: Path) -> str:
    lines = ["| lever | wall time | last validation accuracy | test top-1, centre | "
             "centre + mirror | 6 shifted views |", "|---|---:|---:|---:|---:|---:|"]
    for name in LEVERS:
        run_dir = root / slug(name)
        if not (run_dir / "lever.json").exists():
            continue
        lever = json.loads((run_dir / "lever.json").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
        history = read_history(run_dir)
        val = history[-1]["val_accuracy"]
        minutes, seconds = divmod(round(lever["wall_s"]), 60)
        lines.append(f"| {name} | {minutes} min {seconds:02d} s | "
                     f"{'' if val is None else f'{val:.4f}'} | {metrics['center_top1']:.4f} | "
                     f"{metrics['test_top1']:.4f} | {lever['shift_top1']:.4f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="quick")
    parser.add_argument("--data", default=str(shared_cifar10_jpeg()))
    parser.add_argument("--root", default="runs/levers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", default=BASE, help=f"arguments of every run (default {BASE!r})")
    parser.add_argument("--only", default="", help="levers whose name contains this")
    parser.add_argument("--table", action="store_true", help="only print the table")
    parser.add_argument("extra", nargs="*", help="more train arguments, after --")
    args = parser.parse_args(argv)
    root = Path(args.root) / args.recipe
    if not args.table:
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        for name in LEVERS:
            if args.only in name:
                run_lever(name, args, root)
    print(f"\nRecipe {args.recipe!r}, seed {args.seed}; {cpu_model()}\n")
    print(table(root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
