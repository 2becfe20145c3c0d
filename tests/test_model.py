"""build_alexnet: presets, shapes, parameter counts, overrides, init, errors, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from numpy.lib.stride_tricks import sliding_window_view

from alexnet_lib import PRESETS, LocalResponseNormalization, TowerConv2D, build_alexnet
from alexnet_lib.model import compare_with_paper, whitening_kernel

PAPER_PARAMS = 60_965_224


def conv_params(k, cin, cout, groups=1):
    return k * k * (cin // groups) * cout + cout


def dense_params(fan_in, units):
    return fan_in * units + units


@pytest.fixture(scope="module")
def paper():
    return build_alexnet("paper")


def test_paper_parameter_count_is_the_reference_models(paper):
    assert paper.count_params() == PAPER_PARAMS
    # The per-layer breakdown of REFERENCE.md (towers in conv2/4/5).
    per_layer = {name: paper.get_layer(name).count_params()
                 for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7",
                              "predictions")}
    assert per_layer == {
        "conv1": 34_944, "conv2": 307_456, "conv3": 885_120, "conv4": 663_936,
        "conv5": 442_624, "fc6": 37_752_832, "fc7": 16_781_312, "predictions": 4_097_000,
    }


def test_paper_per_layer_output_shapes(paper):
    expected = {
        "conv1": (55, 55, 96), "lrn1": (55, 55, 96), "pool1": (27, 27, 96),
        "conv2": (27, 27, 256), "lrn2": (27, 27, 256), "pool2": (13, 13, 256),
        "conv3": (13, 13, 384), "conv4": (13, 13, 384), "conv5": (13, 13, 256),
        "pool5": (6, 6, 256), "flatten": (9216,), "fc6": (4096,), "fc7": (4096,),
        "predictions": (1000,),
    }
    got = {name: tuple(paper.get_layer(name).output.shape[1:]) for name in expected}
    assert got == expected
    assert paper.input_shape == (None, 227, 227, 3)


def test_paper_towers_are_tower_layers_with_suffixed_names(paper):
    for name in ("conv2", "conv4", "conv5"):
        layer = paper.get_layer(name)
        assert isinstance(layer, TowerConv2D)
        assert [c.name for c in layer.convs] == [f"{name}_tower1", f"{name}_tower2"]
    for name in ("conv1", "conv3"):
        assert type(paper.get_layer(name)) is keras.layers.Conv2D
    # conv2 kernels see 48 of conv1's 96 maps, conv4/conv5 192 of 384 (the paper's Figure 2)
    assert paper.get_layer("conv2").convs[0].kernel.shape == (5, 5, 48, 128)
    assert paper.get_layer("conv4").convs[0].kernel.shape == (3, 3, 192, 192)
    assert paper.get_layer("conv5").convs[0].kernel.shape == (3, 3, 192, 128)


def test_paper_without_towers_parameter_count():
    p = PRESETS["paper"]
    f2, f3, f4, f5 = p.conv_filters
    pool5 = 6
    expected = (
        conv_params(11, 3, 96) + conv_params(5, 96, f2) + conv_params(3, f2, f3)
        + conv_params(3, f3, f4) + conv_params(3, f4, f5)
        + dense_params(pool5 * pool5 * f5, 4096) + dense_params(4096, 4096)
        + dense_params(4096, 1000)
    )
    model = build_alexnet("paper", towers=False)
    assert model.count_params() == expected
    assert expected > PAPER_PARAMS  # the towers save weights in conv2/4/5
    assert type(model.get_layer("conv2")) is keras.layers.Conv2D


@pytest.mark.parametrize(
    "preset, input_shape, classes",
    [("paper", (227, 227, 3), 1000), ("upsampled", (227, 227, 3), 10), ("cifar", (32, 32, 3), 10)],
)
def test_every_preset_output_shape(preset, input_shape, classes):
    model = build_alexnet(preset)
    assert model.name == f"alexnet_{preset}"
    assert model.input_shape == (None, *input_shape)
    assert model.output_shape == (None, classes)


def test_seed_preset_keeps_conv5_at_13x13():
    model = build_alexnet("upsampled")
    assert tuple(model.get_layer("conv5").output.shape[1:3]) == (13, 13)
    assert model.count_params() == PAPER_PARAMS - dense_params(4096, 1000) + dense_params(4096, 10)


def test_cifar_preset_shapes_and_forward_pass():
    model = build_alexnet("cifar")
    shapes = {n: tuple(model.get_layer(n).output.shape[1:3])
              for n in ("conv1", "pool1", "conv2", "pool2", "conv5", "pool5")}
    assert shapes == {"conv1": (32, 32), "pool1": (15, 15), "conv2": (15, 15),
                      "pool2": (7, 7), "conv5": (7, 7), "pool5": (3, 3)}
    x = np.random.default_rng(0).standard_normal((4, 32, 32, 3)).astype(np.float32)
    probs = model(x, training=False).numpy()
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # Dropout is off at inference: the same input gives the same output.
    np.testing.assert_array_equal(probs, model(x, training=False).numpy())
    # Parameters from the layer shapes: conv1 5x5 over RGB; conv2, conv4, conv5 two towers of
    # 3x3 kernels over half the maps; conv3 3x3 over all of them; fc6 over pool5's 3x3x128.
    towers = lambda k, cin, cout: 2 * (k * k * (cin // 2) * (cout // 2) + cout // 2)  # noqa: E731
    dense = lambda fan_in, units: fan_in * units + units  # noqa: E731
    expected = (dense(5 * 5 * 3, 64) + towers(3, 64, 128) + dense(3 * 3 * 128, 192)
                + towers(3, 192, 192) + towers(3, 192, 128) + dense(3 * 3 * 128, 512)
                + dense(512, 512) + dense(512, 10))
    assert model.count_params() == expected == 1_398_154


def test_overrides_express_the_papers_ablations():
    model = build_alexnet("cifar", lrn=False, pool="non-overlapping", activation="tanh",
                          dropout=0.3, towers=False, num_classes=7, image_size=48)
    names = [layer.name for layer in model.layers]
    assert "lrn1" not in names and "lrn2" not in names
    assert model.get_layer("pool1").pool_size == (2, 2)
    assert model.get_layer("pool1").strides == (2, 2)
    assert model.get_layer("conv3").activation is keras.activations.tanh
    assert model.get_layer("fc6").activation is keras.activations.tanh
    assert model.get_layer("dropout6").rate == 0.3
    assert type(model.get_layer("conv4")) is keras.layers.Conv2D
    assert model.input_shape == (None, 48, 48, 3)
    assert model.output_shape == (None, 7)


def test_default_layers_follow_the_paper():
    model = build_alexnet("cifar")
    assert model.get_layer("pool1").pool_size == (3, 3)
    assert model.get_layer("pool1").strides == (2, 2)
    assert model.get_layer("dropout7").rate == 0.5
    lrn = model.get_layer("lrn1")
    assert isinstance(lrn, LocalResponseNormalization)
    assert (lrn.k, lrn.n, lrn.alpha, lrn.beta, lrn.groups) == (2.0, 5, 1e-4, 0.75, 2)


def _biases(model, name):
    layer = model.get_layer(name)
    if isinstance(layer, TowerConv2D):
        return np.concatenate([c.bias.numpy() for c in layer.convs])
    return layer.bias.numpy()


def _kernels(model, name):
    layer = model.get_layer(name)
    if isinstance(layer, TowerConv2D):
        return np.concatenate([c.kernel.numpy().ravel() for c in layer.convs])
    return layer.kernel.numpy().ravel()


def test_paper_init():
    model = build_alexnet("cifar", init="paper")
    for name in ("conv2", "conv4", "conv5", "fc6", "fc7"):
        np.testing.assert_array_equal(_biases(model, name), 1.0)
    for name in ("conv1", "conv3", "predictions"):
        np.testing.assert_array_equal(_biases(model, name), 0.0)
    for name in ("conv3", "conv4", "fc6"):
        kernel = _kernels(model, name)
        assert abs(kernel.mean()) < 1e-3
        assert kernel.std() == pytest.approx(0.01, rel=0.05)


def test_he_init():
    model = build_alexnet("cifar", init="he")
    for name in ("conv2", "fc6"):
        np.testing.assert_array_equal(_biases(model, name), 0.0)
    kernel = model.get_layer("conv3").kernel.numpy()
    fan_in = np.prod(kernel.shape[:3])
    assert kernel.std() == pytest.approx(np.sqrt(2.0 / fan_in), rel=0.05)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("vgg",), {}, r"Valid presets: \['cifar', 'paper', 'upsampled'\].*preset='vgg'"),
        (("cifar",), {"image_size": 12}, r"use image_size >= 15.*image_size=12"),
        (("paper",), {"image_size": 64}, r"use image_size >= 67.*image_size=64"),
        (("cifar",), {"num_classes": 1}, r"num_classes=1"),
        (("cifar",), {"dropout": 1.0}, r"dropout=1.0"),
        (("cifar",), {"dropout": -0.1}, r"dropout=-0.1"),
        (("cifar",), {"pool": "avg"}, r"pool='avg'"),
        (("cifar",), {"activation": "gelu"}, r"activation='gelu'"),
        (("cifar",), {"init": "xavier"}, r"init='xavier'"),
        (("cifar",), {"towers": "yes"}, r"towers='yes'"),
        (("cifar",), {"widht": 3}, r"Unknown AlexNet override.*widht"),
        (("cifar",), {"conv1_filters": 63}, r"conv1_filters"),
    ],
)
def test_bad_arguments_raise_one_clear_error(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_alexnet(*args, **kwargs)


def test_smallest_image_size_builds():
    model = build_alexnet("paper", image_size=67, num_classes=10)
    assert tuple(model.get_layer("pool5").output.shape[1:3]) == (1, 1)


def test_save_and_load_with_safe_mode(tmp_path):
    model = build_alexnet("cifar")
    x = np.random.default_rng(3).standard_normal((3, 32, 32, 3)).astype(np.float32)
    path = tmp_path / "alexnet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.get_layer("conv2"), TowerConv2D)
    assert isinstance(loaded.get_layer("lrn1"), LocalResponseNormalization)
    np.testing.assert_array_equal(model(x, training=False).numpy(),
                                  loaded(x, training=False).numpy())
    assert loaded.count_params() == model.count_params()


def test_mixed_precision_model_keeps_lrn_and_softmax_in_float32():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = build_alexnet("cifar")
    assert model.get_layer("conv1").compute_dtype == "bfloat16"
    assert model.get_layer("lrn1").compute_dtype == "float32"
    assert model.get_layer("predictions").compute_dtype == "float32"
    out = model(np.zeros((2, 32, 32, 3), np.float32), training=False)
    assert out.dtype == "float32"


@pytest.mark.slow
def test_cifar_preset_learns_a_separable_task():
    """A few steps on a colour-coded toy task lift accuracy far above chance (10%)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 640)
    # Each class is a distinct flat colour plus noise.
    palette = rng.uniform(-1, 1, (10, 3)).astype(np.float32)
    x = palette[labels][:, None, None, :] + 0.3 * rng.standard_normal((640, 32, 32, 3))
    x = x.astype(np.float32)
    model = build_alexnet("cifar")
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, labels, batch_size=64, epochs=3, verbose=0)
    _, accuracy = model.evaluate(x, labels, batch_size=128, verbose=0)
    assert accuracy > 0.6


