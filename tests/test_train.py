"""Training: recipes, schedules, a real run on a learnable tiny tree, resume after kill -9,
divergence, tampered checkpoints and models, evaluation and prediction."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from alexnet_lib.cli import main
from alexnet_lib.evaluate import classification_metrics, evaluate, load_model
from alexnet_lib.predict import Predictor, predict
from alexnet_lib.train import (RECIPES, TrainConfig, Trainer, TrainingDiverged, get_recipe,
                               learning_rate_at, read_history)

COLOURS = [(220, 40, 40), (40, 200, 60), (50, 60, 220), (230, 220, 50)]
SMALL = {"image_size": 16, "conv1_filters": 16, "conv_filters": [24, 32, 32, 24], "fc_units": 64}


def make_tree(root: Path, train: int = 40, test: int = 12, size: int = 16) -> Path:
    """Four colour-coded classes with noise: learnable in a few dozen steps."""
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("test", test)):
        for label, name in enumerate(["red", "green", "blue", "yellow"]):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = np.array(COLOURS[label]) + rng.normal(0, 40, (size, size, 3))
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("tree"))


def config(tree, run_dir, **kw) -> TrainConfig:
    # float32 pinned: the tests compare runs to 1e-5, which the precision `auto` picks on a
    # GPU or a bfloat16 CPU would not hold.
    recipe = {"epochs": 3, "batch_size": 16, "learning_rate": 0.02, "warmup_epochs": 0.5,
              "precision": "float32"}
    recipe.update(kw.pop("recipe", {}))
    return TrainConfig(data=str(tree), preset_overrides=dict(SMALL), recipe_overrides=recipe,
                       val_size=16, run_dir=str(run_dir), checkpoint_every=4, **kw)


def cli_args(tree, run_dir, *extra):
    sets = [f"--set={k}={json.dumps(v)}" for k, v in SMALL.items()]
    return ["train", "--data", str(tree), "--run-dir", str(run_dir), "--epochs", "3",
            "--batch-size", "16", "--val-size", "16", "--checkpoint-every", "2",
            "--precision", "float32",
            "--set=learning_rate=0.02", "--set=warmup_epochs=0.5", *sets, *extra]


def test_recipes_validate_and_name_bad_values():
    assert get_recipe("seed").learning_rate == 5e-5 and get_recipe("seed").epochs == 18
    paper = get_recipe("paper")
    assert (paper.optimizer, paper.momentum, paper.weight_decay, paper.batch_size) == ("sgd", 0.9, 5e-4, 128)
    with pytest.raises(ValueError, match="Unknown recipe 'fast'"):
        get_recipe("fast")
    with pytest.raises(ValueError, match="epochs=-1"):
        get_recipe("cpu", epochs=-1)
    with pytest.raises(ValueError, match="optimizer='rmsprop'"):
        get_recipe("cpu", optimizer="rmsprop")
    with pytest.raises(ValueError, match="lr"):
        get_recipe("cpu", lr=0.1)
    with pytest.raises(ValueError, match="eval_views='mirror'"):
        get_recipe("cpu", eval_views="mirror")
    assert get_recipe("cpu").eval_views == "flip" and get_recipe("seed").eval_views == "center"
    assert set(RECIPES) == {"seed", "paper", "cpu"}


def test_learning_rate_schedules():
    onecycle = get_recipe("cpu", epochs=10, learning_rate=0.1, warmup_epochs=2)
    assert learning_rate_at(onecycle, 0, 100) == pytest.approx(0.1 / 200)
    assert learning_rate_at(onecycle, 199, 100) == pytest.approx(0.1)
    assert learning_rate_at(onecycle, 600, 100) == pytest.approx(0.1 * 0.5 + 1e-4 * 0.5)
    assert learning_rate_at(onecycle, 1000, 100) == pytest.approx(1e-4)
    cosine = onecycle.replace(schedule="cosine")
    assert learning_rate_at(cosine, 600, 100) == pytest.approx(0.05)
    assert learning_rate_at(get_recipe("paper"), 12345, 100) == 0.01


def test_training_learns_writes_the_run_folder_and_evaluates(tree, tmp_path):
    trainer = Trainer(config(tree, tmp_path / "run"))
    history = trainer.fit()
    run = tmp_path / "run"
    assert [r["epoch"] for r in history] == [0, 1, 2]
    saved = read_history(run)
    assert [r["epoch"] for r in saved] == [0, 1, 2]
    for a, b in zip(saved, history):
        assert a["loss"] == pytest.approx(b["loss"]) and a["val_accuracy"] == pytest.approx(b["val_accuracy"])
    steps = trainer.steps_per_epoch
    assert steps == (160 - 16) // 16
    assert int(trainer.optimizer.iterations.numpy()) == 3 * steps
    for name in ("config.yaml", "history.csv", "normalization.json", "checkpoints/best.keras",
                 "checkpoints/last.keras", "checkpoints/checkpoint"):
        assert (run / name).exists(), name
    assert list((run / "tensorboard").iterdir())
    assert history[-1]["loss"] < history[0]["loss"]
    metrics = evaluate(run, views="center")
    assert metrics["num_examples"] == 48
    assert metrics["test_top1"] > 0.6  # chance is 0.25
    assert np.sum(metrics["confusion"]) == 48
    assert json.loads((run / "metrics.json").read_text())["test_top1"] == metrics["test_top1"]
    assert metrics["views"] == "center" and metrics["center_top1"] == metrics["test_top1"]
    tta = evaluate(run, tta=True, write=False)
    assert tta["tta"] and tta["views"] == "tta" and tta["test_top1"] > 0.6
    assert tta["center_top1"] == metrics["test_top1"]  # the centre is one of the 10 views
    # Flip views (the cpu recipe's): the mean of the probabilities of each image and its
    # mirror image, against the same computed here.
    flip = evaluate(run, write=False)
    assert flip["views"] == "flip" and not flip["tta"]
    assert flip["center_top1"] == metrics["test_top1"]
    best = load_model(run / "checkpoints" / "best.keras")
    images = np.concatenate([x.numpy() for x, _ in trainer.datasets.test()])
    labels = np.concatenate([y.numpy() for _, y in trainer.datasets.test()])
    mean = (best.predict(images, verbose=0) + best.predict(images[:, :, ::-1], verbose=0)) / 2
    assert flip["test_top1"] == pytest.approx(float((mean.argmax(1) == labels).mean()))
    assert flip["test_loss"] == pytest.approx(
        float(-np.log(np.clip(mean[np.arange(48), labels], 1e-7, 1)).mean()), rel=1e-4)
    with pytest.raises(ValueError, match="'mirror'"):
        evaluate(run, views="mirror", write=False)
    # The saved model loads with safe_mode and carries what inference needs.
    model = load_model(run / "checkpoints" / "best.keras")
    info = model.get_layer("inference_info").info
    assert info["class_names"] == ["blue", "green", "red", "yellow"] and info["input_size"] == 16


def test_same_seed_same_first_epoch_loss(tree, tmp_path):
    losses = []
    for name in ("a", "b"):
        cfg = config(tree, tmp_path / name, recipe={"epochs": 1})
        losses.append(Trainer(cfg).fit()[0]["loss"])
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_metrics_count_every_example():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    labels = np.array([0, 1, 1, 2])
    m = classification_metrics(probs, labels, ["a", "b", "c"])
    assert m["test_top1"] == 0.5 and m["test_top5"] == 1.0
    assert m["per_class"] == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert m["confusion"] == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]


def _run_cli(args, **kw):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "alexnet_lib", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_kill_minus_nine_mid_epoch_then_resume(tree, tmp_path):
    """A real subprocess killed mid-epoch 2 and restarted ends exactly like an unbroken run."""
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    proc = _run_cli(cli_args(tree, killed, "--no-evaluate"))
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("epoch 2/3 step 6/"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    resumed = _run_cli(cli_args(tree, killed, "--no-evaluate"))
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert "Resuming" in out and "epoch 2, step" in out
    unbroken = _run_cli(cli_args(tree, whole, "--no-evaluate"))
    out2, _ = unbroken.communicate(timeout=300)
    assert unbroken.returncode == 0, out2

    def final(run):
        trainer = Trainer(config(tree, run))  # same config, so it restores
        trainer.restore()
        return trainer
    a, b = final(killed), final(whole)
    steps = a.steps_per_epoch
    assert int(a.optimizer.iterations.numpy()) == int(b.optimizer.iterations.numpy()) == 3 * steps
    assert [r["epoch"] for r in read_history(killed)] == [0, 1, 2]
    assert read_history(killed)[0]["loss"] == pytest.approx(read_history(whole)[0]["loss"], rel=1e-5)
    for va, vb in zip(a.model.trainable_variables, b.model.trainable_variables):
        np.testing.assert_allclose(va.numpy(), vb.numpy(), rtol=1e-4, atol=1e-6)


def test_divergence_stops_with_a_clear_message_and_keeps_the_checkpoint(tree, tmp_path):
    trainer = Trainer(config(tree, tmp_path / "nan", recipe={"learning_rate": 1e12}))
    with pytest.raises(TrainingDiverged, match="(loss became (nan|inf)|non-finite)"):
        trainer.fit()
    assert_finite_checkpoints(trainer.manager.checkpoints)


def assert_finite_checkpoints(prefixes) -> None:
    """Every floating-point tensor of every checkpoint is finite."""
    for prefix in prefixes:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            value = reader.get_tensor(name)
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                assert np.isfinite(value).all(), (prefix, name)


def test_changed_arguments_on_an_existing_run_are_refused(tree, tmp_path):
    Trainer(config(tree, tmp_path / "run", recipe={"epochs": 1})).fit()
    with pytest.raises(ValueError, match="different configuration.*epochs"):
        Trainer(config(tree, tmp_path / "run", recipe={"epochs": 2}))


def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(tree, tmp_path):
    run = tmp_path / "run"
    first = Trainer(config(tree, run))
    first.fit()
    kept = first.manager.checkpoints
    assert len(kept) == 2
    data = Path(kept[-1] + ".data-00000-of-00001")
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])
    # Debris of an interrupted save must not be picked up either.
    (run / "checkpoints" / "ckpt-99999.index").write_bytes(b"garbage")
    again = Trainer(config(tree, run))
    assert again.restore()
    assert int(again.optimizer.iterations.numpy()) == int(kept[-2].rsplit("-", 1)[1])


def test_tampered_models_are_refused(tree, tmp_path):
    # A model with a Lambda layer (arbitrary Python) is refused by safe_mode.
    inputs = keras.Input((4,))
    evil = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    evil.save(tmp_path / "evil.keras")
    with pytest.raises(ValueError, match="evil.keras"):
        load_model(tmp_path / "evil.keras")
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(b"PK\x03\x04 not a whole zip")
    with pytest.raises(ValueError, match="truncated.keras"):
        load_model(truncated)
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        load_model(tmp_path / "missing.keras")


def test_cli_train_evaluate_predict(tree, tmp_path, capsys):
    run = tmp_path / "cli"
    assert main(cli_args(tree, run)) == 0
    out = capsys.readouterr().out
    assert "Test accuracy (top-1)" in out and str(run / "checkpoints" / "best.keras") in out
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
    assert sum(t["probability"] for t in results[2]["top"]) <= 1.0 + 1e-6
    assert "error" in results[1]
    ok = predict(run, [big])[0]
    assert ok.top[0][0] == "red" and ok.error is None
    # Views: the default is the recipe's (cpu: flip), the mean over the image and its mirror.
    half = tmp_path / "half.png"
    Image.fromarray(np.concatenate([np.full((16, 8, 3), COLOURS[0], np.uint8),
                                    np.full((16, 8, 3), COLOURS[1], np.uint8)], 1)).save(half)
    predictor = Predictor(run)
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
])
def test_cli_errors_name_the_value(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_rerun_of_a_finished_run_only_evaluates(tree, tmp_path, capsys):
    run = tmp_path / "done"
    args = cli_args(tree, run)
    args[args.index("--epochs") + 1] = "1"
    assert main(args) == 0
    first = json.loads((run / "metrics.json").read_text())
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "has finished its 1 epochs" in out and "epoch 1/1" not in out
    assert json.loads((run / "metrics.json").read_text())["test_top1"] == first["test_top1"]


def test_recipe_follows_the_preset():
    from alexnet_lib.cli import build_parser, train_config_from_args

    parse = build_parser().parse_args
    assert train_config_from_args(parse(["train", "--preset", "seed"])).recipe == "seed"
    assert train_config_from_args(parse(["train", "--recipe", "paper"])).preset == "paper"
    config = train_config_from_args(parse(["train", "--set", "dropout=0.3", "--epochs", "2"]))
    assert (config.preset, config.recipe) == ("cifar", "cpu")
    assert config.resolved_preset().dropout == 0.3 and config.resolved_recipe().epochs == 2
    assert TrainConfig().resolved_preset().dropout == 0.0  # the cpu recipe's own choice


MIRRORED = r'''
import sys, json
from pathlib import Path
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[1])
from test_train import config
from alexnet_lib.train import Trainer
tree, out = Path(sys.argv[2]), Path(sys.argv[3])
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
mirrored = Trainer(config(tree, out / "mirrored"), strategy=strategy)
losses = [r["loss"] for r in mirrored.fit()]
single = [r["loss"] for r in Trainer(config(tree, out / "single")).fit()]
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "mirrored": losses, "single": single,
                  "steps": int(mirrored.optimizer.iterations.numpy())}))
'''


def test_the_same_loop_runs_under_mirrored_strategy(tree, tmp_path):
    """Two logical CPUs as replicas: the loss per epoch equals the one-device run's."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", MIRRORED, str(Path(__file__).parent), str(tree),
                             str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["replicas"] == 2 and data["steps"] == 3 * 9
    np.testing.assert_allclose(data["mirrored"], data["single"], rtol=2e-3)


