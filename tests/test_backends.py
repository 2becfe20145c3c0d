"""Everything above the model but the training loop, the data pipelines and the exports
works without TensorFlow: on Keras's JAX backend, with ``import tensorflow`` failing."""

import json
import subprocess
import sys

import pytest
from helpers.jaxproc import jax_env, run_python

WITHOUT_TENSORFLOW = r"""
import json, sys
import alexnet_lib, alexnet_lib.checks, alexnet_lib.config, alexnet_lib.data
import alexnet_lib.data.folders, alexnet_lib.data.preprocessing, alexnet_lib.data.sources
import alexnet_lib.model, alexnet_lib.plots, alexnet_lib.runs
from alexnet_lib.config import TrainConfig
from alexnet_lib.data.preprocessing import compute_normalization, resize_image
from alexnet_lib.data.sources import load_source
from alexnet_lib.model import build_alexnet
from alexnet_lib.runs import RunFolder
import keras, numpy as np

resolved = TrainConfig(data=sys.argv[1], run_dir=sys.argv[2]).resolve()
splits, classes, _ = load_source(sys.argv[1])
norm = compute_normalization(splits["train"][0])
RunFolder(sys.argv[2]).claim()
print(json.dumps({
    "backend": keras.backend.backend(),
    "tensorflow": sys.modules.get("tensorflow", "absent") is None,
    "params": build_alexnet("cifar").count_params(),
    "recipe": resolved.recipe.name, "classes": list(classes),
    "resized": list(resize_image(splits["train"][0][0], 8).shape),
    "mean": norm.mean,
}))
"""


@pytest.mark.slow
def test_the_library_above_the_model_imports_and_works_without_tensorflow(tree, tmp_path):
    env = jax_env(tmp_path, ALEXNET_DATA_DIR=str(tmp_path / "data"))
    out = run_python(WITHOUT_TENSORFLOW, tree, tmp_path / "run", env=env)
    assert out["backend"] == "jax" and out["tensorflow"] is True
    assert out["params"] == 1_398_154 and out["recipe"] == "cpu"
    assert out["classes"] == ["blue", "green", "red", "yellow"]
    assert out["resized"] == [8, 8, 3] and all(0 < m < 1 for m in out["mean"])
    # And "import tensorflow" really fails there.
    probe = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr


@pytest.mark.slow
@pytest.mark.parametrize("block_tensorflow, keras_json, expected", [
    (False, None, "tensorflow"),   # nothing chosen, TensorFlow installed
    (True, None, "jax"),           # nothing chosen, TensorFlow not importable
    (False, "jax", "jax"),         # the user's keras.json wins
    (True, "tensorflow", "jax"),   # ... unless what it names is not installed here
])
def test_the_backend_is_the_users_else_tensorflow_if_importable_else_jax(
        tmp_path, block_tensorflow, keras_json, expected):
    if keras_json:
        (tmp_path / "keras").mkdir()
        (tmp_path / "keras" / "keras.json").write_text(json.dumps({"backend": keras_json}))
    env = jax_env(tmp_path, block_tensorflow, KERAS_HOME=str(tmp_path / "keras"))
    del env["KERAS_BACKEND"]  # nobody chose one
    code = ("import json, os, alexnet_lib, keras\n"
            "print(json.dumps([keras.backend.backend(), os.environ['KERAS_BACKEND']]))")
    assert run_python(code, env=env) == [expected, expected]
