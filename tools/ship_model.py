"""Ship a finished run as the project's trained model (``models/cifar-cpu``).

Copies the run folder's configuration, normalization, history, metrics and best model
(not its resume checkpoints, epoch models or TensorBoard logs) into the shipped folder,
and re-saves the model with its ``inference_info`` naming the shipped folder as its
``run_dir``; the weights and the preprocessing stay as they were (checked: the outputs of
the copy equal the original's on random images).

Usage:
    python tools/ship_model.py runs/cifar-cpu
"""

from __future__ import annotations

import argparse
import shutil

import alexnet_lib.quiet  # noqa: F401  (before TensorFlow: hides its start-up lines)

# isort: split

import numpy as np  # noqa: E402

from alexnet_lib.paths import PROJECT_ROOT, shipped_model, shipped_run  # noqa: E402
from alexnet_lib.runs import RunFolder, load_model, save_model  # noqa: E402

FILES = ("config.yaml", "resolved.yaml", "normalization.json", "history.csv", "metrics.json")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    args = parser.parse_args(argv)
    run = RunFolder(args.run_dir)
    target = shipped_run()
    missing = [name for name in FILES if not (run.path / name).exists()]
    if missing or not run.model("best").exists():
        raise SystemExit(f"{run.path} is not a finished run: it lacks "
                         f"{', '.join(missing) or 'checkpoints/best.keras'}.")
    model = load_model(run.model("best"))
    model.get_layer("inference_info").info["run_dir"] = str(target.relative_to(PROJECT_ROOT))
    shipped_model().parent.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(run.path / name, target / name)
    save_model(model, shipped_model())
    x = np.random.default_rng(0).normal(size=(8, *model.input_shape[1:])).astype(np.float32)
    original = load_model(run.model("best"))
    np.testing.assert_array_equal(load_model(shipped_model())(x), original(x))
    print(f"Shipped {run.path} as {target} (model: {shipped_model()}).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
