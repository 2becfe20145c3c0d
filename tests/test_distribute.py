"""Scale-out: strategy selection and TF_CONFIG, the paper's two-GPU tower placement (on two
logical CPUs), and a real two-worker MultiWorkerMirroredStrategy cluster that is killed,
restarted and resumes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.tiny import SMALL

from alexnet_lib import distribute

HERE = Path(__file__).parent


@pytest.fixture
def tf_config(monkeypatch):
    def set_config(value):
        monkeypatch.setenv("TF_CONFIG", value if isinstance(value, str) else json.dumps(value))
    monkeypatch.delenv("TF_CONFIG", raising=False)
    return set_config


def test_chief_and_cluster_size_follow_tf_config(tf_config):
    assert distribute.tf_config() is None and distribute.is_chief()
    assert distribute.cluster_size() == 1
    workers = {"worker": ["a:1", "b:2", "c:3"]}
    tf_config({"cluster": workers, "task": {"type": "worker", "index": 0}})
    assert distribute.is_chief() and distribute.cluster_size() == 3
    tf_config({"cluster": workers, "task": {"type": "worker", "index": 2}})
    assert not distribute.is_chief()
    tf_config({"cluster": {"chief": ["c:0"], **workers}, "task": {"type": "worker", "index": 0}})
    assert not distribute.is_chief() and distribute.cluster_size() == 4
    tf_config({"cluster": {"chief": ["c:0"], **workers}, "task": {"type": "chief", "index": 0}})
    assert distribute.is_chief()


@pytest.mark.parametrize("value, match", [
    ("{not json", "TF_CONFIG is not valid JSON"),
    ({"cluster": {"worker": ["a:1"]}}, "TF_CONFIG needs"),
    ({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}},
     "is not in its cluster"),
])
def test_bad_tf_config_is_named(tf_config, value, match):
    tf_config(value)
    with pytest.raises(ValueError, match=match):
        distribute.tf_config()


def _fake_gpus(monkeypatch, count):
    """Make ``distribute`` see ``count`` GPUs (none: this test means a CPU-only host, on
    any host)."""
    import tensorflow as tf

    real = tf.config.list_logical_devices
    fake = [tf.config.LogicalDevice(f"/device:GPU:{i}", "GPU") for i in range(count)]
    monkeypatch.setattr(distribute.tf.config, "list_logical_devices",
                        lambda kind=None: fake if kind == "GPU" else real(kind))


def test_strategy_names(tf_config, monkeypatch):
    import tensorflow as tf

    with pytest.raises(ValueError, match=r"Unknown strategy 'horovod'.*'multiworker'"):
        distribute.make_strategy("horovod")
    with pytest.raises(ValueError, match="needs TF_CONFIG"):
        distribute.make_strategy("multiworker")
    _fake_gpus(monkeypatch, 0)
    assert distribute.make_strategy("auto") is tf.distribute.get_strategy()  # no GPUs
    one = distribute.make_strategy("one")
    assert isinstance(one, tf.distribute.OneDeviceStrategy)
    assert one.extended.worker_devices[0].endswith("CPU:0")
    _fake_gpus(monkeypatch, 2)
    assert isinstance(distribute.make_strategy("auto"), tf.distribute.MirroredStrategy)


def test_tower_devices_need_towers_and_two_names():
    from alexnet_lib import build_alexnet

    with pytest.raises(ValueError, match="needs towers=True"):
        build_alexnet("cifar", towers=False, tower_devices=["/CPU:0", "/CPU:0"])
    with pytest.raises(ValueError, match=r"`tower_devices` must be two device names"):
        build_alexnet("cifar", tower_devices=["/CPU:0"])

def test_towers_on_names_two_devices_before_anything_loads(capsys, tmp_path):
    from alexnet_lib.cli import main

    assert main(["train", "--towers-on", "/CPU:0", "--data", "nowhere",
                 "--run-dir", str(tmp_path / "run")]) == 2
    assert "--towers-on takes two devices" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert main(["train", "--towers-on", "/CPU:0,/GPU:7", "--data", "nowhere",
                 "--run-dir", str(tmp_path / "run")]) == 2
    # Checked before the data is read: the error is the device's, not the missing data's.
    assert "names device(s) this machine does not have: /GPU:7" in capsys.readouterr().err


TOWERS = r'''
import json, re, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
tf.debugging.set_log_device_placement(True)  # takes effect only before TF starts
import keras
import numpy as np
from alexnet_lib.distribute import placed_twin
from alexnet_lib.cli import main

devices = ["/CPU:0", "/CPU:1"]
reference, placed = placed_twin("cifar", devices)  # the same weights
x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
forward_diff = float(np.abs(reference(x).numpy() - placed(x).numpy()).max())

def loss_grads(model):
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=False) ** 2)
    return {v.path: g.numpy() for v, g in zip(
        model.trainable_variables, tape.gradient(loss, model.trainable_variables))}
ref_grads, placed_grads = loss_grads(reference), loss_grads(placed)
common = sorted(set(ref_grads) & set(placed_grads))
assert len(common) == len(ref_grads) - 2, common  # all but conv1's (split in two)
grad_diff = max(float(np.abs(ref_grads[k] - placed_grads[k]).max()) for k in common)
variables = {v.path: v.value.device for v in placed.weights}

print("=== placed model ===", file=sys.stderr, flush=True)
tf.function(lambda x: placed(x, training=False))(x)
print("=== end ===", file=sys.stderr, flush=True)
code = main(["train", "--data", sys.argv[1], "--run-dir", sys.argv[2], "--epochs", "1",
             "--batch-size", "16", "--val-size", "40", "--towers-on", ",".join(devices)]
            + [f"--set={k}={json.dumps(v)}" for k, v in json.loads(sys.argv[3]).items()])
print(json.dumps({"forward_diff": forward_diff, "grad_diff": grad_diff, "variables": variables,
                  "train_exit": code}))
'''


def _placements(log: str) -> dict[str, set[str]]:
    """op name -> devices, from the placer's log lines ``name: (Type): .../device:CPU:1``."""
    placed = {}
    for line in log.splitlines():
        if "placer.cc" in line and ": (" in line:
            name, _, rest = line.split("] ", 1)[1].partition(": (")
            op_type, _, device = rest.partition("): ")
            where = device.strip().split("device:")[-1]
            placed.setdefault((name.strip(), op_type), set()).add(where)
    return placed


