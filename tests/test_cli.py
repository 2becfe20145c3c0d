"""python -m alexnet_lib: the commands print what they claim and fail clearly."""

import errno
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from helpers.tiny import COLOURS, cli_args, copy_run, one_error_line, progress_lines
from PIL import Image

from alexnet_lib.cli import _parse_overrides, main
from alexnet_lib.data.folders import ImageError, decode_image
from alexnet_lib.predict import Predictor, predict
from alexnet_lib.runs import read_history


def test_summary_prints_the_layer_table_and_parameter_count(capsys):
    assert main(["summary", "--preset", "cifar"]) == 0
    out = capsys.readouterr().out
    assert "Preset 'cifar'" in out
    assert "conv2_tower1" in out and "lrn2" in out
    assert "1,398,154 parameters" in out


def test_summary_applies_overrides(capsys):
    assert main(["summary", "--preset", "paper", "--set", "towers=false",
                 "--set", "num_classes=10"]) == 0
    out = capsys.readouterr().out
    assert "conv2_tower1" not in out
    assert "Overrides: {'towers': False, 'num_classes': 10}" in out


def test_bad_preset_exits_2_with_one_message(capsys):
    assert main(["summary", "--preset", "vgg"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1
    assert "Valid presets: ['cifar', 'paper', 'upsampled']" in err and "preset='vgg'" in err


def test_malformed_set_is_rejected(capsys):
    assert main(["summary", "--set", "towers"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "alexnet_lib", "summary", "--preset", "paper"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "60,965,224 parameters" in result.stdout


def _quiet_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "ALEXNET_QUIET_LOG_LEVEL")}
    return {**env, **extra}


@pytest.mark.slow
def test_help_imports_no_tensorflow():
    code = ("import sys\nfrom alexnet_lib.cli import main\n"
            "assert main(['train', '--help']) == 0\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env=_quiet_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False False"
    assert "--precision" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("env", [
    {},  # nothing set
    # a child (a notebook kernel, a worker) of a process that chose the level itself
    {"TF_CPP_MIN_LOG_LEVEL": "2", "ALEXNET_QUIET_LOG_LEVEL": "2"},
    # a person's own level: the usual way to silence TensorFlow (only 0 shows them)
    {"TF_CPP_MIN_LOG_LEVEL": "3"},
    {"TF_CPP_MIN_LOG_LEVEL": "1"},
])
def test_commands_print_no_tensorflow_start_up_lines(env):
    """No I0000/W0000/E0000 lines (e.g. "failed call to cuInit" on a host without a GPU)."""
    result = subprocess.run([sys.executable, "-m", "alexnet_lib", "summary", "--preset", "cifar"],
                            capture_output=True, text=True, timeout=300, env=_quiet_env(**env))
    assert result.returncode == 0, result.stderr
    assert "1,398,154 parameters" in result.stdout
    noise = [line for line in (result.stdout + result.stderr).splitlines()
             if re.match(r"^[IWE]\d{4} ", line) or "absl::InitializeLog" in line]
    assert not noise, noise


@pytest.mark.slow
def test_train_prints_no_tensorflow_start_up_lines(tmp_path):
    """The backend is asked for before anything else is imported: quietly, too."""
    result = subprocess.run([sys.executable, "-m", "alexnet_lib", "train", "--data",
                             str(tmp_path / "absent"), "--run-dir", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=300, env=_quiet_env())
    assert result.returncode == 2 and "error:" in result.stderr, result.stderr
    noise = [line for line in (result.stdout + result.stderr).splitlines()
             if re.match(r"^[IWE]\d{4} ", line) or "absl::InitializeLog" in line]
    assert not noise, noise


@pytest.mark.slow
def test_a_start_up_level_of_0_shows_everything():
    """An explicit 0 hides nothing: TensorFlow's own start-up lines come through."""
    code = "import alexnet_lib.quiet, os; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, env=_quiet_env(TF_CPP_MIN_LOG_LEVEL="0"))
    assert result.returncode == 0 and result.stdout.strip() == "0", result.stderr
    assert re.search(r"^[IWE]\d{4} ", result.stderr, re.M), result.stderr


@pytest.mark.slow
def test_sigterm_ends_a_run_with_its_message_and_the_same_command_resumes(tree, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "alexnet_lib", *cli_args(tree, run, "--no-evaluate")]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    for at in progress_lines(proc.stdout):
        if at and at[0] == 2:
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == (
        "error: terminated (SIGTERM). A training run resumes from its last checkpoint when "
        "the same command runs again.")
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming" in resumed.stdout
    assert [r["epoch"] for r in read_history(run)] == [0, 1, 2]


@pytest.mark.slow
def test_the_makefile_passes_paths_with_spaces_as_one_argument():
    project = Path(__file__).resolve().parents[1]
    result = subprocess.run(["make", "-n", "-C", str(project), "train", "DATA=/tmp/my data",
                             "RUN_DIR=/tmp/my runs/a", "ARGS=--epochs 1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if "-m alexnet_lib train" in line]
    words = shlex.split(line)
    assert words[words.index("--data") + 1] == "/tmp/my data"
    assert words[words.index("--run-dir") + 1] == "/tmp/my runs/a"


@pytest.mark.parametrize("name", ["../../pyproject", "/etc/passwd", "smoke/../smoke", ".hidden"])
def test_a_parameter_set_is_a_name_in_the_params_folder_not_a_path(name, capsys):
    assert main(["notebooks", "--params", name, "--prepare-only"]) == 2
    assert f"Unknown parameter set {name!r}" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ("- a\n- list\n", "holds list where a mapping"), ("a: [1\n", "cannot be read")])
def test_a_malformed_parameter_set_is_one_error(tmp_path, monkeypatch, capsys, text, message):
    import alexnet_lib.notebooks as notebooks

    (tmp_path / "bad.yaml").write_text(text)
    monkeypatch.setattr(notebooks, "PARAMS_DIR", tmp_path)
    assert main(["notebooks", "--params", "bad", "--prepare-only"]) == 2
    assert message in capsys.readouterr().err


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
    assert message in one_error_line(err)
    assert not run.exists()


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
    line = one_error_line(capsys.readouterr().err)
    assert "no space left" in line and "resumes from its last checkpoint" in line
    monkeypatch.undo()
    state = tf.train.get_checkpoint_state(str(run / "checkpoints"))
    assert [Path(p).name for p in state.all_model_checkpoint_paths] == ["ckpt-2", "ckpt-4"]
    assert main(cli_args(tree, run)) == 0  # the same command resumes


def test_misleading_words_are_gone(trained, tmp_path, capsys):
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes((trained.run_dir / "checkpoints" / "best.keras").read_bytes()[:5000])
    assert main(["predict", "--checkpoint", str(truncated), "x.png"]) == 2
    line = one_error_line(capsys.readouterr().err)
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


def test_cli_evaluate_on_the_validation_split(trained, tmp_path, capsys):
    """--split val: the run's own validation images (its seed's carve), what chose its best
    model, written beside the test metrics without touching them."""
    run = copy_run(trained.run_dir, tmp_path / "val")
    before = (run / "metrics.json").read_text()
    assert main(["evaluate", "--run-dir", str(run), "--split", "val", "--views", "center"]) == 0
    assert "val-metrics.json" in capsys.readouterr().out
    metrics = json.loads((run / "val-metrics.json").read_text())
    assert metrics["split"] == "val" and not [k for k in metrics if k.startswith("test_")]
    assert sum(map(sum, metrics["confusion"])) == 16  # the run's --val-size
    # best.keras is the epoch of the highest validation accuracy training measured.
    history = read_history(run)
    assert metrics["val_top1"] == pytest.approx(max(r["val_accuracy"] for r in history), abs=1e-6)
    assert (run / "metrics.json").read_text() == before
    config = run / "config.yaml"
    config.write_text(re.sub(r"val_size: \d+", "val_size: 0", config.read_text()))
    assert main(["evaluate", "--run-dir", str(run), "--split", "val"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "has no validation split" in line and "--val-size" in line
    assert json.loads((run / "val-metrics.json").read_text()) == metrics  # left as it was


def test_cli_evaluate_predict(trained, tmp_path, capsys):
    run = copy_run(trained.run_dir, tmp_path / "cli")
    assert main(["evaluate", "--run-dir", str(run), "--tta"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["tta"] is True and metrics["test_top1"] > 0.6
    assert main(["evaluate", "--run-dir", str(run), "--views", "flip"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["views"] == "flip" and metrics["center_top1"] > 0.6
    capsys.readouterr()
    assert main(["evaluate", "--run-dir", str(run), "--tta", "--views", "center"]) == 2
    assert "--tta means --views tta" in capsys.readouterr().err
    # predict: images of another size and mode, one broken file; the others still run.
    big = tmp_path / "big_red.jpg"
    Image.fromarray(np.full((120, 90, 3), COLOURS[0], np.uint8)).save(big)
    gray = tmp_path / "gray.png"
    Image.fromarray(np.full((20, 20), 128, np.uint8), mode="L").save(gray)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    capsys.readouterr()
    code = main(["predict", "--checkpoint", str(run / "checkpoints" / "best.keras"), "--json",
                 "--top-k", "2", str(big), str(broken), str(gray)])
    captured = capsys.readouterr()
    assert code == 1 and "broken.png" in captured.err
    results = json.loads(captured.out)
    assert [r["path"] for r in results] == [str(big), str(broken), str(gray)]
    assert results[0]["top"][0]["class"] == "red" and len(results[0]["top"]) == 2
    assert "error" in results[1]
    # The grey image (one channel, 20x20): its top-2 are the model's two highest
    # probabilities for the same pixels as RGB at the stored size.
    predictor = Predictor(run)
    grey_rgb = np.full((16, 16, 3), 128, np.uint8)
    expected = np.sort(predictor.probabilities(grey_rgb[None])[0])[::-1][:2]
    np.testing.assert_allclose([t["probability"] for t in results[2]["top"]], expected, rtol=1e-5)
    ok = predict(run, [big])[0]
    assert ok.top[0][0] == "red" and ok.error is None
    # Views: the default is the run's recipe's (here flip): the image and its mirror.
    half = tmp_path / "half.png"
    Image.fromarray(np.concatenate([np.full((16, 8, 3), COLOURS[0], np.uint8),
                                    np.full((16, 8, 3), COLOURS[1], np.uint8)], 1)).save(half)
    assert predictor.views == "flip"
    x = Predictor(run, views="center").preprocess(np.asarray(Image.open(half).convert("RGB")))
    model = predictor.model
    by_hand = (np.asarray(model(x))[0] + np.asarray(model(x[:, :, ::-1]))[0]) / 2
    for views, expected in (("flip", by_hand), ("center", np.asarray(model(x))[0])):
        top = predict(run, [half], top_k=4, views=views)[0].top
        np.testing.assert_allclose([p for _, p in top], np.sort(expected)[::-1], rtol=1e-5)
    with pytest.raises(ValueError, match="'mirror'"):
        Predictor(run, views="mirror")


@pytest.mark.parametrize("args, message", [
    (["train", "--recipe", "fast"], "Unknown recipe 'fast'"),
    (["train", "--preset", "tiny"], "tiny"),
    (["train", "--data", "/no/such/data"], "/no/such/data"),
    (["train", "--set", "colour=red"], "'colour' is neither"),
    (["evaluate", "--run-dir", "/no/such/run"], "/no/such/run"),
    # Earlier names: refused with the new ones, before anything is read.
    (["train", "--preset", "seed"], "The preset 'seed' is now named 'upsampled'"),
    (["train", "--recipe", "seed"], "The recipe 'seed' is now named 'origin'"),
    (["train", "--views", "shift"], "The test-time views 'shift' are now named 'shift6'"),
    (["evaluate", "--run-dir", "/no/such/run", "--views", "shift2"], "now named 'shift10'"),
    (["predict", "--views", "shift", "x.png"], "now named 'shift6'"),
    (["train", "--set", "eval_views=shift2"], "now named 'shift10'"),
    (["notebooks", "--params", "gpu-seed"], "'gpu-seed' is now named 'gpu-origin'"),
])
def test_cli_errors_name_the_value(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_cli_train_runs_from_scratch_and_evaluates(tree, tmp_path, capsys):
    run = tmp_path / "one"
    args = cli_args(tree, run)
    args[args.index("--epochs") + 1] = "1"
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Training 'cifar' with recipe 'cpu'" in out and "Epoch 1/1" in out
    assert f"Checkpoint: {run / 'checkpoints' / 'best.keras'}" in out
    assert json.loads((run / "metrics.json").read_text())["num_examples"] == 48
