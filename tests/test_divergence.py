"""Divergence: caught at the optimizer step where a loss, gradient, weight or optimizer slot
first becomes non-finite, in the step, the loop and from the CLI; nothing non-finite is ever
saved."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from helpers.tiny import assert_finite_checkpoints, cli_args, config, one_error_line

from alexnet_lib.cli import main
from alexnet_lib.errors import TrainingDiverged
from alexnet_lib.train import Trainer


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
    line = one_error_line(err)
    assert "non-finite" in line or "loss became" in line
    prefixes = tf.train.get_checkpoint_state(str(run / "checkpoints"))
    if prefixes is not None:
        assert_finite_checkpoints(prefixes.all_model_checkpoint_paths)
