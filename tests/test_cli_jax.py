"""The command line on Keras's JAX backend where ``import tensorflow`` fails (a JAX-only GPU
machine, rehearsed on the CPU): ``train`` learns and evaluates, a run killed with SIGKILL
mid-epoch and started again writes the unbroken run's history exactly, a divergence stops
with one message and nothing non-finite saved, ``predict`` classifies files, and the
``.keras`` file JAX wrote gives TensorFlow's outputs."""

import csv
import json
import signal
import subprocess
import sys

import numpy as np
import pytest
from helpers.jaxproc import jax_env, run_python
from helpers.tiny import CLASSES, cli_args, progress_lines

TIMINGS = {"seconds"}


def _cli(args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "alexnet_lib", *map(str, args)],
                            env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def _finish(args, env, timeout=300):
    proc = _cli(args, env)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _history(run):
    with open(run / "history.csv") as handle:
        return [{k: v for k, v in row.items() if k not in TIMINGS}
                for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def jax_runs(tree, tmp_path_factory):
    """The suite's run trained on JAX without TensorFlow twice: unbroken, and killed with
    SIGKILL in its second epoch (after that epoch's first checkpoint), then the same
    command again."""
    root = tmp_path_factory.mktemp("jax")
    env = jax_env(root)
    unbroken = root / "unbroken"
    code, out = _finish(cli_args(tree, unbroken), env)
    assert code == 0, out
    killed = root / "killed"
    proc = _cli(cli_args(tree, killed, "--no-evaluate"), env)
    seen = []

    def lines():
        for line in proc.stdout:
            seen.append(line)
            yield line

    for at in progress_lines(lines()):
        if at == (2, 5):  # mid-epoch 2, after its checkpoint at step 4
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    code, resumed = _finish(cli_args(tree, killed, "--no-evaluate"), env)
    assert code == 0, resumed
    return {"env": env, "root": root, "unbroken": unbroken, "killed": killed, "out": out,
            "resumed": resumed}


@pytest.mark.slow
def test_train_on_jax_learns_and_evaluates(jax_runs):
    out, run = jax_runs["out"], jax_runs["unbroken"]
    assert "backend jax" in out and "Test accuracy (top-1)" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_top1"] > 0.5  # four classes: chance is 0.25
    resolved = (run / "resolved.yaml").read_text()
    assert "name: jax" in resolved
    assert (run / "checkpoints" / "checkpoint.json").is_file()
    assert list((run / "tensorboard").iterdir())  # TensorBoard without TensorFlow


@pytest.mark.slow
def test_kill_minus_nine_and_the_same_command_give_the_unbroken_history(jax_runs):
    assert "Resuming" in jax_runs["resumed"] and "at epoch 2, step " in jax_runs["resumed"]
    killed, unbroken = _history(jax_runs["killed"]), _history(jax_runs["unbroken"])
    assert [r["epoch"] for r in killed] == ["0", "1", "2"]
    assert killed == unbroken  # every column but the timings, as text: bit for bit


@pytest.mark.slow
def test_predict_on_jax_and_the_keras_file_under_tensorflow(jax_runs, tree):
    files = [path for name in CLASSES for path in sorted((tree / "test" / name).iterdir())[:2]]
    code, out = _finish(["predict", "--checkpoint", jax_runs["unbroken"] / "checkpoints" /
                         "best.keras", "--json", *files], jax_runs["env"])
    assert code == 0, out
    on_jax = json.loads(out[out.index("["):])
    assert [r["top"][0]["class"] for r in on_jax] == [name for name in CLASSES for _ in "ab"]

    from alexnet_lib.predict import predict

    on_tf = [r.to_dict() for r in predict(jax_runs["unbroken"] / "checkpoints" / "best.keras",
                                          files)]
    for a, b in zip(on_jax, on_tf):
        assert [t["class"] for t in a["top"]] == [t["class"] for t in b["top"]]
        np.testing.assert_allclose([t["probability"] for t in a["top"]],
                                   [t["probability"] for t in b["top"]], atol=1e-3)


MODEL_OUTPUTS = r"""
import json, sys
import numpy as np
from alexnet_lib.runs import load_model
model = load_model(sys.argv[1])
x = np.random.default_rng(0).normal(0, 1, (4, *model.input_shape[1:])).astype("float32")
print(json.dumps(np.asarray(model(x, training=False)).tolist()))
"""


@pytest.mark.slow
def test_a_keras_file_from_jax_gives_tensorflows_outputs(jax_runs, tmp_path):
    path = jax_runs["unbroken"] / "checkpoints" / "best.keras"
    on_jax = np.array(run_python(MODEL_OUTPUTS, path, env=jax_runs["env"]))
    on_tf = np.array(run_python(MODEL_OUTPUTS, path, env=jax_env(
        tmp_path, block_tensorflow=False, KERAS_BACKEND="tensorflow",
        TF_CPP_MIN_LOG_LEVEL="3")))
    assert on_jax.shape == (4, 4)
    np.testing.assert_allclose(on_jax, on_tf, atol=1e-5)


@pytest.mark.slow
def test_divergence_on_jax_is_one_error_and_saves_nothing_non_finite(jax_runs, tree):
    run = jax_runs["root"] / "diverged"
    code, out = _finish(cli_args(tree, run, "--no-evaluate", "--set=learning_rate=1e12"),
                        jax_runs["env"])
    assert code == 1, out
    assert out.count("error:") == 1, out  # (after the progress bar, on the same line)
    assert "became non-finite (NaN or infinite) at optimizer step" in out, out
    for path in (run / "checkpoints").glob("ckpt-*.npz"):
        with np.load(path) as arrays:
            assert all(np.isfinite(arrays[k]).all() for k in arrays.files
                       if arrays[k].dtype.kind == "f")


NOTEBOOKS = r"""
import json, sys
from pathlib import Path
from alexnet_lib.notebooks import make_tiny_dataset, run_notebooks
root = Path(sys.argv[1])
data = make_tiny_dataset(root / "tiny", train_per_class=30, test_per_class=10)
run = run_notebooks({"run_dir": str(root / "run"), "data": str(data), "preset": "cifar",
                     "recipe": "cpu", "epochs": 1, "train_subset": 200, "val_size": 50,
                     "test_subset": 100, "samples": 4, "bank_size": 100})
print(json.dumps({"notebooks": sorted(p.name for p in (run / "notebooks").glob("*.ipynb")),
                  "figures": sorted(p.name for p in (run / "figures").glob("*.png")),
                  "tensorflow": sys.modules.get("tensorflow", "absent") is None}))
"""


@pytest.mark.slow
def test_the_notebooks_run_on_jax_without_tensorflow(tmp_path):
    out = run_python(NOTEBOOKS, tmp_path, env=jax_env(tmp_path), timeout=900)
    assert out["tensorflow"] is True
    assert out["notebooks"] == ["01_data_exploration.ipynb", "02_model_building.ipynb",
                                "03_training.ipynb", "04_results.ipynb"]
    assert {"samples.png", "lrn_effect.png", "learning_curves.png", "confusion.png",
            "nearest_neighbours.png"} <= set(out["figures"]), out["figures"]


@pytest.mark.slow
@pytest.mark.parametrize("extra, named", [
    (["--towers-on", "/GPU:0,/GPU:1"], "--towers-on /GPU:0,/GPU:1 needs the TensorFlow"),
    (["--strategy", "mirrored"], "--strategy mirrored is a tf.distribute strategy"),
    (["--precision", "mixed_float16"], "--precision mixed_bfloat16"),
])
def test_what_only_tensorflow_does_is_refused_on_jax(tree, tmp_path, extra, named):
    code, out = _finish([*cli_args(tree, tmp_path / "run"), *extra], jax_env(tmp_path))
    assert code == 2 and out.count("error:") == 1 and named in out, out
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_export_is_refused_on_jax_naming_the_alternative(tmp_path):
    code, out = _finish(["export", "--checkpoint", tmp_path / "m.keras", "--out",
                         tmp_path / "out"], jax_env(tmp_path))
    assert code == 2 and out.startswith("error: export (a TensorFlow SavedModel) needs the "
                                        "TensorFlow backend"), out
    assert "KERAS_BACKEND=tensorflow" in out and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_data_parallel_over_two_devices_gives_the_one_device_run(tree, tmp_path):
    """Two CPU devices stand in for two GPUs: the state replicated, each batch split; the
    history agrees with one device's up to the order of the gradients' sums."""
    env = jax_env(tmp_path, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    histories = {}
    for strategy in ("one", "auto"):
        run = tmp_path / strategy
        code, out = _finish([*cli_args(tree, run, "--no-evaluate"), "--strategy", strategy],
                            env)
        assert code == 0, out
        assert ("(2 replicas)" in out) == (strategy == "auto"), out
        histories[strategy] = _history(run)
    for one, two in zip(histories["one"], histories["auto"], strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
            assert float(two[key]) == pytest.approx(float(one[key]), rel=1e-5, abs=1e-6), key
