"""alexnet_lib.runs and the commands that write run folders: only into one of this project's
runs, every file read back checked before use, another run's model refused, and a resumed
run kept in the precision it started in."""

import dataclasses
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers.hostile import ALIAS_BOMB
from helpers.tiny import COLOURS, SMALL, cli_args, config, copy_run, make_tree, one_error_line
from PIL import Image

from alexnet_lib.analysis import IDENTITY
from alexnet_lib.cli import main
from alexnet_lib.config import TrainConfig
from alexnet_lib.data.preprocessing import Preprocessing
from alexnet_lib.files import MARKER, dump_yaml
from alexnet_lib.model import build_alexnet, get_preset
from alexnet_lib.runs import RunFolder, inference_model, load_model


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def _not_a_run(folder: Path) -> Path:
    """A person's folder: a hidden report, metrics of their own, a checkpoint-like name."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / ".report.2024.tmp").write_text("draft")
    (folder / "metrics.json").write_text('{"mine": 1}')
    (folder / "checkpoints" / "ckpt-7.index").write_bytes(b"not ours")
    (folder / ".cache.4242.tmp").mkdir()
    (folder / ".cache.4242.tmp" / "part").write_bytes(b"x")
    return folder


def _one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_train_refuses_a_folder_that_is_not_a_run_and_changes_nothing(tree, tmp_path, capsys):
    folder = _not_a_run(tmp_path / "mine")
    before = _snapshot(folder)
    assert main(cli_args(tree, folder)) == 2
    line = _one_error(capsys.readouterr().err)
    assert f"--run-dir {folder} is not empty and is not a run folder of this project" in line
    assert "Pass a new folder path, or empty this one yourself" in line
    assert _snapshot(folder) == before


def test_a_run_dir_inside_the_data_is_refused(tree, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tree, data)
    assert main(cli_args(data, data / "train" / "run")) == 2
    assert "is inside the data" in _one_error(capsys.readouterr().err)
    assert not (data / "train" / "run").exists()


def test_notebooks_write_into_no_folder_that_is_not_a_run(tmp_path, capsys):
    folder = tmp_path / "mine"
    (folder / "notebooks").mkdir(parents=True)
    (folder / "notebooks" / "01_data_exploration.ipynb").write_text("my notebook")
    assert main(["notebooks", "--params", "smoke", "--run-dir", str(folder),
                 "--prepare-only"]) == 2
    assert "is not a run folder of this project" in _one_error(capsys.readouterr().err)
    assert (folder / "notebooks" / "01_data_exploration.ipynb").read_text() == "my notebook"
    fresh = tmp_path / "fresh"
    assert main(["notebooks", "--params", "smoke", "--run-dir", str(fresh),
                 "--prepare-only"]) == 0
    assert (fresh / MARKER).is_file() and (fresh / "notebooks" / "03_training.ipynb").is_file()


def _run_folder(tmp_path, tree, resolved: str) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(dump_yaml(config(tree, run).to_dict()))
    (run / "resolved.yaml").write_text(resolved)
    return run


@pytest.mark.parametrize("resolved, message", [
    (ALIAS_BOMB, "expand to more than"),
    ('!!python/object/apply:os.system ["touch {marker}"]\n', "python/object/apply"),
    ("- a\n- list\n", "holds list where a mapping"),
    ("data: 5\n", "bad `data` entry"),
    ("data:\n  fingerprint: [1, 2]\n", "bad `data` entry"),
    ("precision: fast\n", "bad `precision` entry"),
])
def test_evaluate_refuses_a_hostile_run_record_within_seconds(tree, tmp_path, capsys, resolved,
                                                              message):
    marker = tmp_path / "executed"
    run = _run_folder(tmp_path, tree, resolved.format(marker=marker))
    started = time.monotonic()
    assert main(["evaluate", "--run-dir", str(run)]) == 2
    assert time.monotonic() - started < 10
    line = _one_error(capsys.readouterr().err)
    assert "resolved.yaml" in line and message in line, line
    assert not marker.exists() and not (run / "metrics.json").exists()


def test_a_run_configuration_that_is_not_a_mapping_is_one_error(tree, tmp_path, capsys):
    run = _run_folder(tmp_path, tree, "")
    (run / "config.yaml").write_text("[1, 2]\n")
    assert main(["evaluate", "--run-dir", str(run)]) == 2
    assert "holds list where a mapping" in _one_error(capsys.readouterr().err)


def _foreign_model(trained, classes: int, *, shift: float = 0.0) -> keras.Model:
    """A model like the run's, for ``classes`` classes (and normalization moved by ``shift``),
    saved as the project saves its models: another run's model."""
    preset = get_preset("cifar", **SMALL, num_classes=classes)
    prep = trained.datasets.preprocessing("flip")
    norm = dataclasses.replace(prep.normalization,
                               mean=tuple(m + shift for m in prep.normalization.mean))
    names = tuple(f"c{i}" for i in range(classes)) if classes != len(prep.class_names) \
        else prep.class_names
    return inference_model(build_alexnet(preset),
                           dataclasses.replace(prep, class_names=names, normalization=norm))


