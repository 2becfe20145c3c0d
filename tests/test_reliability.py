"""Nothing lost or silently wrong under bad input: one test (or more) per failure mode --
divergence that starts in the optimizer state, evaluation against other data, oversized
images, two processes on one run folder, failed starts, crash debris, class folders that
hold no images, archives that share a name, and the CLI's one-line error contract."""

import errno
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from helpers.tiny import COLOURS, assert_finite_checkpoints, cli_args, config, copy_run, make_tree
from PIL import Image

from alexnet_lib.cli import _parse_overrides, main
from alexnet_lib.data.folders import ImageError, decode_image, load_class_folders
from alexnet_lib.errors import TrainingDiverged
from alexnet_lib.train import Trainer


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


# ----------------------------------------------------------------------------- 1: divergence

@pytest.mark.slow
def test_an_update_that_overflows_the_optimizer_state_stops_before_any_save(tree, tmp_path):
    """Forced, not left to a CPU's rounding: from optimizer step 6 on, the update writes
    infinity into one AdamW slot while the loss and the gradients stay finite."""
    trainer = Trainer(config(tree, tmp_path / "run"))  # checkpoint_every=4, 9 steps an epoch
    optimizer = trainer.optimizer
    slot = next(v for v in optimizer.variables if "velocity" in v.path and "conv3" in v.path)
    apply = optimizer.apply_gradients

    def poisoned(grads_and_vars):
        apply(grads_and_vars)
        slot.assign(tf.where(optimizer.iterations >= 6, tf.fill(slot.shape, np.inf), slot))

    optimizer.apply_gradients = poisoned
    with pytest.raises(TrainingDiverged) as error:
        trainer.fit()
    message = str(error.value)
    assert "optimizer step 6 (epoch 1, step 6)" in message
    assert "while the loss was still finite" in message and "conv3" in message
    assert "ckpt-4" in message
    assert [Path(p).name for p in trainer.state.manager.checkpoints] == ["ckpt-4"]
    assert_finite_checkpoints(trainer.state.manager.checkpoints)
    assert not list((tmp_path / "run" / "checkpoints").glob("*.keras"))


@pytest.mark.slow
def test_a_nan_gradient_is_caught_at_its_step(tree, tmp_path):
    trainer = Trainer(config(tree, tmp_path / "run"))
    optimizer = trainer.optimizer
    apply = optimizer.apply_gradients

    def nan_at_step_3(grads_and_vars):
        pairs = list(grads_and_vars)
        bad = tf.where(optimizer.iterations >= 2, np.nan, 0.0)
        apply([(g + bad, v) for g, v in pairs])

    optimizer.apply_gradients = nan_at_step_3
    with pytest.raises(TrainingDiverged, match=r"optimizer step 3 \(epoch 1, step 3\)"):
        trainer.fit()
    assert not trainer.state.manager.checkpoints  # the first save (step 4) never happened
    assert not (tmp_path / "run" / "checkpoints" / "checkpoint").exists()


