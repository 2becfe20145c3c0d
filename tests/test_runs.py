"""alexnet_lib.runs and the commands that write run folders: only into one of this project's
runs, every file read back checked before use, another run's model refused, and a resumed
run kept in the precision it started in."""

import dataclasses
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers.hostile import ALIAS_BOMB
from helpers.tiny import SMALL, cli_args, config, copy_run

from alexnet_lib.cli import main
from alexnet_lib.files import MARKER, dump_yaml
from alexnet_lib.model import build_alexnet, get_preset
from alexnet_lib.runs import RunFolder, inference_model


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