def test_compare_with_paper_matches_for_the_paper_preset(paper):
    rows = compare_with_paper(paper)
    assert len(rows) == 11
    for row in rows:
        assert row["output_shape"] == row["paper_output_shape"], row
        assert row["params"] == row["paper_params"], row
    assert sum(r["paper_params"] for r in rows) == PAPER_PARAMS


def test_compare_with_paper_shows_where_cifar_differs():
    rows = {r["layer"]: r for r in compare_with_paper(build_alexnet("cifar"))}
    assert rows["conv1"]["output_shape"] == (32, 32, 64)
    assert rows["predictions"]["params"] == 512 * 10 + 10


def test_lrn_position_after_pool_is_caffenets_order_with_the_same_weights():
    before = build_alexnet("cifar", lrn_position="before-pool")
    after = build_alexnet("cifar")  # the cifar preset's own order
    def order(m):
        return [layer.name for layer in m.layers
                if layer.name[:4] in ("conv", "lrn1", "lrn2", "pool")]
    assert order(before)[:6] == ["conv1", "lrn1", "pool1", "conv2", "lrn2", "pool2"]
    assert order(after)[:6] == ["conv1", "pool1", "lrn1", "conv2", "pool2", "lrn2"]
    assert after.count_params() == before.count_params()
    assert after.get_layer("lrn1").output.shape[1:] == after.get_layer("pool1").output.shape[1:]
    with pytest.raises(ValueError, match="lrn_position='middle'"):
        build_alexnet("cifar", lrn_position="middle")


