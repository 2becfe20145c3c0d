"""alexnet_lib.data.device_transforms: the evaluation views in Keras operations give the
TensorFlow pipeline's (data.transforms) outputs, exactly on TensorFlow and within 1e-5 of a
pixel's range on JAX without TensorFlow, for every crop policy (pad 32 and 16, crop 24 of
32, scale 227 from 32), both normalizations and every set of views."""

import json

import numpy as np
import pytest
import tensorflow as tf
from helpers.jaxproc import jax_env, run_python

from alexnet_lib.data.device_transforms import eval_views
from alexnet_lib.data.preprocessing import VIEWS, Normalization, compute_normalization
from alexnet_lib.data.transforms import transform_batch

SIZES = (32, 16, 24, 227)
MODES = ("channel", "mean_image")


def _cases():
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    # As a run folder keeps them (to_dict rounds the mean image to 4 decimals).
    return images, {mode: Normalization.from_dict(compute_normalization(images, mode).to_dict())
                    for mode in MODES}


def test_the_evaluation_views_are_the_tensorflow_pipelines():
    images, norms = _cases()
    for mode, norm in norms.items():
        for size in SIZES:
            for views in VIEWS:
                expected = np.asarray(transform_batch(tf.constant(images), norm, size,
                                                      views=views))
                got = np.asarray(eval_views(images, norm, size, views))
                assert got.shape == expected.shape and expected.std() > 0.1
                np.testing.assert_array_equal(got, expected, err_msg=f"{mode} {size} {views}")


ON_JAX = r"""
import json, sys
import numpy as np
from alexnet_lib.data.device_transforms import eval_views
from alexnet_lib.data.preprocessing import Normalization
data = np.load(sys.argv[1], allow_pickle=False)
norms = {k: Normalization.from_dict(v) for k, v in json.loads(sys.argv[2]).items()}
worst = {}
for key in data.files:
    if key == "images":
        continue
    mode, size, views = key.split("|")
    got = np.asarray(eval_views(data["images"], norms[mode], int(size), views))
    worst[key] = float(np.abs(got - data[key]).max()) if got.shape == data[key].shape else -1.0
print(json.dumps({"worst": worst, "tensorflow": sys.modules.get("tensorflow", "no") is None}))
"""


@pytest.mark.slow
def test_the_evaluation_views_on_jax_without_tensorflow(tmp_path):
    images, norms = _cases()
    arrays = {"images": images}
    for mode, norm in norms.items():
        for size in SIZES:
            for views in VIEWS:
                arrays[f"{mode}|{size}|{views}"] = np.asarray(
                    transform_batch(tf.constant(images), norm, size, views=views))
    np.savez(tmp_path / "expected.npz", **arrays)
    out = run_python(ON_JAX, tmp_path / "expected.npz",
                     json.dumps({mode: norm.to_dict() for mode, norm in norms.items()}),
                     env=jax_env(tmp_path))
    assert out["tensorflow"] is True and len(out["worst"]) == len(MODES) * len(SIZES) * len(VIEWS)
    # Within 1e-5 of a pixel's 0..1 range: the mean-image mode keeps the 0..255 scale.
    bad = {k: v for k, v in out["worst"].items()
           if not 0 <= v <= 1e-5 * (255 if k.startswith("mean_image") else 1)}
    assert not bad, bad
    assert max(out["worst"].values()) > 0  # JAX's arithmetic, not a copy of TensorFlow's
