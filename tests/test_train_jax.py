"""The JAX backend's training step and resume state (alexnet_lib.train.step_jax, .state_jax),
run where ``import tensorflow`` fails: the loss falls, a run saved and restored into new
objects continues bit-identically (dropout's random state included), a damaged newest
checkpoint falls back to the one before, and divergence is caught at the step it starts."""

import json

import pytest
from helpers.jaxproc import jax_env, run_python
from helpers.tiny import SMALL

JAX_PARTS = r"""
import json, sys
from pathlib import Path
import keras, numpy as np
from alexnet_lib.config import TrainConfig
from alexnet_lib.model import build_alexnet
from alexnet_lib.runs import RunFolder
from alexnet_lib.train.build import make_optimizer
from alexnet_lib.train.schedule import Schedule
from alexnet_lib.train.state_jax import JaxResumeState
from alexnet_lib.train.step_jax import JaxTrainStep

root, small = Path(sys.argv[1]), json.loads(sys.argv[2])
messages = []

def parts(name, **recipe):
    keras.utils.set_random_seed(0)
    resolved = TrainConfig(
        data=str(root), run_dir=str(root / name),
        preset_overrides={**small, "num_classes": 4, "dropout": 0.5},
        recipe_overrides={"batch_size": 16, "precision": "float32", "epochs": 3,
                          "warmup_epochs": 0.5, **recipe}).resolve()
    model = build_alexnet(resolved.preset)
    optimizer = make_optimizer(resolved.recipe)
    optimizer.build(model.trainable_variables)
    schedule = Schedule(resolved.recipe, 8, optimizer)
    step = JaxTrainStep(model, optimizer, resolved.recipe, 4)
    run = RunFolder(root / name)
    run.claim()
    return model, schedule, step, JaxResumeState(run, model, optimizer, step, schedule,
                                                 say=messages.append)

rng = np.random.default_rng(0)
colours = np.array([(220, 40, 40), (40, 200, 60), (50, 60, 220), (230, 220, 50)]) / 255.0
labels = [rng.integers(0, 4, 16).astype("int32") for _ in range(8)]
batches = [(((colours[y][:, None, None, :] - 0.5) / 0.25
             + rng.normal(0, 0.3, (16, 16, 16, 3))).astype("float32"), y) for y in labels]

def epochs(schedule, step, start, stop):
    losses = []
    for global_step in range(start, stop):
        if global_step % 8 == 0:
            step.reset_sums()
        schedule.apply(global_step)
        step(iter([batches[global_step % 8]]))
        if global_step % 8 == 7:
            losses.append(step.sums()[0] / 128)
    return losses

model, schedule, step, state = parts("unbroken")
losses = epochs(schedule, step, 0, 24)
step.sync()
unbroken = [np.asarray(v) for v in model.weights]

model, schedule, step, state = parts("broken")
epochs(schedule, step, 0, 13)
state.save(1, 5)
epochs(schedule, step, 13, 14)
state.save(1, 6)
newest = Path(state.latest + ".npz")
model, schedule, step, state = parts("broken")
assert state.restore() and (state.epoch, state.step) == (1, 6)
epochs(schedule, step, 14, 24)
step.sync()
resumed = [np.asarray(v) for v in model.weights]
newest.write_bytes(newest.read_bytes()[:100])  # damaged after it was written
model, schedule, step, state = parts("broken")
fell_back = state.restore() and (state.epoch, state.step) == (1, 5)

model, schedule, step, state = parts("diverged", learning_rate=1e12)
epochs(schedule, step, 0, 8)
print(json.dumps({
    "losses": losses,
    "identical": all(np.array_equal(a, b) for a, b in zip(unbroken, resumed)),
    "weights": len(unbroken), "fell_back": bool(fell_back), "messages": messages,
    "kept": [Path(p).name for p in state.checkpoints], "nonfinite": list(step.nonfinite()),
    "tensorflow": sys.modules.get("tensorflow", "absent") is None,
}))
"""


@pytest.mark.slow
def test_the_jax_step_and_resume_state_without_tensorflow(tmp_path):
    out = run_python(JAX_PARTS, tmp_path, json.dumps(SMALL), env=jax_env(tmp_path),
                     timeout=600)
    assert out["tensorflow"] is True  # it ran without TensorFlow
    assert out["losses"][2] < 0.8 * out["losses"][0], out["losses"]
    assert out["identical"] and out["weights"] > 10
    assert out["fell_back"] and "cannot be read" in out["messages"][0]
    assert out["kept"] == [] and out["nonfinite"][0] >= 1  # nothing saved; caught at a step
