"""Training (alexnet_lib.train): a real run on a learnable tiny tree (the suite's shared
``trained`` run), the step's loss and each optimizer, weight decay, moving averages, conv1's
whitening, the plateau rule, resume after kill -9, damaged checkpoints, strategies."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from helpers.tiny import (
    COLOURS,
    assert_finite_checkpoints,
    cli_args,
    config,
    copy_run,
    make_tree,
    progress_lines,
)
from PIL import Image

import alexnet_lib.run_data as run_data
from alexnet_lib.cli import main
from alexnet_lib.config import get_recipe
from alexnet_lib.errors import TrainingDiverged
from alexnet_lib.evaluate import evaluate
from alexnet_lib.model import whitening_kernel
from alexnet_lib.predict import predict
from alexnet_lib.runs import load_model, read_history
from alexnet_lib.train import Trainer


def test_training_learns_writes_the_run_folder_and_evaluates(trained):
    trainer, run = trained, trained.run_dir
    history = trainer.history
    assert [r["epoch"] for r in history] == [0, 1, 2]
    saved = read_history(run)
    assert [r["epoch"] for r in saved] == [0, 1, 2]
    for a, b in zip(saved, history):
        assert a["loss"] == pytest.approx(b["loss"])
        assert a["val_accuracy"] == pytest.approx(b["val_accuracy"])
    steps = trainer.steps_per_epoch
    assert steps == (160 - 16) // 16
    assert int(trainer.optimizer.iterations.numpy()) == 3 * steps
    for name in ("config.yaml", "resolved.yaml", "history.csv", "normalization.json",
                 "checkpoints/best.keras", "checkpoints/last.keras", "checkpoints/checkpoint"):
        assert (run / name).exists(), name
    record = yaml.safe_load((run / "resolved.yaml").read_text())["backend"]
    assert record["name"] == "tensorflow" and record["version"] == tf.__version__
    assert record["keras"] == keras.__version__ and "/device:CPU:0" in record["devices"]
    assert f"backend tensorflow {tf.__version__}; precision float32" in trainer.devices_line()
    logged = tensorboard_scalars(run / "tensorboard", "loss")
    assert [step for step, _ in logged] == [1, 2, 3]
    assert [value for _, value in logged] == pytest.approx([r["loss"] for r in history], rel=1e-6)
    assert [e for e, _ in tensorboard_scalars(run / "tensorboard", "val_accuracy")] == [1, 2, 3]
    assert history[-1]["loss"] < history[0]["loss"]
    metrics = trainer.metrics
    assert metrics["num_examples"] == 48
    assert metrics["test_top1"] > 0.6  # chance is 0.25
    assert np.sum(metrics["confusion"]) == 48
    assert json.loads((run / "metrics.json").read_text())["test_top1"] == metrics["test_top1"]
    assert metrics["views"] == "center" and metrics["center_top1"] == metrics["test_top1"]
    tta = evaluate(run, tta=True, write=False)
    assert tta["tta"] and tta["views"] == "tta" and tta["test_top1"] > 0.6
    assert tta["center_top1"] == metrics["test_top1"]  # the centre is one of the 10 views
    # Flip views (the run's recipe's): the mean of the probabilities of each image and its
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
    info = best.get_layer("inference_info").info
    assert info["class_names"] == ["blue", "green", "red", "yellow"] and info["input_size"] == 16
    assert info["stored_size"] == [16, 16] and info["eval_views"] == "flip"


def tensorboard_scalars(folder, tag: str) -> list[tuple[int, float]]:
    """``(step, value)`` of a scalar in a run's TensorBoard events, read by TensorBoard's own
    reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    events = EventAccumulator(str(folder))
    events.Reload()
    return [(e.step, float(make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]


def _run_cli(args, **kw):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "alexnet_lib", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


@pytest.mark.slow
def test_kill_minus_nine_mid_epoch_then_resume(tree, trained, tmp_path):
    """A real subprocess killed mid-epoch 2 and restarted ends exactly like the unbroken run
    (the shared one, trained in this process with the same configuration and seed)."""
    killed = tmp_path / "killed"
    proc = _run_cli(cli_args(tree, killed, "--no-evaluate"))
    seen = []

    def lines():
        for line in proc.stdout:
            seen.append(line)
            yield line

    for at in progress_lines(lines()):
        if at == (2, 6):  # mid-epoch 2, after its checkpoint at step 4
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    assert [r["epoch"] for r in read_history(killed)] == [0]
    resumed = _run_cli(cli_args(tree, killed, "--no-evaluate"))
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert "Resuming" in out and "epoch 2, step" in out

    a, b = Trainer(config(tree, killed)), trained  # the same config, so it restores
    a.restore()
    steps = a.steps_per_epoch
    assert int(a.optimizer.iterations.numpy()) == int(b.optimizer.iterations.numpy()) == 3 * steps
    killed_history = read_history(killed)
    assert [r["epoch"] for r in killed_history] == [0, 1, 2]
    for ra, rb in zip(killed_history, read_history(b.run_dir)):  # the same seed, the same run
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-5)
        assert ra["val_accuracy"] == pytest.approx(rb["val_accuracy"], abs=1e-6)
    for va, vb in zip(a.model.trainable_variables, b.model.trainable_variables):
        np.testing.assert_allclose(va.numpy(), vb.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_divergence_stops_with_a_clear_message_and_keeps_the_checkpoint(tree, tmp_path):
    trainer = Trainer(config(tree, tmp_path / "nan", recipe={"learning_rate": 1e12}))
    with pytest.raises(TrainingDiverged, match="(loss became (nan|inf)|non-finite)"):
        trainer.fit()
    assert_finite_checkpoints(trainer.state.manager.checkpoints)


def test_changed_arguments_on_an_existing_run_are_refused(tree, trained, tmp_path):
    run = copy_run(trained.run_dir, tmp_path / "run")
    with pytest.raises(ValueError, match=r"different configuration \(recipe_overrides: "
                                         r"saved \{.epochs.: 3.*now \{.epochs.: 2"):
        Trainer(config(tree, run, recipe={"epochs": 2}))
    Trainer(config(tree, run, checkpoint_every=7)).close()  # how it runs may change


def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(tree, trained, tmp_path):
    run = copy_run(trained.run_dir, tmp_path / "run")
    kept = [str(run / "checkpoints" / Path(p).name) for p in trained.state.manager.checkpoints]
    assert len(kept) == 2
    data = Path(kept[-1] + ".data-00000-of-00001")
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])
    # Debris of an interrupted save (files of a checkpoint the index does not list) is removed.
    debris = run / "checkpoints" / "ckpt-99999.index"
    debris.write_bytes(b"garbage")
    again = Trainer(config(tree, run))
    assert not debris.exists()
    assert again.restore()
    assert int(again.optimizer.iterations.numpy()) == int(kept[-2].rsplit("-", 1)[1])


