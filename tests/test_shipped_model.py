"""The trained model that comes with the project (models/cifar-cpu): it loads in safe mode,
`predict` uses it when no checkpoint is named, and it scores what its metrics.json records."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from alexnet_lib import build_alexnet
from alexnet_lib.cli import main
from alexnet_lib.config import Recipe, TrainConfig, get_recipe
from alexnet_lib.data.cifar10 import CIFAR10_CLASSES
from alexnet_lib.paths import shared_cifar10_jpeg, shipped_model, shipped_run
from alexnet_lib.run_data import run_datasets
from alexnet_lib.runs import load_model, load_run, model_info


def test_the_shipped_model_loads_in_safe_mode_and_carries_its_preprocessing():
    model = load_model(shipped_model())  # safe_mode=True
    info = model_info(model, shipped_model())
    assert info.class_names == CIFAR10_CLASSES and info.eval_views == "shift10"
    assert info.input_size == 32 and info.stored_size == (32, 32)
    # The default recipe's network: the cifar topology narrowed to 32-64-128-128-96 maps.
    assert model.count_params() == build_alexnet(TrainConfig().resolve().preset).count_params()
    assert model.count_params() == 698_666
    recorded = json.loads((shipped_run() / "metrics.json").read_text())
    assert recorded["num_examples"] == 10_000 and recorded["views"] == "shift10"


def test_the_shipped_model_was_trained_with_the_default_recipe_as_it_is_now():
    """Rebuild the shipped model (tools/ship_model.py) whenever the cpu recipe changes."""
    resolved = yaml.safe_load((shipped_run() / "resolved.yaml").read_text())
    recipe = yaml.safe_load(yaml.safe_dump(get_recipe("cpu").to_dict()))
    # A field added since takes its default, which leaves training as it was (ema: 0, off).
    shipped = yaml.safe_load(yaml.safe_dump(Recipe(**resolved["recipe"]).to_dict()))
    ignored = {"description", "precision"}  # words; auto resolves per host
    shipped = {k: v for k, v in shipped.items() if k not in ignored}
    assert shipped == {k: v for k, v in recipe.items() if k not in ignored}
    assert len((shipped_run() / "history.csv").read_text().splitlines()) == 1 + recipe["epochs"]


def test_predict_without_a_checkpoint_uses_the_shipped_model(tmp_path, capsys):
    image = tmp_path / "picture.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(image)
    assert main(["predict", "--top-k", "3", str(image)]) == 0
    captured = capsys.readouterr()
    assert "the shipped model" in captured.err
    line = captured.out.strip().splitlines()[-1]
    assert line.startswith(f"{image}: ")
    classes = [part.rsplit(" ", 1)[0] for part in line.split(": ", 1)[1].split(", ")]
    assert len(classes) == 3 and set(classes) <= set(CIFAR10_CLASSES)


@pytest.mark.realdata
@pytest.mark.slow
def test_the_shipped_model_scores_its_recorded_test_accuracy():
    """All 10,000 test JPEGs through predict (the model's own views): the recorded top-1."""
    from alexnet_lib.predict import Predictor

    root = shared_cifar10_jpeg() / "test"
    if not root.is_dir():
        pytest.skip(f"no CIFAR-10 JPEG copy at {root}")
    files, labels = [], []
    for label, name in enumerate(CIFAR10_CLASSES):
        found = sorted((root / name).iterdir())
        files += found
        labels += [label] * len(found)
    results = Predictor(shipped_model()).predict_files(files, top_k=1)
    assert not [r for r in results if r.error]
    top1 = np.mean([CIFAR10_CLASSES.index(r.top[0][0]) == y for r, y in zip(results, labels)])
    recorded = json.loads((shipped_run() / "metrics.json").read_text())
    assert len(files) == 10_000
    assert top1 == pytest.approx(recorded["test_top1"], abs=1e-9)


@pytest.mark.realdata
@pytest.mark.slow
def test_the_shipped_run_opens_as_a_run_folder_with_its_data():
    """Notebook 04's default: the shipped folder is a run folder whose test images come from
    the JPEG copy beside the project when the recorded path is not there."""
    if not shared_cifar10_jpeg().is_dir():
        pytest.skip(f"no CIFAR-10 JPEG copy at {shared_cifar10_jpeg()}")
    run = load_run(shipped_run())
    assert run.checkpoint == shipped_model() and len(run.history) == get_recipe("cpu").epochs
    assert run.config["preset"] == "cifar" and run.config["recipe"] == "cpu"
    datasets = run_datasets(run.run_dir)
    assert datasets.size("test") == 10_000 and datasets.class_names == CIFAR10_CLASSES
