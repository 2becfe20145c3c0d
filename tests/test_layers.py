"""LocalResponseNormalization and TowerConv2D against independent references."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_lib import LocalResponseNormalization, TowerConv2D


def lrn_reference(a, k=2.0, n=5, alpha=1e-4, beta=0.75):
    """The paper's formula (section 3.3), written out channel by channel.

    b[i] = a[i] / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a[j]^2) ** beta
    """
    a = np.asarray(a, dtype=np.float64)
    channels = a.shape[-1]
    b = np.empty_like(a)
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        total = np.sum(a[..., lo : hi + 1] ** 2, axis=-1)
        b[..., i] = a[..., i] / (k + alpha * total) ** beta
    return b


@pytest.mark.parametrize("channels", [1, 3, 5, 8, 96])
def test_lrn_matches_paper_formula(channels):
    rng = np.random.default_rng(channels)
    # Large activations so the alpha * sum term matters (ReLU outputs reach 10-100).
    a = rng.uniform(-60, 60, size=(2, 4, 3, channels)).astype(np.float32)
    got = LocalResponseNormalization()(a).numpy()
    want = lrn_reference(a)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    assert not np.allclose(want, a / 2.0**0.75), "inputs too small to exercise the sum term"


def test_lrn_other_parameters():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 5, size=(3, 2, 2, 11)).astype(np.float32)
    layer = LocalResponseNormalization(k=1.0, n=3, alpha=0.01, beta=0.5)
    np.testing.assert_allclose(
        layer(a).numpy(), lrn_reference(a, k=1.0, n=3, alpha=0.01, beta=0.5), rtol=2e-5
    )


def test_lrn_groups_keep_windows_inside_each_tower():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 80, size=(2, 3, 3, 12)).astype(np.float32)
    got = LocalResponseNormalization(groups=2)(a).numpy()
    want = np.concatenate([lrn_reference(a[..., :6]), lrn_reference(a[..., 6:])], axis=-1)
    np.testing.assert_allclose(got, want, rtol=2e-5)
    # The boundary channels differ from the ungrouped layer's.
    ungrouped = lrn_reference(a)
    assert not np.allclose(got[..., 5], ungrouped[..., 5])


def test_lrn_stays_float32_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_bfloat16")
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = LocalResponseNormalization(name="lrn")(x)
    model = keras.Model(inputs, x)
    assert model.get_layer("conv").compute_dtype == "bfloat16"
    assert model.get_layer("lrn").compute_dtype == "float32"
    out = model(np.ones((1, 8, 8, 3), np.float32))
    assert out.dtype == tf.float32


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=4), "n=4"),
        (dict(n=0), "n=0"),
        (dict(alpha=-1.0), "alpha=-1.0"),
        (dict(groups=0), "groups=0"),
    ],
)
def test_lrn_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LocalResponseNormalization(**kwargs)


@pytest.mark.parametrize("strides, padding", [(1, "same"), (2, "valid"), (1, "valid")])
def test_tower_conv_equals_two_independent_convs(strides, padding):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 9, 9, 6)).astype(np.float32)
    layer = TowerConv2D(8, 3, strides=strides, padding=padding, towers=2,
                        bias_initializer="random_normal", name="conv2")
    got = layer(x).numpy()

    halves = []
    for t, part in enumerate(np.split(x, 2, axis=-1)):
        kernel, bias = (w.numpy() for w in layer.convs[t].weights)
        assert kernel.shape == (3, 3, 3, 4)
        y = tf.nn.conv2d(part, kernel, strides=strides, padding=padding.upper()) + bias
        halves.append(y.numpy())
    np.testing.assert_allclose(got, np.concatenate(halves, axis=-1), rtol=1e-5, atol=1e-5)

    # The same function as a grouped convolution holding both towers' kernels.
    grouped = keras.layers.Conv2D(8, 3, strides=strides, padding=padding, groups=2)
    grouped.build(x.shape)
    grouped.set_weights([
        np.concatenate([c.kernel.numpy() for c in layer.convs], axis=-1),
        np.concatenate([c.bias.numpy() for c in layer.convs]),
    ])
    np.testing.assert_allclose(got, grouped(x).numpy(), rtol=1e-4, atol=1e-4)


def test_tower_output_sees_only_its_own_tower():
    layer = TowerConv2D(4, 1, towers=2)
    x = np.zeros((1, 2, 2, 4), np.float32)
    base = layer(x).numpy()
    x[..., 3] = 5.0  # change the second tower's input only
    changed = layer(x).numpy()
    np.testing.assert_array_equal(changed[..., :2], base[..., :2])
    assert not np.allclose(changed[..., 2:], base[..., 2:])


def test_tower_kernels_are_initialized_independently():
    layer = TowerConv2D(8, 3, towers=2, kernel_initializer=keras.initializers.RandomNormal(0, 1))
    layer.build((None, 5, 5, 4))
    k1, k2 = (c.kernel.numpy() for c in layer.convs)
    assert not np.allclose(k1, k2)


def test_tower_conv_config_round_trip():
    layer = TowerConv2D(6, (3, 3), strides=2, padding="same", towers=3, activation="relu",
                        name="conv4")
    clone = TowerConv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert [c.name for c in clone.convs] == ["conv4_tower1", "conv4_tower2", "conv4_tower3"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(filters=5, kernel_size=3, towers=2), "filters=5"),
        (dict(filters=4, kernel_size=3, towers=0), "towers=0"),
        (dict(filters=4, kernel_size=3, towers=2, tower_devices=["/CPU:0"]), "tower_devices"),
    ],
)
def test_tower_conv_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TowerConv2D(**kwargs)


def test_tower_conv_rejects_indivisible_input_channels():
    with pytest.raises(ValueError, match="divisible"):
        TowerConv2D(4, 3, towers=2)(np.zeros((1, 5, 5, 3), np.float32))


@pytest.mark.parametrize("groups, beta", [(1, 0.75), (2, 0.75), (1, 0.6)])
def test_lrn_gradient_matches_tensorflows_op(groups, beta):
    """The hand-written gradient against autodiff of tf.nn.local_response_normalization."""
    rng = np.random.default_rng(groups)
    a = tf.constant(rng.uniform(-50, 50, size=(2, 5, 5, 16)).astype(np.float32))
    weights = tf.constant(rng.standard_normal((2, 5, 5, 16)).astype(np.float32))
    layer = LocalResponseNormalization(beta=beta, groups=groups)

    def reference(x):
        parts = tf.split(x, groups, axis=-1)
        return tf.concat([tf.nn.local_response_normalization(
            p, depth_radius=2, bias=2.0, alpha=1e-4, beta=beta) for p in parts], axis=-1)

    grads = []
    for fn in (layer, reference):
        with tf.GradientTape() as tape:
            tape.watch(a)
            loss = tf.reduce_sum(fn(a) * weights)
        grads.append(tape.gradient(loss, a).numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_placeable_pieces_compute_the_same_function(tmp_path):
    """conv1 split over towers (every tower sees all inputs), per-tower pooling and per-group
    LRN on named devices equal the single layers; a placed model saves and loads."""
    from alexnet_lib import build_alexnet
    from alexnet_lib.layers import TowerMaxPooling2D

    x = np.random.default_rng(0).normal(size=(2, 9, 9, 4)).astype(np.float32)
    whole = keras.layers.Conv2D(6, 3, padding="same")
    split = TowerConv2D(6, 3, padding="same", towers=2, split_input=False,
                        tower_devices=["/CPU:0", "/CPU:0"])
    whole.build(x.shape), split.build(x.shape)
    kernel, bias = whole.get_weights()
    split.set_weights([kernel[..., :3], bias[:3], kernel[..., 3:], bias[3:]])
    assert split.convs[0].kernel.shape == (3, 3, 4, 3)
    np.testing.assert_allclose(split(x), whole(x), rtol=1e-5, atol=1e-6)
    pool = TowerMaxPooling2D(3, 2, towers=2, tower_devices=["/CPU:0", "/CPU:0"])
    np.testing.assert_array_equal(pool(x), keras.layers.MaxPooling2D(3, 2)(x))
    lrn = LocalResponseNormalization(groups=2)
    placed = LocalResponseNormalization(groups=2, devices=["/CPU:0", "/CPU:0"])
    np.testing.assert_allclose(placed(x * 30), lrn(x * 30), rtol=1e-6)
    with pytest.raises(ValueError, match=r"`devices` needs 2 device names.*devices=\['/CPU:0'\]"):
        LocalResponseNormalization(groups=2, devices=["/CPU:0"])
    model = build_alexnet("cifar", image_size=16, conv1_filters=8, conv_filters=(8, 8, 8, 8),
                          fc_units=8, tower_devices=["/CPU:0", "/CPU:0"])
    model.save(tmp_path / "placed.keras")
    loaded = keras.saving.load_model(tmp_path / "placed.keras", safe_mode=True)
    inputs = np.random.default_rng(1).normal(size=(2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(inputs), model(inputs), rtol=1e-6)
    assert loaded.get_layer("pool1").tower_devices == ["/CPU:0", "/CPU:0"]
