"""The layers AlexNet needs that Keras does not ship in a usable form, and the one that
carries a saved model's preprocessing.

* :class:`LocalResponseNormalization` -- the paper's section 3.3 brightness
  normalization, always computed in float32 (TensorFlow has no bfloat16 LRN kernel
  and the op fails under XLA in float16/bfloat16).
* :class:`TowerConv2D` -- the paper's two-GPU "towers": the input channels are split
  into ``towers`` equal groups and each group is convolved by its own kernels, so
  every output map sees only the maps of its own tower.  It is a split, one plain
  convolution per tower and a concatenation, which trains faster on CPU than both the
  ungrouped convolution (fewer FLOPs) and Keras ``Conv2D(groups=2)`` (which always
  goes through XLA on the TensorFlow backend and is 2-3x slower there).
* :class:`TowerMaxPooling2D` -- max-pooling of each tower's channels, which can run on
  that tower's device.
* :class:`InferenceInfo` -- an identity layer holding the class names, sizes,
  normalization and views that inference needs (see
  :class:`alexnet_lib.data.transforms.Preprocessing`).

Every layer is a registered Keras serializable, so a model using them saves to
``.keras`` and loads back with ``safe_mode=True``. They are written in Keras operations
(``keras.ops``), TensorFlow being imported only to place a tower on a named device, so the
models they build also run on Keras's JAX backend where TensorFlow is not installed
(``benchmarks/backend_check.py``).
"""

from __future__ import annotations

from . import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import contextlib

import keras
import numpy as np
from keras import ops

from .checks import check_int

PACKAGE = "alexnet_lib"


def _fresh_initializer(initializer, offset: int):
    """A new instance of ``initializer`` with its own random stream.

    A Keras 3 random initializer draws the same values on every call of one instance,
    so each tower needs its own (a fixed seed is offset per tower for the same reason).
    """
    config = keras.initializers.serialize(initializer)
    seed = config.get("config", {}).get("seed") if isinstance(config, dict) else None
    if isinstance(seed, int):
        config["config"]["seed"] = seed + offset
    return keras.initializers.get(config)


def _check_devices(devices, count: int, name: str = "tower_devices"):
    if devices is None:
        return None
    if (not isinstance(devices, (list, tuple)) or len(devices) != count
            or not all(isinstance(d, str) and d for d in devices)):
        raise ValueError(f"`{name}` needs {count} device names, one per tower (e.g. "
                         f"['/GPU:0', '/GPU:1']). Received: {name}={devices!r}")
    return list(devices)


def _on_device(device):
    """``tf.device(device)``, or no placement at all where ``device`` is ``None``.

    TensorFlow is imported only for a placed tower, so the layers also run on Keras's
    JAX backend (tests/test_model.py runs them there) wherever no device is named.
    """
    if device is None:
        return contextlib.nullcontext()
    import tensorflow as tf

    return tf.device(device)


def _window_sum(x, window):
    """Sum of ``x`` over each channel's window, group by group (groups are contiguous
    blocks of ``window.shape[0]`` channels): ``x @ window`` on each block."""
    size = window.shape[0]
    return ops.reshape(ops.matmul(ops.reshape(x, (-1, size)), window), ops.shape(x))


def _lrn(a, window, k, alpha, beta):
    """``a / (k + alpha * window_sum(a^2)) ** beta`` with a hand-written gradient.

    With d = k + alpha * window_sum(a^2) and b = a * d^-beta, the window being symmetric:
    d(loss)/da = g * d^-beta - 2 * alpha * beta * a * window_sum(g * b / d).
    Autodiff of the forward pass would keep more intermediates and run more kernels;
    the constants are folded into the window matrices so no pass is spent on them.
    """
    forward_window = window * alpha
    backward_window = window * (2.0 * alpha * beta)

    @ops.custom_gradient
    def lrn(a):
        d = k + _window_sum(ops.square(a), forward_window)
        if beta == 0.75:  # the paper's exponent: two cheap roots instead of pow
            s = ops.rsqrt(d)
            q = s * ops.sqrt(s)
        else:
            q = ops.power(d, -beta)
        b = a * q
        b_over_d = b / d

        def grad(*args, upstream=None):  # the signature every Keras backend calls
            g = args[0] if upstream is None else upstream
            return g * q - a * _window_sum(g * b_over_d, backward_window)

        return b, grad

    return lrn(a)