@pytest.mark.parametrize("gpus, flags, speedup, expected", [
    (0, {"avx2", "fma"}, None, "float32"),                     # AVX2 only: never measured
    (0, {"avx512f", "avx512_bf16"}, 1.54, "mixed_bfloat16"),   # AMD EPYC, measured 1.54x
    (0, {"avx512f", "avx512_bf16"}, 0.63, "float32"),          # Intel Xeon, measured 0.63x
    (0, {"amx_bf16", "amx_tile"}, 2.0, "mixed_bfloat16"),
    (2, {"avx2"}, None, "mixed_bfloat16"),                     # GPUs: tensor cores
])
def test_precision_auto_is_decided_by_the_devices_and_the_cpu(gpus, flags, speedup, expected):
    """Faked devices, CPU flags and measurements: the decision on any host."""
    from alexnet_lib.train import choose_precision

    measured = []

    def measure():
        measured.append(1)
        return speedup

    chosen, reason = choose_precision("auto", gpus=gpus, flags=frozenset(flags), measure=measure)
    assert chosen == expected
    assert bool(measured) == (gpus == 0 and bool(flags & {"avx512_bf16", "amx_bf16"}))
    if measured:
        assert f"{speedup:.2f}x" in reason
    assert choose_precision("mixed_float16", gpus=gpus, flags=frozenset(flags)) == (
        "mixed_float16", "asked for")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    from alexnet_lib.train import cpu_flags

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert cpu_flags(str(info)) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(str(tmp_path / "absent")) == frozenset()