@pytest.mark.slow
def test_divergence_from_the_cli_keeps_finite_checkpoints(tree, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(cli_args(tree, run, "--set=learning_rate=1.0e+12"))
    err = capsys.readouterr().err
    assert code == 1
    line = _one_error_line(err)
    assert "non-finite" in line or "loss became" in line
    prefixes = tf.train.get_checkpoint_state(str(run / "checkpoints"))
    if prefixes is not None:
        assert_finite_checkpoints(prefixes.all_model_checkpoint_paths)


# ----------------------------------------------------------------------------- 2: other data

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
    line = _one_error_line(capsys.readouterr().err)
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
    assert "different configuration" in _one_error_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------- 3: huge images

def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that declares ``width x height`` pixels and holds a few bytes of them."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body)
                     + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    bomb = _png_header(tmp_path / "bomb.png", 30000, 30000)
    with pytest.raises(ImageError,
                       match=r"bomb.png is too large.*900000000 pixels.*--skip-corrupt"):
        decode_image(bomb)
    # Over the project's bound but under Pillow's own: refused from the header.
    big = _png_header(tmp_path / "big.png", 9000, 9000)
    with pytest.raises(ImageError, match=r"big.png declares 9000x9000 pixels.*64,000,000"):
        decode_image(big)
    tree = make_tree(tmp_path / "tree", train=3, test=2)
    _png_header(tree / "train" / "red" / "bomb.png", 30000, 30000)
    with pytest.raises(ImageError, match="bomb.png"):
        load_class_folders(tree)
    loaded = load_class_folders(tree, skip_corrupt=True)
    assert [p.name for p in loaded.skipped] == ["bomb.png"]
    assert len(loaded.splits["train"][1]) == 12


def test_predict_reports_a_bomb_and_still_classifies_the_others(trained, tmp_path, capsys):
    bomb = _png_header(tmp_path / "bomb.png", 30000, 30000)
    red = tmp_path / "red.png"
    Image.fromarray(np.full((16, 16, 3), COLOURS[0], np.uint8)).save(red)
    code = main(["predict", "--checkpoint", str(trained.run_dir), "--json", str(bomb), str(red)])
    captured = capsys.readouterr()
    assert code == 1
    results = json.loads(captured.out)
    assert "too large" in results[0]["error"] and results[1]["top"][0]["class"] == "red"
    assert "bomb.png" in captured.err and "Traceback" not in captured.err


# ----------------------------------------------------------------------------- 4: one process

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
        line = _one_error_line(capsys.readouterr().err)
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


# ----------------------------------------------------------------------------- 5: failed starts

@pytest.mark.slow
@pytest.mark.parametrize("bad", [["--batch-size", "100000"], ["--set=warmup_epochs=nan"],
                                 ["--set=warmup_epochs=abc"]])
def test_a_failed_start_writes_nothing_and_the_fixed_command_runs(tree, tmp_path, capsys, bad):
    run = tmp_path / "run"
    args = cli_args(tree, run)
    args[args.index("--epochs") + 1] = "1"
    assert main(args + bad) == 2
    _one_error_line(capsys.readouterr().err)
    assert not run.exists()
    # A start that failed after creating its files (before any checkpoint) binds nothing.
    run.mkdir()
    (run / "config.yaml").write_text("preset: cifar\nrecipe: cpu\nepochs: 99\n")
    (run / "normalization.json").write_text("{}")
    assert main(args) == 0
    assert "different configuration" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- 6: debris

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


def test_data_folder_debris_is_removed(tmp_path, monkeypatch):
    """What crashed extractions, downloads and cache writes left in the data folder goes the
    next time that folder is written; a live writer's temporary file stays."""
    from helpers.archives import batch_arrays, binary_bytes, make_tar

    from alexnet_lib.data.cifar10 import TRAIN_BATCHES, load_cifar10
    from alexnet_lib.files import _HOST

    cache = tmp_path / "cache"
    cache.mkdir()
    dead = 4_194_304 + 1  # above Linux's largest pid: no live process has it
    stale = [cache / f".write-check.{_HOST}-{dead}.tmp",
             cache / f".cifar-10-binary.tar.gz.{_HOST}-{dead}.tmp.part",
             cache / f".cifar-10-binary.tar.gz.0123.extracted.otherhost-{dead}.tmp"]
    stale[0].write_bytes(b"x")
    stale[1].write_bytes(b"x")
    stale[2].mkdir()
    os.utime(stale[2], (0, 0))  # another host's debris goes once it is a day old
    live = cache / f".cifar-10-binary.tar.gz.{_HOST}-{os.getppid()}.tmp.part"
    live.write_bytes(b"x")
    theirs = cache / f".folders-abc.npz.{_HOST}-{dead}.tmp"  # not written here: stays
    theirs.write_bytes(b"x")
    archive = make_tar(tmp_path / "cifar-10-binary.tar.gz", {
        f"cifar-10-batches-bin/{n}.bin": binary_bytes(*batch_arrays(i))
        for i, n in enumerate([*TRAIN_BATCHES, "test_batch"])})
    load_cifar10(archive, data_dir_override=cache, verify=False)
    assert not any(p.exists() for p in stale) and live.exists()
    assert sorted(p.name for p in cache.iterdir() if p.name.startswith(".")) == sorted(
        [live.name, theirs.name])


# ----------------------------------------------------------------------------- 7: class folders

def test_an_empty_class_folder_or_a_link_to_its_parent_is_refused(tmp_path):
    tree = make_tree(tmp_path / "tree", train=2, test=1)
    (tree / "train" / "zebra").mkdir()
    with pytest.raises(ValueError, match=r"zebra holds no image files"):
        load_class_folders(tree)
    (tree / "train" / "zebra").rmdir()
    (tree / "train" / "loop").symlink_to(tree / "train")
    with pytest.raises(ValueError, match=r"loop is a link to .*a folder above it"):
        load_class_folders(tree)


# ----------------------------------------------------------------------------- 8: archive cache

def test_the_extraction_cache_is_keyed_by_content(tmp_path):
    from helpers.archives import batch_arrays, binary_bytes, make_tar

    from alexnet_lib.data.cifar10 import TRAIN_BATCHES, load_cifar10

    def archive(folder, seed, extra=None):
        folder.mkdir()
        files = {f"cifar-10-batches-bin/{n}.bin": binary_bytes(*batch_arrays(seed + i))
                 for i, n in enumerate([*TRAIN_BATCHES, "test_batch"])}
        files.update(extra or {})
        return make_tar(folder / "cifar-10-binary.tar.gz", files)

    cache = tmp_path / "cache"
    first = load_cifar10(archive(tmp_path / "a", 0), data_dir_override=cache, verify=False)
    second = load_cifar10(archive(tmp_path / "b", 100), data_dir_override=cache, verify=False)
    assert not np.array_equal(first["test"][0], second["test"][0])
    np.testing.assert_array_equal(second["test"][0], batch_arrays(105)[0])
    evil = archive(tmp_path / "c", 0, {"../escaped.txt": b"owned"})
    with pytest.raises(ValueError, match="escaped.txt"):
        load_cifar10(evil, data_dir_override=cache, verify=False)
    assert not (cache.parent / "escaped.txt").exists()


# ----------------------------------------------------------------------------- 9-11: the CLI

def test_set_reads_numbers_in_any_notation():
    assert _parse_overrides(["learning_rate=1e-3", "weight_decay=5E-4", "momentum=.9",
                             "towers=false", "conv_filters=[24, 32, 32, 24]", "epochs=3"]) == {
        "learning_rate": 0.001, "weight_decay": 0.0005, "momentum": 0.9, "towers": False,
        "conv_filters": [24, 32, 32, 24], "epochs": 3}
    from alexnet_lib.cli import build_parser, train_config_from_args

    args = build_parser().parse_args(["train", "--set", "learning_rate=1e-3"])
    assert train_config_from_args(args).resolve().recipe.learning_rate == 0.001


@pytest.mark.parametrize("args, message", [
    (["--set", "label_smoothing=nan"], "label_smoothing=nan"),
    (["--set", "warmup_epochs=abc"], "warmup_epochs='abc'"),
    (["--set", "warmup_epochs=-5"], "warmup_epochs=-5"),
    (["--set", "nesterov=abc"], "nesterov='abc'"),
    (["--set", "min_learning_rate=abc"], "min_learning_rate='abc'"),
    (["--set", "epochs=true"], "epochs=True"),
    (["--set", "image_size=100000"], "image_size=100000"),
    (["--set", "learning_rate=-1e-3"], "learning_rate=-0.001"),
    (["--seed", "-1"], "argument --seed: expected an integer >= 0"),
    (["--epochs", "two"], "argument --epochs: expected an integer >= 1. Received: 'two'"),
    (["--towers-on", "/GPU:97,/GPU:98"], "/GPU:97, /GPU:98"),
    (["--epochs", "2", "--set", "epochs=3"], "--epochs and --set epochs=3 contradict"),
])
def test_bad_values_get_one_error_line_and_exit_2(tree, tmp_path, capsys, args, message):
    run = tmp_path / "run"
    code = main(["train", "--data", str(tree), "--run-dir", str(run), "--val-size", "16", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in _one_error_line(err)
    assert not run.exists()


def test_a_file_as_run_folder_is_refused(tree, tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("not a folder")
    assert main(["train", "--data", str(tree), "--run-dir", str(path), "--val-size", "16"]) == 2
    assert "is a file, not a folder" in _one_error_line(capsys.readouterr().err)
    assert path.read_text() == "not a folder"


@pytest.mark.slow
def test_offline_download_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    from alexnet_lib.data import cifar10

    archive = cifar10.CIFAR10_ARCHIVES["binary"]
    monkeypatch.setitem(cifar10.CIFAR10_ARCHIVES, "binary", cifar10.Archive(
        url="http://127.0.0.1:9/cifar-10-binary.tar.gz", filename=archive.filename,
        sha256=archive.sha256, folder=archive.folder))
    monkeypatch.setenv("ALEXNET_DATA_DIR", str(tmp_path / "data"))
    assert main(["train", "--data", "cifar10", "--run-dir", str(tmp_path / "run")]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "Could not download http://127.0.0.1:9/" in line and "DATA=" in line


@pytest.mark.slow
def test_a_data_folder_that_is_a_file_only_costs_the_cache(tree, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "data-file"
    blocker.write_text("a file where the data folder should be")
    monkeypatch.setenv("ALEXNET_DATA_DIR", str(blocker))
    args = cli_args(tree, tmp_path / "run")
    args[args.index("--epochs") + 1] = "1"
    assert main(args) == 0
    assert "continuing without the cache" in capsys.readouterr().err
    assert main(["train", "--data", "cifar10", "--run-dir", str(tmp_path / "r2")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(blocker) in line and "ALEXNET_DATA_DIR" in line


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
    line = _one_error_line(capsys.readouterr().err)
    assert str(run) in line and "not writable" in line
    assert (run / "metrics.json").read_bytes() == before


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["OSError", "TensorFlow"])
def test_a_full_disk_is_one_line_exit_1_and_keeps_the_checkpoints(tree, tmp_path, monkeypatch,
                                                                    capsys, kind):
    """Python's writers raise OSError(ENOSPC); TensorFlow's checkpoint writer raises
    ResourceExhaustedError with "No space left on device" (seen on a full tmpfs)."""
    run = tmp_path / "run"
    save = tf.train.CheckpointManager.save
    calls = []

    def full_after_two(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 2 and kind == "OSError":
            raise OSError(errno.ENOSPC, "No space left on device", str(run / "checkpoints"))
        if len(calls) > 2:
            raise tf.errors.ResourceExhaustedError(
                None, None, f"{run}/checkpoints/ckpt-6_temp/part-00000-of-00001; No space left "
                            f"on device [Op:SaveV2]")
        return save(self, *args, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full_after_two)
    assert main(cli_args(tree, run)) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "no space left" in line and "resumes from its last checkpoint" in line
    monkeypatch.undo()
    state = tf.train.get_checkpoint_state(str(run / "checkpoints"))
    assert [Path(p).name for p in state.all_model_checkpoint_paths] == ["ckpt-2", "ckpt-4"]
    assert main(cli_args(tree, run)) == 0  # the same command resumes


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
    line = _one_error_line(capsys.readouterr().err)
    assert "bad.keras carries bad inference information" in line and message in line


def test_misleading_words_are_gone(trained, tmp_path, capsys):
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes((trained.run_dir / "checkpoints" / "best.keras").read_bytes()[:5000])
    assert main(["predict", "--checkpoint", str(truncated), "x.png"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "not a zip archive" in line and "File not found" not in line
    folder = tmp_path / "images"
    folder.mkdir()
    assert main(["predict", "--checkpoint", str(trained.run_dir), str(folder)]) == 1
    err = capsys.readouterr().err
    assert "is a folder, not an image file" in err and "IsADirectoryError" not in err
    assert main(["train", "--epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert "_positive" not in err and "argument --epochs: expected an integer >= 1" in err
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ImageError, match="--skip-corrupt") as error:
        decode_image(broken)
    assert "skip_corrupt=True in Python" in str(error.value)


def test_the_user_archive_message_names_what_a_cli_user_can_do(tmp_path):
    from helpers.archives import make_tar

    from alexnet_lib.data.cifar10 import ChecksumError, load_cifar10

    archive = make_tar(tmp_path / "mine.tar.gz", {"cifar-10-batches-bin/test_batch.bin": b"x"})
    with pytest.raises(ChecksumError, match="extract it and pass its folder"):
        load_cifar10(archive, data_dir_override=tmp_path / "c")