@keras.saving.register_keras_serializable(package=PACKAGE)
class LocalResponseNormalization(keras.layers.Layer):
    """Local response normalization across channels (Krizhevsky et al. 2012, sec. 3.3).

    ``b[..., i] = a[..., i] / (k + alpha * sum_j a[..., j]^2) ** beta``, the sum running
    over the ``n`` channels centred on ``i`` (clipped at the first and last channel).
    Note that ``alpha`` multiplies the plain sum, as in the paper and in TensorFlow; Caffe
    divides it by ``n`` first, so Caffe's ``alpha`` is ``n`` times this one.

    It computes the same function as ``tf.nn.local_response_normalization(x,
    depth_radius=n // 2, bias=k, alpha=alpha, beta=beta)`` (per group), about twice as
    fast for training on CPU: the window sum is a matrix product over the channel axis
    and the gradient is written out.

    The layer's dtype defaults to ``"float32"``: inside a mixed-precision model its
    input is cast up to float32 and its output stays float32 (the next layer casts it
    back down).

    Args:
        k: the additive constant (paper: 2).
        n: the number of adjacent channels summed over, odd (paper: 5).
        alpha: the scale of the sum of squares (paper: 1e-4).
        beta: the exponent (paper: 0.75).
        groups: normalize each of ``groups`` equal channel groups separately, so the
            window never crosses a tower boundary (2 in a two-tower model, as on the
            paper's two GPUs).
        devices: optional list of ``groups`` device names; group ``g`` is then computed
            under ``tf.device(devices[g])`` (model-parallel towers).
    """

    def __init__(self, k=2.0, n=5, alpha=1e-4, beta=0.75, groups=1, devices=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        n = check_int("n", n, 1)
        if n % 2 == 0:
            raise ValueError(f"`n` must be odd so the window is centred on a channel. "
                             f"Received: n={n}")
        for name, value in (("k", k), ("alpha", alpha), ("beta", beta)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"`{name}` must be a number >= 0. Received: {name}={value!r}")
        self.k = float(k)
        self.n = int(n)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.groups = check_int("groups", groups, 1)
        self.devices = _check_devices(devices, self.groups, "devices")

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.groups:
            raise ValueError(
                f"{self.name}: input channels must be known and divisible by "
                f"groups={self.groups}. Received: input_shape={tuple(input_shape)}"
            )
        # window[j, i] = 1 where channel j is in channel i's window (|i - j| <= n//2)
        # within one group. The window sum is then one matrix product per group, which
        # oneDNN/cuBLAS run far faster than TensorFlow's LRN kernels (about 2x for
        # forward + backward on CPU).
        i = np.arange(channels // self.groups)
        self._window = (np.abs(i[:, None] - i[None, :]) <= self.n // 2).astype(np.float32)
        super().build(input_shape)

    def call(self, inputs):
        window = ops.convert_to_tensor(self._window)
        if self.devices is None:
            return _lrn(inputs, window, self.k, self.alpha, self.beta)
        outputs = []
        for device, part in zip(self.devices, ops.split(inputs, self.groups, axis=-1)):
            with _on_device(device):
                outputs.append(_lrn(part, window, self.k, self.alpha, self.beta))
        return ops.concatenate(outputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(k=self.k, n=self.n, alpha=self.alpha, beta=self.beta, groups=self.groups,
                      devices=self.devices)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class TowerConv2D(keras.layers.Layer):
    """A convolution split into independent towers (the paper's two-GPU layers).

    The input's channels are split into ``towers`` equal groups; tower ``t`` convolves
    group ``t`` with ``filters // towers`` kernels of its own; the outputs are
    concatenated in tower order.  It computes exactly what ``Conv2D(groups=towers)``
    computes, with ``1/towers`` of the ungrouped layer's weights and FLOPs.

    Each tower is a plain ``keras.layers.Conv2D`` sub-layer named
    ``f"{name}_tower{t + 1}"`` (so ``conv2_tower1`` and ``conv2_tower2``), holding its
    own kernel of shape ``(kh, kw, in_channels // towers, filters // towers)``.

    Args:
        filters: output channels over all towers; divisible by ``towers``.
        kernel_size: int or pair.
        strides: int or pair.
        padding: ``"valid"`` or ``"same"``.
        towers: number of towers (the paper: 2).
        activation: applied per tower (elementwise, so the same as after the concat).
        kernel_initializer, bias_initializer, kernel_regularizer: as for ``Conv2D``.
        tower_devices: optional list of ``towers`` device names (e.g.
            ``["/GPU:0", "/GPU:1"]``); each tower's ops run under ``tf.device`` of its
            own entry. ``None`` leaves placement to TensorFlow.
        split_input: ``True`` (default): tower ``t`` sees only its own input channels.
            ``False``: every tower sees all input channels and holds ``filters // towers``
            of the kernels (the paper's conv1, split over its two GPUs): the same function
            as one ``Conv2D``, in per-tower pieces that can be placed.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        towers=2,
        activation=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        tower_devices=None,
        split_input=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.split_input = bool(split_input)
        self.towers = check_int("towers", towers, 1)
        self.filters = check_int("filters", filters, 1)
        if filters % towers:
            raise ValueError(
                f"`filters` must be divisible by towers={towers}. Received: filters={filters}"
            )
        self.tower_devices = _check_devices(tower_devices, towers)
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.convs = [
            keras.layers.Conv2D(
                filters // towers,
                kernel_size,
                strides=strides,
                padding=padding,
                activation=activation,
                kernel_initializer=_fresh_initializer(self.kernel_initializer, t),
                bias_initializer=_fresh_initializer(self.bias_initializer, t),
                kernel_regularizer=self.kernel_regularizer,
                dtype=self.dtype_policy,
                name=f"{self.name}_tower{t + 1}",
            )
            for t in range(towers)
        ]

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or (self.split_input and channels % self.towers):
            raise ValueError(
                f"{self.name}: input channels must be known and divisible by "
                f"towers={self.towers}. Received: input_shape={tuple(input_shape)}"
            )
        tower_shape = tuple(input_shape[:-1]) + (
            channels // self.towers if self.split_input else channels,)
        for t, conv in enumerate(self.convs):
            with _on_device(self._device(t)):  # each tower's weights on its own device too
                conv.build(tower_shape)
        super().build(input_shape)

    def _device(self, tower: int):
        return None if self.tower_devices is None else self.tower_devices[tower]

    def call(self, inputs):
        parts = (ops.split(inputs, self.towers, axis=-1) if self.split_input
                 else [inputs] * self.towers)
        outputs = []
        for t, (conv, part) in enumerate(zip(self.convs, parts)):
            with _on_device(self._device(t)):
                outputs.append(conv(part))
        return ops.concatenate(outputs, axis=-1)

    def compute_output_shape(self, input_shape):
        tower_shape = tuple(input_shape[:-1]) + (
            input_shape[-1] // self.towers if self.split_input else input_shape[-1],)
        shape = self.convs[0].compute_output_shape(tower_shape)
        return tuple(shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            towers=self.towers,
            activation=keras.activations.serialize(self.activation),
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
            tower_devices=self.tower_devices,
            split_input=self.split_input,
        )
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class TowerMaxPooling2D(keras.layers.Layer):
    """Max pooling of each tower's channels on its own device (``tower_devices``); the
    same function as one ``MaxPooling2D``, which is what it is without devices.

    Args:
        pool_size, strides: as for ``MaxPooling2D`` (``"valid"`` padding).
        towers: the number of equal channel groups.
        tower_devices: ``towers`` device names, or ``None``.
    """

    def __init__(self, pool_size=3, strides=2, towers=2, tower_devices=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pool_size
        self.strides = strides
        self.towers = check_int("towers", towers, 1)
        self.tower_devices = _check_devices(tower_devices, self.towers)
        self.pool = keras.layers.MaxPooling2D(pool_size, strides=strides, dtype=self.dtype_policy,
                                              name=f"{self.name}_max")

    def call(self, inputs):
        if self.tower_devices is None:
            return self.pool(inputs)
        outputs = []
        for device, part in zip(self.tower_devices, ops.split(inputs, self.towers, axis=-1)):
            with _on_device(device):
                outputs.append(self.pool(part))
        return ops.concatenate(outputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return self.pool.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size, strides=self.strides, towers=self.towers,
                      tower_devices=self.tower_devices)
        return config


@keras.saving.register_keras_serializable(package="alexnet_lib")
class InferenceInfo(keras.layers.Layer):
    """An identity layer that carries what inference needs inside a saved model.

    ``info`` holds the class names, the stored and input image sizes and the training
    split's normalization statistics (plain JSON values), so a ``.keras`` file alone is
    enough to preprocess new images the way evaluation did. Loads with ``safe_mode=True``.
    """

    def __init__(self, info: dict, **kwargs):
        super().__init__(**kwargs)
        self.info = info

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "info": self.info}