def test_rerun_of_a_finished_run_only_evaluates(tree, trained, tmp_path, capsys):
    """The CLI's arguments of the shared run, on a copy of it: nothing is trained, and the
    evaluation (the recipe's flip views) is the run's."""
    run = copy_run(trained.run_dir, tmp_path / "done")
    assert main(cli_args(tree, run)) == 0
    out = capsys.readouterr().out
    assert "has finished its 3 epochs" in out and "Epoch 1/3" not in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["views"] == "flip"
    assert metrics["test_top1"] == evaluate(trained.run_dir, write=False)["test_top1"]
    assert f"Test accuracy (top-1) {metrics['test_top1']:.4f}" in out


@pytest.mark.slow
def test_whitened_conv1_and_each_epochs_model_kept(tree, tmp_path):
    """conv1_init=whiten starts conv1 from the training patches' principal components;
    keep_epochs keeps every epoch's model beside best/last."""
    trainer = Trainer(config(tree, tmp_path / "run", keep_epochs=True,
                             recipe={"conv1_init": "whiten", "epochs": 2}))
    images = np.concatenate([x.numpy() for x, _ in trainer.datasets.evaluation("train")])
    expected = whitening_kernel(images[:2048], 5, 16, seed=0)
    conv1 = trainer.model.get_layer("conv1")
    np.testing.assert_allclose(conv1.kernel.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert not conv1.bias.numpy().any()
    trainer.fit()
    run = trainer.run
    assert [run.epoch_model(e).exists() for e in (1, 2, 3)] == [True, True, False]
    x, _ = next(iter(trainer.datasets.test()))
    last, kept = load_model(run.model("last")), load_model(run.epoch_model(2))
    np.testing.assert_allclose(kept(x), last(x), rtol=1e-6)


@pytest.mark.slow
def test_frozen_conv1_keeps_its_whitening_and_the_rest_trains(tree, tmp_path):
    """freeze_conv1 keeps conv1 as whitening left it: no trainable weight (so nothing for the
    optimizer to update), the same kernel after training, while the layers above it learn."""
    trainer = Trainer(config(tree, tmp_path / "run", recipe={
        "conv1_init": "whiten", "freeze_conv1": True, "epochs": 1}))
    conv1, conv3 = trainer.model.get_layer("conv1"), trainer.model.get_layer("conv3")
    start1, start3 = conv1.kernel.numpy(), conv3.kernel.numpy()
    trainable = {v.path for v in trainer.model.trainable_variables}
    assert not any(v.path in trainable for v in conv1.weights) and conv3.kernel.path in trainable
    trainer.fit()
    np.testing.assert_array_equal(conv1.kernel.numpy(), start1)
    assert not conv1.bias.numpy().any()
    assert np.abs(conv3.kernel.numpy() - start3).max() > 1e-4
    # The saved model keeps conv1 frozen, with the same weights.
    saved = load_model(trainer.run.model("last")).get_layer("alexnet_cifar").get_layer("conv1")
    assert not saved.trainable
    np.testing.assert_array_equal(saved.kernel.numpy(), start1)
    with pytest.raises(ValueError, match="freeze_conv1='maybe'"):
        get_recipe("cpu", freeze_conv1="maybe")


MIRRORED = r"""
import sys, json
from pathlib import Path
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[1])
from helpers.tiny import config
from alexnet_lib.train import Trainer
tree, out = Path(sys.argv[2]), Path(sys.argv[3])
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
mirrored = Trainer(config(tree, out / "mirrored"), strategy=strategy)
losses = [r["loss"] for r in mirrored.fit()]
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "mirrored": losses,
                  "steps": int(mirrored.optimizer.iterations.numpy())}))
"""


@pytest.mark.slow
def test_the_same_loop_runs_under_mirrored_strategy(tree, trained, tmp_path):
    """Two logical CPUs as replicas: the loss per epoch equals the one-device run's."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", MIRRORED, str(Path(__file__).parent), str(tree),
                             str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["replicas"] == 2 and data["steps"] == 3 * 9
    np.testing.assert_allclose(data["mirrored"], [r["loss"] for r in trained.history], rtol=2e-3)


@pytest.mark.slow
def test_mixed_float16_trains_with_loss_scaling(tree, tmp_path):
    trainer = Trainer(config(tree, tmp_path / "f16",
                             recipe={"epochs": 2, "precision": "mixed_float16"}))
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


# ----------------------------------------------------------------------------- untested paths

def test_plateau_divides_the_rate_and_its_state_survives_a_resume(tree, tmp_path):
    """The paper's schedule, forced: validation accuracy that does not improve for
    ``plateau_patience`` epochs divides the learning rate; the factor, the wait and the best
    accuracy are restored from the checkpoint."""
    recipe = {"optimizer": "sgd", "schedule": "plateau", "plateau_patience": 2,
              "plateau_factor": 0.1, "learning_rate": 0.01, "min_learning_rate": 2e-5}
    first = Trainer(config(tree, tmp_path / "run", recipe=recipe))
    schedule = first.schedule
    for accuracy in (0.5, 0.4, 0.45):  # an improvement, then two epochs without one
        schedule.end_of_epoch(accuracy)
    assert schedule.lr_scale == pytest.approx(0.1)
    assert schedule.wait == 0 and schedule.best == 0.5
    assert schedule.apply(0) == pytest.approx(0.001)
    schedule.end_of_epoch(0.3)
    first.save(0, 0)
    first.close()
    again = Trainer(config(tree, tmp_path / "run", recipe=recipe))
    assert again.restore()
    assert again.schedule.lr_scale == pytest.approx(0.1)
    assert again.schedule.wait == 1 and again.schedule.best == 0.5
    assert again.schedule.apply(5) == pytest.approx(0.001)
    again.schedule.lr_scale = 1e-4
    assert again.schedule.apply(5) == pytest.approx(2e-5)  # never below min_learning_rate
    again.close()


@pytest.mark.slow
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_the_step_loss_is_cross_entropy_with_smoothed_labels(tree, tmp_path, smoothing):
    """One training step's summed loss against NumPy's cross-entropy of the model's
    probabilities before the step (the cpu recipe has no dropout: the forward pass is
    deterministic)."""
    trainer = Trainer(config(tree, tmp_path / "run", recipe={"label_smoothing": smoothing}))
    x, y = next(iter(trainer.datasets.train(0)))
    probs = np.asarray(trainer.model(x, training=True), np.float64)
    target = np.eye(4)[y.numpy()] * (1 - smoothing) + smoothing / 4
    expected = -(target * np.log(np.clip(probs, 1e-7, 1))).sum(1).sum()
    trainer.schedule.apply(0)
    trainer.step(iter([(x, y)]))
    assert trainer.step.sums()[0] == pytest.approx(expected, rel=1e-4)
    assert int(trainer.optimizer.iterations.numpy()) == 1
    trainer.close()


@pytest.mark.slow
@pytest.mark.parametrize("recipe, kind, expected", [
    ({"optimizer": "sgd", "momentum": 0.8}, keras.optimizers.SGD,
     {"momentum": 0.8, "nesterov": False}),
    ({"optimizer": "sgd", "nesterov": True}, keras.optimizers.SGD,
     {"momentum": 0.9, "nesterov": True}),
    ({"optimizer": "adam"}, keras.optimizers.Adam, {}),
    ({"optimizer": "adamw", "weight_decay": 0.1}, keras.optimizers.AdamW, {"weight_decay": 0.1}),
])
def test_each_optimizer_is_built_as_the_recipe_says_and_trains(tree, tmp_path, recipe, kind,
                                                              expected):
    trainer = Trainer(config(tree, tmp_path / "run", recipe={**recipe, "learning_rate": 0.01}))
    assert type(trainer.optimizer) is kind
    for name, value in expected.items():
        assert getattr(trainer.optimizer, name) == pytest.approx(value)
    before = [v.numpy().copy() for v in trainer.model.trainable_variables]
    batches = iter(trainer.datasets.train(0))
    for step in range(3):
        trainer.schedule.apply(step)
        trainer.step(batches)
    assert int(trainer.optimizer.iterations.numpy()) == 3
    assert np.isfinite(trainer.step.sums()[0])
    after = trainer.model.trainable_variables
    moved = [not np.allclose(a, v.numpy()) for a, v in zip(before, after)]
    assert all(moved)
    trainer.close()


@pytest.mark.slow
def test_the_moving_average_of_the_weights_is_kept_per_step_and_swapped_in(tree, tmp_path):
    """ema=m: after every step a <- m a + (1 - m) w (a = w after the first step), against
    NumPy over three steps; averaged_weights() puts the average in place and the weights
    back afterwards."""
    m = 0.6
    trainer = Trainer(config(tree, tmp_path / "run", recipe={"ema": m}))
    assert trainer.optimizer.use_ema and trainer.optimizer.ema_momentum == pytest.approx(m)
    variables = trainer.model.trainable_variables
    batches = iter(trainer.datasets.train(0))
    expected = None
    for step in range(3):
        trainer.schedule.apply(step)
        trainer.step(batches)
        own = [v.numpy().copy() for v in variables]
        expected = own if expected is None else [m * a + (1 - m) * w
                                                 for a, w in zip(expected, own)]
    assert not all(np.allclose(a, w) for a, w in zip(expected, own))
    with trainer.schedule.averaged_weights(trainer.model) as model:
        for v, a in zip(model.trainable_variables, expected):
            np.testing.assert_allclose(v.numpy(), a, rtol=1e-5, atol=1e-7)
    for v, w in zip(variables, own):
        np.testing.assert_array_equal(v.numpy(), w)
    trainer.close()


@pytest.mark.slow
def test_with_a_moving_average_the_saved_models_hold_it_and_the_checkpoint_the_weights(
        tree, tmp_path):
    run_dir = tmp_path / "run"
    trainer = Trainer(config(tree, run_dir, recipe={"ema": 0.9, "epochs": 1}))
    trainer.fit()
    x, _ = next(iter(trainer.datasets.test()))
    averaged = np.asarray(trainer.inference_model()(x))  # after training: the average
    np.testing.assert_allclose(np.asarray(load_model(trainer.run.model("best"))(x)), averaged,
                               rtol=1e-5, atol=1e-6)
    trainer.close()
    again = Trainer(config(tree, run_dir, recipe={"ema": 0.9, "epochs": 1}))
    assert again.restore()  # the resume checkpoint: the weights themselves, and the average
    assert not np.allclose(np.asarray(again.inference_model()(x)), averaged, atol=1e-4)
    with again.schedule.averaged_weights(again.model):
        np.testing.assert_allclose(np.asarray(again.inference_model()(x)), averaged,
                                   rtol=1e-5, atol=1e-6)
    again.close()


@pytest.mark.slow
def test_sgd_adds_the_papers_weight_decay_to_kernel_gradients(tree, tmp_path):
    """SGD without momentum, one step: w' = w - lr * (dL/dw + decay * w) for kernels, biases
    undecayed (the gradient taken here by the same loss)."""
    lr, decay = 0.01, 0.05
    trainer = Trainer(config(tree, tmp_path / "run", recipe={
        "optimizer": "sgd", "momentum": 0.0, "weight_decay": decay, "learning_rate": lr,
        "schedule": "constant", "warmup_epochs": 0.0}))
    x, y = next(iter(trainer.datasets.train(0)))
    variables = trainer.model.trainable_variables
    smoothing = trainer.recipe.label_smoothing  # the cpu recipe's
    with tf.GradientTape() as tape:
        probs = trainer.model(x, training=True)
        loss = tf.reduce_sum(keras.losses.categorical_crossentropy(
            tf.one_hot(y, 4) * (1 - smoothing) + smoothing / 4, probs)) / 16
    grads = tape.gradient(loss, variables)
    before = [v.numpy().copy() for v in variables]
    trainer.schedule.apply(0)
    trainer.step(iter([(x, y)]))
    for v, w, g in zip(variables, before, grads):
        decayed = decay * w if "kernel" in v.path else 0.0
        np.testing.assert_allclose(v.numpy(), w - lr * (g.numpy() + decayed), rtol=1e-3,
                                   atol=1e-6)
    trainer.close()


@pytest.mark.slow
def test_xla_compiled_step_trains_from_the_cli(tree, tmp_path, capsys):
    import yaml

    run = tmp_path / "xla"
    args = cli_args(tree, run, "--xla", "on", "--no-evaluate")
    args[args.index("--epochs") + 1] = "1"
    assert main(args) == 0
    resolved = yaml.safe_load((run / "resolved.yaml").read_text())
    assert resolved["recipe"]["jit_compile"] is True
    assert np.isfinite(read_history(run)[0]["loss"])


@pytest.mark.slow
def test_resize_in_model_trains_on_stored_size_images_end_to_end(tree, tmp_path):
    """The pipeline yields the stored 16x16 images and the model's first layer upsamples to
    its 24x24 input: training, evaluation and predict agree on it."""
    run = tmp_path / "resize"
    trainer = Trainer(config(tree, run, preset={"image_size": 24},
                             recipe={"resize_in_model": True, "epochs": 2}))
    assert trainer.datasets.input_size == 16 and trainer.datasets.image_size == 24
    assert trainer.model.input_shape == (None, 16, 16, 3)
    assert trainer.model.get_layer("upsample").output.shape[1:3] == (24, 24)
    trainer.fit()
    metrics = evaluate(run, views="center")
    assert metrics["test_top1"] > 0.5  # chance is 0.25
    info = load_model(run).get_layer("inference_info").info
    assert (info["input_size"], info["image_size"]) == (16, 24)
    red = tmp_path / "red.png"
    Image.fromarray(np.full((40, 40, 3), COLOURS[0], np.uint8)).save(red)
    assert predict(run, [red])[0].top[0][0] == "red"


def test_a_run_whose_data_moved_reads_the_copy_beside_the_project(tree, trained, tmp_path,
                                                                  monkeypatch):
    """A run trained elsewhere (the shipped one) finds its images in the shared copy when the
    recorded path is gone, and only if they are the same images."""
    moved = copy_run(trained.run_dir, tmp_path / "moved")
    config_file = moved / "config.yaml"
    saved = yaml.safe_load(config_file.read_text())
    config_file.write_text(yaml.safe_dump({**saved, "data": str(tmp_path / "gone")}))
    monkeypatch.setattr(run_data, "shared_cifar10_jpeg", lambda: Path(tree))
    assert run_data.run_datasets(moved).size("test") == 48
    other = make_tree(tmp_path / "other", seed=1)
    monkeypatch.setattr(run_data, "shared_cifar10_jpeg", lambda: other)
    with pytest.raises(ValueError, match="does not hold the data"):
        run_data.run_datasets(moved)