@pytest.mark.slow
@pytest.mark.parametrize("classes, shift, message", [
    (200, 0.0, "200 classes against the data's 4"),
    (5, 0.0, "5 classes against the data's 4"),
    (4, 0.2, "other normalization statistics"),
])
def test_another_runs_model_in_the_run_folder_is_refused(trained, tmp_path, capsys, classes,
                                                         shift, message):
    run = copy_run(trained.run_dir, tmp_path / "run")
    _foreign_model(trained, classes, shift=shift).save(run / "checkpoints" / "best.keras")
    metrics = (run / "metrics.json").read_bytes()
    assert main(["evaluate", "--run-dir", str(run)]) == 2
    assert message in _one_error(capsys.readouterr().err)
    assert (run / "metrics.json").read_bytes() == metrics


@pytest.mark.slow
def test_a_resumed_run_keeps_the_precision_it_started_in(tree, tmp_path, monkeypatch):
    """Forced: ``auto`` decides bfloat16 when the run starts and float32 when it resumes (a
    lost cache, a busier host). The resumed run ends in bfloat16, equal to an unbroken one."""
    import alexnet_lib.train as train
    import alexnet_lib.train.loop as loop

    decisions = {"now": ("mixed_bfloat16", "auto: forced to bfloat16")}
    monkeypatch.setattr(loop, "precision_decision", lambda precision, preset: decisions["now"])
    recipe = {"epochs": 2, "precision": "auto"}
    unbroken = train.Trainer(config(tree, tmp_path / "unbroken", recipe=recipe))
    unbroken.fit()

    def stop(row, history):
        raise KeyboardInterrupt

    first = train.Trainer(config(tree, tmp_path / "broken", recipe=recipe), on_epoch_end=[stop])
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    decisions["now"] = ("float32", "auto: forced to float32")
    resumed = train.Trainer(config(tree, tmp_path / "broken", recipe=recipe))
    assert resumed.recipe.precision == "mixed_bfloat16"
    assert "kept from the run's start" in resumed.precision_reason
    resumed.fit()
    for a, b in zip(unbroken.model.weights, resumed.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    record = RunFolder(tmp_path / "broken").read_resolved()["precision"]
    assert record["chosen"] == "mixed_bfloat16"
    assert record["reason"] == "kept from the run's start; auto: forced to bfloat16"


def _other_tree(root: Path) -> Path:
    """The same classes as ``make_tree``'s, other images."""
    return make_tree(root, noise=60, colours=COLOURS[::-1], seed=7)


@pytest.mark.slow
def test_evaluate_refuses_other_data_behind_a_relative_path(tree, tmp_path, monkeypatch, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(tree, first / "data")
    _other_tree(second / "data")
    run = tmp_path / "run"
    monkeypatch.chdir(first)
    args = cli_args("data", run)
    args[args.index("--epochs") + 1] = "1"
    assert main(args) == 0
    saved = (run / "config.yaml").read_text()
    assert f"data: {first / 'data'}" in saved  # recorded absolute, not as typed
    metrics = (run / "metrics.json").read_bytes()
    capsys.readouterr()
    # From elsewhere, the same relative path leads to other images: refused.
    monkeypatch.chdir(second)
    assert main(["evaluate", "--run-dir", str(run), "--data", "data"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "does not hold the data" in line and str(second / "data") in line
    assert (run / "metrics.json").read_bytes() == metrics
    # The recorded absolute source is used wherever evaluate runs from; a moved copy of the
    # same images is accepted.
    assert main(["evaluate", "--run-dir", str(run)]) == 0
    moved = tmp_path / "moved"
    shutil.copytree(first / "data", moved)
    assert main(["evaluate", "--run-dir", str(run), "--data", str(moved)]) == 0
    # Resuming on other data is refused the same way.
    capsys.readouterr()
    args = cli_args(str(second / "data"), run)
    args[args.index("--epochs") + 1] = "1"
    assert main(args) == 2
    assert "different configuration" in one_error_line(capsys.readouterr().err)


LOCK_HOLDER = """
import sys
from alexnet_lib.files import FolderLock
lock = FolderLock(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.mark.slow
def test_one_live_process_per_run_folder_and_no_stale_lock(tree, tmp_path, capsys):
    from alexnet_lib.files import FolderLock

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(run)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(cli_args(tree, run)) == 2
        line = one_error_line(capsys.readouterr().err)
        assert f"in use by process {holder.pid}" in line and "--run-dir" in line
        assert not (run / "config.yaml").exists()
        with pytest.raises(Exception, match="in use"):
            FolderLock(run)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    # The holder died without releasing anything: the kernel dropped its lock.
    args = cli_args(tree, run)
    args[args.index("--epochs") + 1] = "1"
    assert main(args) == 0


@pytest.mark.slow
@pytest.mark.parametrize("bad", [["--batch-size", "100000"], ["--set=warmup_epochs=nan"],
                                 ["--set=warmup_epochs=abc"]])
def test_a_failed_start_writes_nothing_and_the_fixed_command_runs(tree, tmp_path, capsys, bad):
    run = tmp_path / "run"
    args = cli_args(tree, run)
    args[args.index("--epochs") + 1] = "1"
    assert main(args + bad) == 2
    one_error_line(capsys.readouterr().err)
    assert not run.exists()
    # A start that failed after creating its files (before any checkpoint) binds nothing.
    run.mkdir()
    (run / "config.yaml").write_text("preset: cifar\nrecipe: cpu\nepochs: 99\n")
    (run / "normalization.json").write_text("{}")
    assert main(args) == 0
    assert "different configuration" not in capsys.readouterr().err


def test_crash_debris_is_removed_on_the_next_start(trained, tree, tmp_path, capsys):
    from alexnet_lib.files import _HOST

    run = copy_run(trained.run_dir, tmp_path / "run")
    ckpts = run / "checkpoints"
    kept = sorted(p.name for p in ckpts.iterdir())
    dead = 4_194_304 + 1  # above Linux's largest pid: no live process has it
    debris = [ckpts / f".best.keras.{_HOST}-{dead}.tmp.keras",
              ckpts / "ckpt-7_temp", ckpts / "ckpt-3.index", ckpts / "ckpt-3.data-00000-of-00001",
              run / f".history.csv.{_HOST}-{dead}.tmp"]
    for path in debris:
        if path.name.endswith("_temp"):
            (path / "part-00000-of-00001").parent.mkdir(parents=True)
            (path / "part-00000-of-00001").write_bytes(b"x")
        else:
            path.write_bytes(b"x" * 100)
    live = run / f".metrics.json.{_HOST}-{os.getppid()}.tmp"  # a live writer's file stays
    theirs = run / ".report.2024.tmp"  # not a name the project writes: stays
    theirs.write_bytes(b"x")
    live.write_bytes(b"x")
    assert main(cli_args(tree, run)) == 0  # finished: it only evaluates, after cleaning
    assert "Removed 5 file(s) left by an interrupted run" in capsys.readouterr().out
    assert not any(p.exists() for p in debris)
    assert live.exists() and theirs.exists()
    assert sorted(p.name for p in ckpts.iterdir()) == kept


def test_a_file_as_run_folder_is_refused(tree, tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("not a folder")
    assert main(["train", "--data", str(tree), "--run-dir", str(path), "--val-size", "16"]) == 2
    assert "is a file, not a folder" in one_error_line(capsys.readouterr().err)
    assert path.read_text() == "not a folder"


def test_an_unwritable_run_folder_is_refused_before_evaluating(trained, tmp_path, monkeypatch,
                                                               capsys):
    run = copy_run(trained.run_dir, tmp_path / "run")
    before = (run / "metrics.json").read_bytes()
    touch = Path.touch

    def read_only(path, *args, **kwargs):  # root ignores permission bits: force the case
        if path.parent == run:
            raise PermissionError(errno.EROFS, "Read-only file system", str(path))
        return touch(path, *args, **kwargs)

    monkeypatch.setattr(Path, "touch", read_only)
    monkeypatch.setattr("alexnet_lib.evaluate.load_model",
                        lambda *a: pytest.fail("evaluated a run whose metrics cannot be saved"))
    assert main(["evaluate", "--run-dir", str(run)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(run) in line and "not writable" in line
    assert (run / "metrics.json").read_bytes() == before


def _edit_info(source: Path, target: Path, edit) -> Path:
    """A copy of a ``.keras`` file whose inference information ``edit(info)`` changed."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)

                def visit(node):
                    if isinstance(node, dict):
                        if node.get("class_name") == "InferenceInfo":
                            edit(node["config"]["info"])
                        for value in node.values():
                            visit(value)
                    elif isinstance(node, list):
                        for value in node:
                            visit(value)
                visit(config)
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return target


@pytest.mark.parametrize("edit, message", [
    (lambda info: info.pop("class_names"), "class_names must be a list"),
    (lambda info: info.update(class_names=["red", "green"]), "2 class names for a model with 4"),
    (lambda info: info.update(class_names=[1, 2, 3, 4]), "class_names must be a list"),
    (lambda info: info["normalization"].update(std=[0.0, 0.2, 0.2]), "std must be"),
    (lambda info: info["normalization"].update(mean=["x", 0, 0]), "mean must be"),
])
def test_a_model_with_bad_inference_information_is_refused(trained, tmp_path, capsys, edit,
                                                           message):
    red = tmp_path / "red.png"
    Image.fromarray(np.full((16, 16, 3), COLOURS[0], np.uint8)).save(red)
    bad = _edit_info(trained.run_dir / "checkpoints" / "best.keras", tmp_path / "bad.keras", edit)
    assert main(["predict", "--checkpoint", str(bad), str(red)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "bad.keras carries bad inference information" in line and message in line


def test_tampered_models_are_refused(tmp_path):
    # A model with a Lambda layer (arbitrary Python) loads without safe mode, and is refused
    # with it.
    inputs = keras.Input((4,))
    evil = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    evil.save(tmp_path / "evil.keras")
    keras.saving.load_model(tmp_path / "evil.keras", safe_mode=False)
    with pytest.raises(ValueError, match=r"evil.keras is not a model saved by alexnet_lib "
                                         r"\(.*(Lambda|lambda|safe_mode)"):
        load_model(tmp_path / "evil.keras")
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(b"PK\x03\x04 not a whole zip")
    with pytest.raises(ValueError, match="truncated.keras is not a .keras model file"):
        load_model(truncated)
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        load_model(tmp_path / "missing.keras")


def test_a_run_folder_written_with_earlier_names_reads_with_the_new_ones(tree, tmp_path):
    """Runs and models saved before the renames (preset and recipe ``seed``, views ``shift``
    and ``shift2``) keep working: their files are read with the new names, which a person
    must now give (the old ones are refused where they are typed: test_cli)."""
    run = tmp_path / "old"
    run.mkdir()
    (run / "config.yaml").write_text(dump_yaml({
        "preset": "seed", "recipe": "seed", "recipe_overrides": {"eval_views": "shift2"},
        "data": str(tree), "seed": 3}))
    folder = RunFolder(run)
    saved = folder.read_config()
    assert (saved.preset, saved.recipe, saved.seed) == ("upsampled", "origin", 3)
    assert saved.recipe_overrides == {"eval_views": "shift10"}
    assert saved.resolve().recipe.eval_views == "shift10"
    # Resuming it with the new names is the same run.
    folder.check_same_config(TrainConfig(preset="upsampled", recipe="origin", data=str(tree),
                                         recipe_overrides={"eval_views": "shift10"}, seed=3))
    with pytest.raises(ValueError, match="different configuration"):
        folder.check_same_config(TrainConfig(preset="upsampled", recipe="origin",
                                             data=str(tree), seed=3))

    prep = Preprocessing(class_names=("a", "b"), image_size=16, input_size=16,
                         stored_size=None, normalization=IDENTITY, eval_views="shift6")
    for old, new in (("shift", "shift6"), ("shift2", "shift10"), ("tta", "tta")):
        assert Preprocessing.from_info({**prep.to_info(), "eval_views": old}).eval_views == new