def test_the_run_records_its_precision_and_why(tree, tmp_path, monkeypatch):
    import yaml

    import alexnet_lib.train as train

    monkeypatch.setattr(train, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    monkeypatch.setattr(train, "bfloat16_speedup", lambda preset: 1.6)
    monkeypatch.setattr(train.tf.config, "list_logical_devices",
                        lambda kind=None: [] if kind == "GPU" else [train.tf.config.LogicalDevice(
                            "/device:CPU:0", "CPU")])
    trainer = Trainer(config(tree, tmp_path / "auto", recipe={"epochs": 1, "precision": "auto"}))
    assert trainer.recipe.precision == "mixed_bfloat16"
    assert "precision mixed_bfloat16 (auto: the CPU has avx512_bf16" in trainer.devices_line()
    trainer.fit()
    recorded = yaml.safe_load((tmp_path / "auto" / "resolved.yaml").read_text())["precision"]
    assert recorded["requested"] == "auto" and recorded["chosen"] == "mixed_bfloat16"
    assert "1.60x" in recorded["reason"]


def test_mixed_float16_trains_with_loss_scaling(tree, tmp_path):
    trainer = Trainer(config(tree, tmp_path / "f16", recipe={"epochs": 2, "precision": "mixed_float16"}))
    history = trainer.fit()
    assert all(np.isfinite(r["loss"]) for r in history)
    assert history[-1]["loss"] < history[0]["loss"]
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    conv = trainer.model.get_layer("conv3")
    assert conv.compute_dtype == "float16" and conv.kernel.dtype == "float32"
    assert trainer.model.get_layer("lrn1").compute_dtype == "float32"
    assert trainer.model.get_layer("predictions").compute_dtype == "float32"
    assert metrics_ok(evaluate(tmp_path / "f16"))


def metrics_ok(metrics) -> bool:
    return metrics["num_examples"] == 48 and metrics["test_top1"] > 0.5  # chance is 0.25