@pytest.mark.slow
def test_towers_run_on_their_own_devices_and_compute_the_unplaced_function(tmp_path):
    from alexnet_lib.notebooks import make_tiny_dataset

    tree = make_tiny_dataset(tmp_path / "tree", train_per_class=12, test_per_class=3, size=16)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    result = subprocess.run([sys.executable, "-c", TOWERS, str(tree), str(tmp_path / "run"),
                             json.dumps(SMALL)], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["forward_diff"] < 1e-5 and data["grad_diff"] < 1e-5
    assert data["train_exit"] == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["num_examples"] == 30
    # Weights live on their tower's device.
    for path, device in data["variables"].items():
        if "tower2" in path:
            assert device.endswith("CPU:1"), (path, device)
        elif "tower1" in path:
            assert device.endswith("CPU:0"), (path, device)
    # The compute ran there: each tower's convolutions, LRN products and pools.
    placed = _placements(result.stderr.split("=== placed model ===")[1].split("=== end ===")[0])
    expected = {("conv1_tower", "Conv2D"), ("conv2_tower", "Conv2D"), ("conv4_tower", "Conv2D"),
                ("conv5_tower", "Conv2D"), ("lrn1", "MatMul"), ("lrn2", "MatMul"),
                ("pool1", "MaxPool"), ("pool2", "MaxPool"), ("pool5", "MaxPool")}
    for scope, op_type in expected:
        devices = {d for (name, t), ds in placed.items() for d in ds
                   if t == op_type and scope in name}
        assert devices == {"CPU:0", "CPU:1"}, (scope, op_type, devices)
    for tower, device in (("tower1", "CPU:0"), ("tower2", "CPU:1")):
        convs = [ds for (name, t), ds in placed.items() if t == "Conv2D" and tower in name]
        assert convs and all(ds == {device} for ds in convs), (tower, convs)


def _unshare() -> list[str] | None:
    for command in (["unshare", "-n"], ["unshare", "-rn"]):
        try:
            if subprocess.run([*command, "true"], capture_output=True, timeout=30).returncode == 0:
                return command
        except (OSError, subprocess.TimeoutExpired):
            pass
    return None


def _cluster(unshare, spec) -> dict:
    result = subprocess.run([*unshare, sys.executable, str(HERE / "helpers" / "multiworker.py"),
                             json.dumps(spec)], capture_output=True, text=True, timeout=400,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_workers_train_resume_after_a_kill_and_agree(tmp_path):
    unshare = _unshare()
    if unshare is None:
        pytest.skip("cannot create a private network namespace (unshare -n) on this machine")
    from alexnet_lib.notebooks import make_tiny_dataset

    tree = make_tiny_dataset(tmp_path / "tree", train_per_class=20, test_per_class=3, size=16)
    run_dir = tmp_path / "run"
    config = {"data": str(tree), "preset_overrides": SMALL, "val_size": 40,
              "recipe_overrides": {"epochs": 4, "batch_size": 16, "learning_rate": 0.01,
                                   "precision": "float32"},
              "run_dir": str(run_dir), "checkpoint_every": 2, "strategy": "multiworker"}
    steps = (200 - 40) // 16
    first = _cluster(unshare, {"config": config, "out": str(tmp_path), "kill_at_step": steps + 2,
                               "timeout": 300})
    assert first["killed"] and not first["timed_out"], first
    assert not (tmp_path / "weights-0.npz").exists()  # it did not finish

    second = _cluster(unshare, {"config": config, "out": str(tmp_path), "timeout": 300})
    assert not second["timed_out"], "the workers did not exit on their own"
    assert second["returncodes"] == [0, 0], second["outputs"]
    chief, worker = second["outputs"]
    assert "Resuming" in chief, chief[-2000:]
    assert f"optimizer iterations {4 * steps}" in chief
    assert f"optimizer iterations {4 * steps}" in worker
    a, b = np.load(tmp_path / "weights-0.npz"), np.load(tmp_path / "weights-1.npz")
    assert len(a.files) == len(b.files) > 10
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])
    # Only the chief wrote the run folder (and held its lock).
    assert (run_dir / ".lock").is_file()
    assert sorted(p.name for p in run_dir.iterdir() if p.name != ".lock") == [
        ".alexnet_lib", "checkpoints", "config.yaml", "history.csv", "normalization.json",
        "resolved.yaml", "tensorboard"]
    assert len((run_dir / "history.csv").read_text().splitlines()) == 1 + 4
    assert not [p for p in (run_dir / "checkpoints").iterdir() if "worker" in p.name]


def test_copy_weights_between_placed_and_unplaced_builds():
    from alexnet_lib import build_alexnet

    small = dict(image_size=16, conv1_filters=8, conv_filters=(8, 8, 8, 8), fc_units=8)
    plain = build_alexnet("cifar", **small)
    placed = build_alexnet("cifar", **small, tower_devices=["/CPU:0", "/CPU:0"])
    back = build_alexnet("cifar", **small)
    distribute.copy_weights(plain, placed)
    distribute.copy_weights(placed, back)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(placed(x), plain(x), rtol=1e-6)
    for a, b in zip(plain.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="no layer 'conv2'"):
        import keras

        inputs = keras.Input((16, 16, 3))
        other = keras.Model(inputs, keras.layers.Conv2D(8, 5, name="conv1")(inputs))
        distribute.copy_weights(plain, other)