def test_whitening_kernel_decorrelates_patches_to_unit_variance():


    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 10, 10, 3)).astype(np.float32)
    x[..., 1] = 0.9 * x[..., 0] + 0.1 * x[..., 1]  # correlated channels
    kernel = whitening_kernel(x, 3, 11, epsilon=1e-6)
    assert kernel.shape == (3, 3, 3, 11) and kernel.dtype == np.float32
    patches = sliding_window_view(x, (3, 3), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
    patches = patches.reshape(-1, 27).astype(np.float64)
    out = (patches - patches.mean(0)) @ kernel.reshape(27, 11).astype(np.float64)
    components = out[:, 0::2]  # the six leading components (the last one unpaired)
    np.testing.assert_allclose(np.cov(components.T, bias=True), np.eye(6), atol=1e-3)
    np.testing.assert_allclose(kernel[..., 1::2], -kernel[..., 0:10:2])
    # The same as a convolution computes it: a centred patch at the kernel's position.
    conv = tf.nn.conv2d(x[:1], kernel, 1, "VALID").numpy()[0, 2, 5]
    np.testing.assert_allclose(conv, x[0, 2:5, 5:8].reshape(-1) @ kernel.reshape(27, 11),
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="at most 54 filters"):
        whitening_kernel(x, 3, 60)
    with pytest.raises(ValueError, match="at least 11x11"):
        whitening_kernel(x, 11, 4)


NO_TENSORFLOW = r'''
import sys
sys.modules["tensorflow"] = None  # any import of TensorFlow now fails
import jax
import jax.numpy as jnp
import numpy as np
from alexnet_lib.layers import LocalResponseNormalization
from alexnet_lib.model import build_alexnet
import keras
assert keras.backend.backend() == "jax", keras.backend.backend()
arrays = np.load(sys.argv[1])
model = build_alexnet("cifar", dropout=0.0)
model.set_weights([arrays[f"w{i}"] for i in range(len(arrays.files) - 3)])
outputs = keras.ops.convert_to_numpy(model(arrays["x"], training=False))
# The LRN's hand-written gradient against JAX's autodiff of the paper's formula.
lrn, a, g = LocalResponseNormalization(groups=2), jnp.asarray(arrays["a"]), arrays["g"]
def formula(a):
    groups = []
    for part in jnp.split(a, 2, axis=-1):
        squares = jnp.stack([(part[..., max(0, i - 2):i + 3] ** 2).sum(-1)
                             for i in range(part.shape[-1])], axis=-1)
        groups.append(part / (2.0 + 1e-4 * squares) ** 0.75)
    return jnp.concatenate(groups, axis=-1)
ours = jax.grad(lambda a: jnp.sum(lrn(a) * g))(a)
autodiff = jax.grad(lambda a: jnp.sum(formula(a) * g))(a)
np.savez(sys.argv[2], outputs=outputs, ours=np.asarray(ours), autodiff=np.asarray(autodiff))
'''


@pytest.mark.slow
def test_model_runs_on_keras_jax_backend_without_tensorflow(tmp_path):
    """The model and its layers are Keras operations only: on the JAX backend, with
    TensorFlow unimportable, the `cifar` network (towers, LRN) gives TensorFlow's output, and
    the LRN's hand-written gradient is autodiff's of the paper's formula."""
    import os
    import subprocess
    import sys

    keras.utils.set_random_seed(3)
    model = build_alexnet("cifar", dropout=0.0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 32, 32, 3)).astype("float32")
    a = rng.normal(scale=30.0, size=(2, 5, 5, 12)).astype("float32")  # LRN far from identity
    g = rng.normal(size=a.shape).astype("float32")
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    np.savez(tmp_path / "in.npz", x=x, a=a, g=g, **arrays)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", NO_TENSORFLOW,
                           str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    expected = model(x, training=False).numpy()
    np.testing.assert_allclose(out["outputs"], expected, rtol=1e-4, atol=1e-6)
    assert expected.std() > 0.01  # the outputs differ between images and classes
    np.testing.assert_allclose(out["ours"], out["autodiff"], rtol=1e-4, atol=1e-6)
    assert np.abs(out["ours"] - g).max() > 0.01  # the normalization bends the gradient
