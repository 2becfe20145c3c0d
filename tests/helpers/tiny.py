"""The suite's small learnable data and model: four colour-coded classes, a 16x16 AlexNet."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from alexnet_lib.config import TrainConfig

COLOURS = [(220, 40, 40), (40, 200, 60), (50, 60, 220), (230, 220, 50)]
CLASSES = ["red", "green", "blue", "yellow"]
SMALL = {"image_size": 16, "conv1_filters": 16, "conv_filters": [24, 32, 32, 24], "fc_units": 64}


def make_tree(root: Path, train: int = 40, test: int = 12, size: int = 16, noise: float = 40,
              colours=COLOURS, seed: int = 0) -> Path:
    """Four colour-coded classes with noise (PNG class folders): learnable in a few dozen
    steps."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("test", test)):
        for label, name in enumerate(CLASSES):
            folder = Path(root) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = np.array(colours[label]) + rng.normal(0, noise, (size, size, 3))
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return Path(root)


def config(tree, run_dir, **kw) -> TrainConfig:
    """The suite's training configuration: 3 epochs of 9 steps on ``make_tree``'s data.

    float32 is pinned: the tests compare runs to 1e-5, which the precision ``auto`` picks
    on a GPU or a bfloat16 CPU would not hold. The test-time views are pinned to the mirror
    pair, which the tests recompute by hand (the cpu recipe's own are ``shift10``). The
    augmentation is pinned to the alternating flips (the cpu recipe also translates by up to
    two pixels): with the translations, a one-device run and a two-replica run of the same
    batches (checked equal) part after their third step on this tiny network (measured:
    weights 1e-6 apart, then 1e-3, then 2e-2): the replicas' gradient sums round
    differently, and the steps that follow amplify it, so the mirrored test would compare
    noise."""
    recipe = {"epochs": 3, "batch_size": 16, "learning_rate": 0.02, "warmup_epochs": 0.5,
              "precision": "float32", "eval_views": "flip", "augment": "flip=alternate"}
    recipe.update(kw.pop("recipe", {}))
    preset = {**SMALL, **kw.pop("preset", {})}
    fields = {"val_size": 16, "checkpoint_every": 4, **kw}
    return TrainConfig(data=str(tree), preset_overrides=preset, recipe_overrides=recipe,
                       run_dir=str(run_dir), **fields)


def cli_args(tree, run_dir, *extra) -> list[str]:
    """``train`` arguments meaning the same run as :func:`config`."""
    sets = [f"--set={k}={json.dumps(v)}" for k, v in SMALL.items()]
    return ["train", "--data", str(tree), "--run-dir", str(run_dir), "--epochs", "3",
            "--batch-size", "16", "--val-size", "16", "--checkpoint-every", "2",
            "--precision", "float32", "--set=eval_views=flip", "--set=augment=flip=alternate",
            "--set=learning_rate=0.02", "--set=warmup_epochs=0.5", *sets, *extra]


def copy_run(run: Path, target: Path) -> Path:
    """A copy of a finished run folder (without its lock) for a test that changes it."""
    shutil.copytree(run, target, ignore=shutil.ignore_patterns(".lock"))
    return target


def assert_finite_checkpoints(prefixes) -> None:
    """Every floating-point tensor of every checkpoint is finite."""
    for prefix in prefixes:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            value = reader.get_tensor(name)
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                assert np.isfinite(value).all(), (prefix, name)


_TERMINAL = re.compile(r"\x1b\[[0-9;]*m|\x08")


def progress_lines(lines):
    """``(epoch, step)`` for each progress update in a run's output lines (read in text
    mode, where the progress bar's carriage returns end lines): the epoch from its
    ``Epoch N/M`` header, the step from the bar's ``S/T``."""
    epoch = 0
    for line in lines:
        text = _TERMINAL.sub("", line).strip()
        header = re.fullmatch(r"Epoch (\d+)/\d+", text)
        if header:
            epoch = int(header[1])
            continue
        bar = re.match(r"(\d+)/\d+ ", text)
        yield (epoch, int(bar[1])) if bar and epoch else None


def one_error_line(err: str) -> str:
    """The one ``error: ...`` line of a command's standard error (and no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]
