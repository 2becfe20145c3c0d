"""AlexNet and its named presets.

Reference:
    Alex Krizhevsky, Ilya Sutskever, Geoffrey E. Hinton. "ImageNet Classification with
    Deep Convolutional Neural Networks". NIPS 2012.

``build_alexnet(preset, **overrides)`` builds an uncompiled ``keras.Model`` from a named
:class:`Preset`; every field of the preset can be overridden by keyword, so the paper's
ablations (no LRN, non-overlapping pooling, tanh, one tower) are parameters, not code.
"""

from __future__ import annotations

from . import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import dataclasses
from typing import Any

import keras
import numpy as np

from .checks import check_bool, check_choice, check_device_pair, check_float, check_int
from .layers import LocalResponseNormalization, TowerConv2D, TowerMaxPooling2D

POOLS = {"overlapping": (3, 2), "non-overlapping": (2, 2)}
LRN_POSITIONS = ("before-pool", "after-pool")
ACTIVATIONS = ("relu", "tanh")
INITS = ("paper", "he")
PADDINGS = ("valid", "same")
# Layers whose bias the paper initializes to 1 ("accelerates the early stages of
# learning by providing the ReLUs with positive inputs", section 5).
PAPER_UNIT_BIAS = ("conv2", "conv4", "conv5", "fc6", "fc7")
TOWER_LAYERS = ("conv2", "conv4", "conv5")
# The largest input side a preset accepts: the paper's network at 1024 already has a
# 1.1-billion-weight fc6 (pool5 is 31x31x256); larger inputs only run out of memory.
MAX_IMAGE_SIZE = 1024


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named AlexNet configuration; every field is an override of ``build_alexnet``.

    Attributes:
        name: the preset's name.
        description: purpose, input, and the expected training speed.
        image_size: side of the square RGB input, in pixels.
        num_classes: outputs of the ``predictions`` softmax.
        conv1_filters, conv1_kernel, conv1_stride, conv1_padding: the first layer.
        conv2_kernel: kernel side of conv2 (conv3-conv5 are 3x3).
        conv_filters: output channels of conv2, conv3, conv4, conv5.
        fc_units: width of fc6 and fc7.
        towers: split conv2, conv4, conv5 (and the LRN windows) into two towers that
            see only their own half of the channels, as on the paper's two GPUs.
        lrn: local response normalization after conv1 and conv2.
        lrn_position: ``"before-pool"`` (the paper: conv, ReLU, LRN, pool) or
            ``"after-pool"`` (conv, ReLU, pool, LRN, as in Caffe's reference CaffeNet): the
            same normalization over 4x fewer positions.
        pool: ``"overlapping"`` (3x3, stride 2, the paper) or ``"non-overlapping"``
            (2x2, stride 2, the paper's ablation).
        activation: ``"relu"`` (the paper) or ``"tanh"`` (its Figure 1 comparison).
        dropout: dropout rate after fc6 and fc7 (the paper: 0.5).
        init: ``"paper"`` (weights N(0, 0.01), bias 1 in conv2/4/5 and fc6/fc7, else 0)
            or ``"he"`` (He-normal weights, zero biases, Glorot-uniform classifier).
    """

    name: str
    description: str
    image_size: int
    num_classes: int
    conv1_filters: int
    conv1_kernel: int
    conv1_stride: int
    conv1_padding: str
    conv2_kernel: int
    conv_filters: tuple[int, int, int, int]
    fc_units: int
    towers: bool = True
    lrn: bool = True
    lrn_position: str = "before-pool"
    pool: str = "overlapping"
    activation: str = "relu"
    dropout: float = 0.5
    init: str = "paper"

    def replace(self, **overrides) -> "Preset":
        """A copy with ``overrides`` applied and validated."""
        unknown = sorted(set(overrides) - OVERRIDABLE)
        if unknown:
            raise ValueError(
                f"Unknown AlexNet override(s) {unknown}. Valid overrides: {sorted(OVERRIDABLE)}."
            )
        return dataclasses.replace(self, **overrides).validate()

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists, not tuples), for YAML/JSON run configs."""
        d = dataclasses.asdict(self)
        d["conv_filters"] = list(self.conv_filters)
        return d

    def _raw_sizes(self, image_size: int) -> dict[str, int]:
        pool_size, pool_stride = POOLS[self.pool]
        if self.conv1_padding == "same":
            conv1 = -(-image_size // self.conv1_stride)
        else:
            conv1 = (image_size - self.conv1_kernel) // self.conv1_stride + 1
        sizes = {"image": image_size, "conv1": conv1}
        sizes["pool1"] = (sizes["conv1"] - pool_size) // pool_stride + 1
        sizes["conv2"] = sizes["pool1"]
        sizes["pool2"] = (sizes["conv2"] - pool_size) // pool_stride + 1
        sizes["conv3"] = sizes["conv4"] = sizes["conv5"] = sizes["pool2"]
        sizes["pool5"] = (sizes["conv5"] - pool_size) // pool_stride + 1
        return sizes

    def min_image_size(self) -> int:
        """The smallest input side for which every layer's output is at least 1x1."""
        size = 1
        while min(self._raw_sizes(size).values()) < 1:
            size += 1
        return size

    def feature_sizes(self) -> dict[str, int]:
        """Spatial side of each layer's output, from the input to ``pool5``.

        Raises:
            ValueError: if ``image_size`` is too small for the conv stack.
        """
        sizes = self._raw_sizes(self.image_size)
        if min(sizes.values()) < 1:
            pool_size, pool_stride = POOLS[self.pool]
            raise ValueError(
                f"image_size={self.image_size} is too small for the {self.name!r} conv stack "
                f"(conv1 {self.conv1_kernel}x{self.conv1_kernel}/{self.conv1_stride} "
                f"{self.conv1_padding}, three {pool_size}x{pool_size}/{pool_stride} pools): "
                f"use image_size >= {self.min_image_size()}. Received: image_size={self.image_size}"
            )
        return sizes

    def validate(self) -> "Preset":
        """Check every field; return the preset with its values in their proper types
        (``2.0`` -> ``2``, ``"false"`` -> ``False``), or raise one ValueError naming the bad
        value."""
        values = {}
        for field in ("image_size", "conv1_filters", "conv1_kernel", "conv1_stride",
                      "conv2_kernel", "fc_units"):
            values[field] = check_int(field, getattr(self, field), 1)
        values["image_size"] = check_int("image_size", self.image_size, 1, MAX_IMAGE_SIZE)
        values["num_classes"] = check_int("num_classes", self.num_classes, 2)
        filters = self.conv_filters
        if isinstance(filters, (str, bytes)) or not hasattr(filters, "__len__") or (
                len(filters) != 4):
            raise ValueError(
                "`conv_filters` lists the channels of conv2..conv5 (4 integers). "
                f"Received: conv_filters={self.conv_filters!r}"
            )
        values["conv_filters"] = tuple(check_int("conv_filters", f, 1) for f in filters)
        values["towers"] = check_bool("towers", self.towers)
        values["lrn"] = check_bool("lrn", self.lrn)
        if values["towers"]:
            odd = {
                name: value
                for name, value in [("conv1_filters", values["conv1_filters"])]
                + list(zip(("conv2", "conv3", "conv4", "conv5"), values["conv_filters"]))
                if value % 2
            }
            if odd:
                raise ValueError(
                    f"towers=True splits channels in two, so these must be even. Received: {odd}"
                )
        values["lrn_position"] = check_choice("lrn_position", self.lrn_position, LRN_POSITIONS)
        values["pool"] = check_choice("pool", self.pool, sorted(POOLS))
        values["activation"] = check_choice("activation", self.activation, ACTIVATIONS)
        values["init"] = check_choice("init", self.init, INITS)
        values["conv1_padding"] = check_choice("conv1_padding", self.conv1_padding, PADDINGS)
        values["dropout"] = check_float("dropout", self.dropout, 0.0, 1.0, max_open=True)
        preset = dataclasses.replace(self, **values)
        preset.feature_sizes()
        return preset


OVERRIDABLE = frozenset(f.name for f in dataclasses.fields(Preset)) - {"name", "description"}

def _preset(name: str, description: str, image_size: int, num_classes: int,
            conv1: tuple[int, int, int, str], conv2_kernel: int, conv_filters: tuple[int, ...],
            fc_units: int, **rest: Any) -> Preset:
    """A preset from its shape: conv1 as ``(filters, kernel, stride, padding)``."""
    filters, kernel, stride, padding = conv1
    return Preset(name=name, description=description, image_size=image_size,
                  num_classes=num_classes, conv1_filters=filters, conv1_kernel=kernel,
                  conv1_stride=stride, conv1_padding=padding, conv2_kernel=conv2_kernel,
                  conv_filters=conv_filters, fc_units=fc_units, **rest)


_PAPER = _preset(
    "paper",
    (
        "The paper's ImageNet network: 227x227x3 input, 1000 classes, two towers in "
        "conv2/conv4/conv5, LRN after conv1 and conv2, 3x3 stride-2 pools, fc6/fc7 4096 "
        "with dropout 0.5, the paper's init. 60,965,224 parameters. A GPU job (its speed "
        "on CPUs and GPUs: docs/benchmarks.md)."
    ),
    image_size=227, num_classes=1000, conv1=(96, 11, 4, "valid"), conv2_kernel=5,
    conv_filters=(256, 384, 384, 256), fc_units=4096,
)

PRESETS: dict[str, Preset] = {
    "paper": _PAPER,
    "upsampled": dataclasses.replace(
        _PAPER,
        name="upsampled",
        description=(
            "The original experiment this project grew from: CIFAR images upsampled to the "
            "paper's 227x227 input, 10 classes, otherwise the paper's network -- with the "
            "paper's padding, so conv5 stays 13x13 (the original's VALID padding shrank it "
            "to 1x1). 56,909,194 parameters; a GPU job, as the `paper` preset is."
        ),
        num_classes=10,
    ),
    "cifar": _preset(
        "cifar",
        (
            "AlexNet's topology (5 conv + 3 FC, ReLU, LRN after conv1/conv2, overlapping "
            "pools after conv1/conv2/conv5, dropout in fc6/fc7, two towers) scaled to "
            "CIFAR-10's native 32x32 input: conv1 5x5/1, conv2-conv5 3x3, 64-128-192-192-128 "
            "maps, fc 512, each LRN after its pool (CaffeNet's order: the same normalization "
            "over a quarter of the positions). The default for CPU runs (its speed: "
            "docs/benchmarks.md)."
        ),
        image_size=32, num_classes=10, conv1=(64, 5, 1, "same"), conv2_kernel=3,
        conv_filters=(128, 192, 192, 128), fc_units=512, init="he", lrn_position="after-pool",
    ),
}
DEFAULT_CPU_PRESET = "cifar"
# Earlier names, refused with the new one (and read in the run folders they name).
RENAMED_PRESETS = {"seed": "upsampled"}


def get_preset(preset: str | Preset = "paper", **overrides) -> Preset:
    """Resolve a preset name (or instance) and apply overrides.

    Raises:
        ValueError: for an unknown preset name, an unknown override or a bad value.
    """
    if isinstance(preset, Preset):
        base = preset
    else:
        base = PRESETS[check_preset_name(preset)]
    return base.replace(**overrides)


def check_preset_name(preset: Any, name: str = "preset") -> str:
    """``preset`` if it names a preset, else one ``ValueError`` naming the choices (or, for
    an earlier name, the new one)."""
    if isinstance(preset, str) and preset in RENAMED_PRESETS:
        raise ValueError(f"The preset {preset!r} is now named {RENAMED_PRESETS[preset]!r}: "
                         f"give {name}={RENAMED_PRESETS[preset]!r}. Received: {name}={preset!r}")
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"Unknown AlexNet preset {preset!r}. Valid presets: {sorted(PRESETS)}. "
                         f"Received: {name}={preset!r}")
    return preset


def scaled_widths(preset: str | Preset, scale: float) -> dict[str, Any]:
    """A preset's widths (conv1, conv2-conv5, fc6/fc7) times ``scale``, as preset overrides:
    the same topology, narrower or wider (the ``cpu``, ``quick`` and ``long`` recipes)."""
    p = get_preset(preset)
    return dict(conv1_filters=round(p.conv1_filters * scale),
                conv_filters=tuple(round(f * scale) for f in p.conv_filters),
                fc_units=round(p.fc_units * scale))


def _initializers(init: str, layer: str) -> dict[str, Any]:
    if init == "paper":
        bias = 1.0 if layer in PAPER_UNIT_BIAS else 0.0
        return {
            "kernel_initializer": keras.initializers.RandomNormal(mean=0.0, stddev=0.01),
            "bias_initializer": keras.initializers.Constant(bias),
        }
    if layer == "predictions":
        return {"kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"}
    return {"kernel_initializer": "he_normal", "bias_initializer": "zeros"}


def build_alexnet(preset: str | Preset = "paper", *, tower_devices: list[str] | None = None,
                  **overrides) -> keras.Model:
    """Build AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012) as an uncompiled model.

    The network: conv1 -> ReLU -> LRN -> max-pool -> conv2 -> ReLU -> LRN -> max-pool ->
    conv3 -> conv4 -> conv5 -> max-pool -> fc6 -> dropout -> fc7 -> dropout ->
    predictions (softmax). With ``towers=True`` conv2, conv4 and conv5 are
    :class:`~alexnet_lib.layers.TowerConv2D` layers (each output map sees only its own
    tower's maps), and the LRN windows stay inside a tower, as on the paper's two GPUs.

    Input: float images of shape ``(image_size, image_size, 3)``, already normalized
    (the paper subtracts the mean image; the data pipeline does this). Output: class
    probabilities (float32 even under a mixed-precision policy).

    Layer names are stable: ``conv1``..``conv5`` (towers ``conv2_tower1``/``_tower2``
    inside), ``lrn1``, ``lrn2``, ``pool1``, ``pool2``, ``pool5``, ``flatten``, ``fc6``,
    ``dropout6``, ``fc7``, ``dropout7``, ``predictions``.

    Args:
        preset: a name in ``PRESETS`` (``"paper"``, ``"upsampled"``, ``"cifar"``) or a
            :class:`Preset`.
        **overrides: any :class:`Preset` field, e.g. ``num_classes=10``,
            ``image_size=64``, ``towers=False``, ``lrn=False``,
            ``pool="non-overlapping"``, ``activation="tanh"``, ``dropout=0.0``,
            ``init="he"``.
        tower_devices: two device names (e.g. ``["/GPU:0", "/GPU:1"]``) to run the towers
            on, as the paper split its network over two GPUs: each tower's half of conv1's
            kernels, its conv2, conv4 and conv5, and their LRN and pooling run under
            ``tf.device`` of its own device (conv1 becomes a
            :class:`~alexnet_lib.layers.TowerConv2D` with ``split_input=False`` and the
            pools :class:`~alexnet_lib.layers.TowerMaxPooling2D`; the function is the same).
            conv3 and the dense layers take both towers' maps and stay where TensorFlow
            puts them. Needs ``towers=True``.

    Returns:
        An uncompiled ``keras.Model`` named ``alexnet_<preset>``.

    Raises:
        ValueError: naming the value received, for an unknown preset or override, an
            image too small for the conv stack, ``num_classes < 2``, a dropout rate
            outside [0, 1), or any other bad value.
    """
    p = get_preset(preset, **overrides)
    pool_size, pool_stride = POOLS[p.pool]
    towers = 2 if p.towers else 1
    if tower_devices is not None:
        if not p.towers:
            raise ValueError("tower_devices places the two towers: it needs towers=True. "
                             f"Received: towers=False, tower_devices={tower_devices!r}")
        tower_devices = check_device_pair("tower_devices", tower_devices)

    def conv(name, filters, kernel, strides=1, padding="same"):
        kwargs = dict(
            strides=strides,
            padding=padding,
            activation=p.activation,
            name=name,
            **_initializers(p.init, name),
        )
        if p.towers and name in TOWER_LAYERS:
            return TowerConv2D(filters, kernel, towers=2, tower_devices=tower_devices, **kwargs)
        if tower_devices is not None and name == "conv1":
            return TowerConv2D(filters, kernel, towers=2, tower_devices=tower_devices,
                               split_input=False, **kwargs)
        return keras.layers.Conv2D(filters, kernel, **kwargs)

    def pool(name):
        if tower_devices is not None:
            return TowerMaxPooling2D(pool_size, strides=pool_stride, towers=2,
                                     tower_devices=tower_devices, name=name)
        return keras.layers.MaxPooling2D(pool_size, strides=pool_stride, name=name)

    def lrn(name):
        return LocalResponseNormalization(k=2.0, n=5, alpha=1e-4, beta=0.75, groups=towers,
                                          devices=tower_devices, name=name)

    inputs = keras.Input((p.image_size, p.image_size, 3), name="image")
    def normalize_and_pool(x, index):
        if p.lrn and p.lrn_position == "before-pool":
            x = lrn(f"lrn{index}")(x)
        x = pool(f"pool{index}")(x)
        if p.lrn and p.lrn_position == "after-pool":
            x = lrn(f"lrn{index}")(x)
        return x

    x = conv("conv1", p.conv1_filters, p.conv1_kernel, p.conv1_stride, p.conv1_padding)(inputs)
    x = normalize_and_pool(x, 1)
    x = conv("conv2", p.conv_filters[0], p.conv2_kernel)(x)
    x = normalize_and_pool(x, 2)
    x = conv("conv3", p.conv_filters[1], 3)(x)
    x = conv("conv4", p.conv_filters[2], 3)(x)
    x = conv("conv5", p.conv_filters[3], 3)(x)
    x = pool("pool5")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i in (6, 7):
        x = keras.layers.Dense(p.fc_units, activation=p.activation, name=f"fc{i}",
                               **_initializers(p.init, f"fc{i}"))(x)
        x = keras.layers.Dropout(p.dropout, name=f"dropout{i}")(x)
    outputs = keras.layers.Dense(p.num_classes, activation="softmax", dtype="float32",
                                 name="predictions",
                                 **_initializers(p.init, "predictions"))(x)
    return keras.Model(inputs, outputs, name=f"alexnet_{p.name}")


def layer_table(model: keras.Model) -> list[dict[str, Any]]:
    """One row per layer (and per tower inside a tower layer): name, type, output
    shape (without the batch axis) and parameter count, for summaries and notebooks."""
    rows = []
    for layer in model.layers:
        shape = tuple(layer.output.shape[1:])
        rows.append({"name": layer.name, "type": type(layer).__name__, "output_shape": shape,
                     "params": layer.count_params()})
        if isinstance(layer, TowerConv2D):
            for conv in layer.convs:
                rows.append({"name": "  " + conv.name, "type": "Conv2D (tower)",
                             "output_shape": shape[:-1] + (layer.filters // layer.towers,),
                             "params": conv.count_params()})
    return rows


def format_layer_table(model: keras.Model) -> str:
    """``layer_table`` as aligned plain text."""
    rows = layer_table(model)
    header = f"{'layer':24s} {'type':30s} {'output shape':>16s} {'params':>12s}"
    lines = [header, "-" * len(header)]
    for r in rows:
        shape = "x".join(map(str, r["output_shape"]))
        lines.append(f"{r['name']:24s} {r['type']:30s} {shape:>16s} {r['params']:>12,d}")
    lines.append("-" * len(header))
    lines.append(f"{'total':24s} {'':30s} {'':>16s} {model.count_params():>12,d}")
    return "\n".join(lines)


# The paper's network, layer by layer (227x227 input, two towers, 1000 classes): output
# shape and parameter count of the reference model.
PAPER_LAYERS = {
    "conv1": ((55, 55, 96), 34_944),
    "pool1": ((27, 27, 96), 0),
    "conv2": ((27, 27, 256), 307_456),
    "pool2": ((13, 13, 256), 0),
    "conv3": ((13, 13, 384), 885_120),
    "conv4": ((13, 13, 384), 663_936),
    "conv5": ((13, 13, 256), 442_624),
    "pool5": ((6, 6, 256), 0),
    "fc6": ((4096,), 37_752_832),
    "fc7": ((4096,), 16_781_312),
    "predictions": ((1000,), 4_097_000),
}


def compare_with_paper(model: keras.Model) -> list[dict[str, Any]]:
    """Each of the paper's main layers beside the same layer of ``model``."""
    rows = []
    for name, (paper_shape, paper_params) in PAPER_LAYERS.items():
        layer = model.get_layer(name)
        rows.append({
            "layer": name,
            "output_shape": tuple(layer.output.shape[1:]),
            "params": layer.count_params(),
            "paper_output_shape": paper_shape,
            "paper_params": paper_params,
        })
    return rows


def format_paper_comparison(model: keras.Model) -> str:
    """:func:`compare_with_paper` as aligned plain text, with both totals (the paper's is
    the sum of :data:`PAPER_LAYERS`: 60,965,224)."""
    lines = [f"{'layer':12s} {'this model':>14s} {'params':>12s}   {'paper':>14s} {'params':>12s}"]
    for row in compare_with_paper(model):
        shape = "x".join(map(str, row["output_shape"]))
        paper_shape = "x".join(map(str, row["paper_output_shape"]))
        lines.append(f"{row['layer']:12s} {shape:>14s} {row['params']:>12,d}   "
                     f"{paper_shape:>14s} {row['paper_params']:>12,d}")
    paper_total = sum(params for _, params in PAPER_LAYERS.values())
    lines.append(f"{'total':12s} {'':>14s} {model.count_params():>12,d}   {'':>14s} "
                 f"{paper_total:>12,d}")
    return "\n".join(lines)


def whitening_kernel(images: np.ndarray, kernel_size: int, filters: int, *,
                     epsilon: float = 1e-2, max_patches: int = 200_000,
                     seed: int = 0) -> np.ndarray:
    """A conv1 kernel that whitens image patches (a data-dependent initialisation).

    The ``kernel_size x kernel_size x C`` patches of ``images`` (normalized, ``N x H x W x
    C``) have a covariance ``sum_i l_i v_i v_i^T``; the kernel's filters are the leading
    ``filters // 2`` components scaled to unit output variance, ``v_i / sqrt(l_i +
    epsilon)``, each with its negative, so that a ReLU keeps both signs of every component
    (the initialisation of Keller Jordan's fast CIFAR-10 trainers). With an odd
    ``filters`` the last filter is the next component, unpaired.

    Returns:
        float32 ``kernel_size x kernel_size x C x filters``, Keras' ``Conv2D`` layout.

    Raises:
        ValueError: when the images are smaller than the kernel, or the patches have fewer
            dimensions than the filters need.
    """
    x = np.asarray(images, np.float32)
    k = check_int("kernel_size", kernel_size, 1)
    filters = check_int("filters", filters, 1)
    if x.ndim != 4 or min(x.shape[1:3]) < k:
        raise ValueError(f"whitening needs N x H x W x C images of at least {k}x{k} pixels. "
                         f"Received: images of shape {x.shape}")
    dims = k * k * x.shape[-1]
    components = (filters + 1) // 2
    if components > dims:
        raise ValueError(f"{filters} whitening filters need {components} components, but "
                         f"{k}x{k}x{x.shape[-1]} patches have {dims}: use at most {2 * dims} "
                         f"filters.")
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))
    # windows: N x H' x W' x C x k x k -> patches in the kernel's (row, column, channel) order
    patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, dims)
    if len(patches) > max_patches:
        rows = np.random.default_rng(seed).choice(len(patches), max_patches, replace=False)
        patches = patches[np.sort(rows)]
    patches = patches.astype(np.float64)
    patches -= patches.mean(0)
    eigval, eigvec = np.linalg.eigh(patches.T @ patches / len(patches))
    order = np.argsort(eigval)[::-1][:components]
    scaled = eigvec[:, order] / np.sqrt(np.clip(eigval[order], 0, None) + epsilon)
    paired = np.stack([scaled, -scaled], axis=-1).reshape(dims, -1)[:, :filters]
    return paired.reshape(k, k, x.shape[-1], filters).astype(np.float32)
