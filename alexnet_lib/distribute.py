"""Scale-out through ``tf.distribute``: which strategy a run uses, who the chief is, how a
global batch is split over replicas, and on which devices the paper's two towers run.

Data parallelism:
    ``make_strategy("auto")`` picks ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG``
    describes a cluster of more than one task, ``MirroredStrategy`` when more than one GPU
    is visible, and the default (one-device) strategy otherwise. The recipe's
    ``batch_size`` is the **global** batch: each of the ``N`` replicas gets
    ``batch_size / N`` examples of the same global batch a one-device run would take, so
    the optimizer steps, the learning-rate schedule and the results do not depend on ``N``.
    To use more devices for more throughput, raise ``--batch-size`` and the learning rate
    together (the linear scaling rule: ``k`` times the batch, ``k`` times the rate, with a
    warm-up), e.g. ``--batch-size 512 --set learning_rate=0.016`` for 4 times the ``cpu``
    recipe's 128 / 4e-3.

Multi-host:
    Every worker runs the same command with its own ``TF_CONFIG`` (``{"cluster": {"worker":
    ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": i}}``), the way TF
    clusters, Kubernetes jobs and managed training services launch them. The chief (task
    ``chief``, else ``worker`` 0) writes the run folder; the others save their (identical)
    checkpoints to a temporary folder, because every worker must take part in each save.
    All of them restore from the chief's checkpoints, so a restarted cluster resumes.

Model parallelism:
    ``tower_devices=["/GPU:0", "/GPU:1"]`` (``--towers-on``) runs each tower -- its half of
    conv1's kernels, its conv2, conv4 and conv5, with their LRN and pooling -- under
    ``tf.device`` of its own device; conv3 and the dense layers take both towers' maps.
"""

from __future__ import annotations

from . import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import json
import os
from typing import Any

import numpy as np
import tensorflow as tf

from .config import STRATEGIES
from .model import build_alexnet


def tf_config() -> dict[str, Any] | None:
    """The parsed ``TF_CONFIG`` environment variable, or ``None`` when it is unset.

    Raises:
        ValueError: when it is not JSON with a ``cluster`` and a ``task`` naming a member.
    """
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}). "
                         f"Received: {text[:200]!r}") from None
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError('TF_CONFIG needs {"cluster": {"worker": [...]}, "task": {"type": '
                         f'"worker", "index": i}}}}. Received: {text[:200]!r}')
    members = cluster.get(task.get("type"), [])
    index = task.get("index", 0)
    if not isinstance(index, int) or not 0 <= index < len(members):
        raise ValueError(f"TF_CONFIG's task {task!r} is not in its cluster {cluster!r}.")
    return config


def cluster_size(config: dict[str, Any] | None = None) -> int:
    """How many tasks the cluster of ``TF_CONFIG`` has (1 without one)."""
    config = config if config is not None else tf_config()
    if not config:
        return 1
    return sum(len(v) for k, v in config["cluster"].items() if k in ("chief", "worker"))


def is_chief(config: dict[str, Any] | None = None) -> bool:
    """Whether this process writes the run folder: the ``chief`` task, or ``worker`` 0 of a
    cluster without one, or any process outside a cluster."""
    config = config if config is not None else tf_config()
    if not config:
        return True
    task = config["task"]
    if "chief" in config["cluster"]:
        return task["type"] == "chief"
    return task["type"] == "worker" and task.get("index", 0) == 0


def make_strategy(name: str = "auto", devices: list[str] | None = None) -> tf.distribute.Strategy:
    """A ``tf.distribute`` strategy by name (see the module docstring).

    Args:
        name: ``auto``, ``one`` (one device: the first GPU, else the CPU), ``mirrored``
            (every GPU of this machine, or ``devices``) or ``multiworker`` (the cluster in
            ``TF_CONFIG``).
        devices: for ``mirrored``, the devices to replicate on (e.g. two logical CPUs).

    Create it before any other TensorFlow work in the process (``multiworker`` starts a
    gRPC server and cannot be created after eager ops have initialised the runtime).

    Raises:
        ValueError: an unknown name, or ``multiworker`` without a ``TF_CONFIG`` cluster.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}: choose one of {list(STRATEGIES)}.")
    config = tf_config() if name in ("auto", "multiworker") else None
    if name == "multiworker" or (name == "auto" and cluster_size(config) > 1):
        if not config:
            raise ValueError("--strategy multiworker needs TF_CONFIG describing the cluster, e.g. "
                             'TF_CONFIG=\'{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
                             '"task": {"type": "worker", "index": 0}}\'.')
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "auto" and len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    if name == "one":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/CPU:0")
    return tf.distribute.get_strategy()


def check_devices(devices: list[str]) -> list[str]:
    """``devices`` if each names a device of this machine (``/GPU:0``, ``/device:CPU:0``...),
    else one ``ValueError`` naming the missing ones and the devices there are.

    Placing work on a device that does not exist would silently run it elsewhere.
    """
    present = tf.config.list_logical_devices()

    def canonical(name: str) -> str:
        spec = tf.DeviceSpec.from_string(name)
        return f"{(spec.device_type or '').upper()}:{spec.device_index or 0}"

    names = {canonical(d.name) for d in present}
    missing = []
    for device in devices:
        try:
            known = canonical(device) in names
        except (ValueError, TypeError):
            known = False
        if not known:
            missing.append(device)
    if missing:
        raise ValueError(
            f"--towers-on names device(s) this machine does not have: {', '.join(missing)}. "
            f"Devices here: {', '.join(d.name for d in present)}. Name two of them (e.g. "
            f"/GPU:0,/GPU:1), or leave --towers-on out to train on one device.")
    return devices


def distribute_batches(strategy: tf.distribute.Strategy, make_dataset) -> Any:
    """Split each global batch of ``make_dataset()`` exactly over the strategy's replicas.

    Every input pipeline (one per worker) builds the same global batches -- the data
    order and augmentation are functions of (seed, epoch, step) -- and keeps the slices of
    its own replicas, in replica order. A run on ``N`` replicas therefore sees the same
    batches, split ``N`` ways, as a one-device run.
    """
    replicas = strategy.num_replicas_in_sync

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local

        def split(x, y):
            xs = tf.reshape(x, [replicas, -1, *x.shape[1:]])[first:first + local]
            ys = tf.reshape(y, [replicas, -1])[first:first + local]
            return tf.data.Dataset.from_tensor_slices((xs, ys))

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return make_dataset().flat_map(split).with_options(options)

    return strategy.distribute_datasets_from_function(dataset_fn)


def copy_weights(source, target) -> None:
    """Copy an AlexNet's weights into the same network built with or without
    ``tower_devices`` (layer by layer; conv1's single kernel and its two tower halves are
    converted), e.g. to run a trained model split over two devices.

    Raises:
        ValueError: when the two models do not have the same layers and shapes.
    """
    for layer in source.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        try:
            other = target.get_layer(layer.name)
        except ValueError:
            raise ValueError(f"{target.name!r} has no layer {layer.name!r}: copy weights only "
                             f"between two builds of the same preset.") from None
        slots = len(other.get_weights())
        if len(weights) == 2 and slots == 4:  # one conv1 -> two towers' halves
            kernel, bias = weights
            half = kernel.shape[-1] // 2
            weights = [kernel[..., :half], bias[:half], kernel[..., half:], bias[half:]]
        elif len(weights) == 4 and slots == 2 and weights[0].shape[2] == weights[2].shape[2]:
            weights = [np.concatenate([weights[0], weights[2]], -1),
                       np.concatenate([weights[1], weights[3]], -1)]
        other.set_weights(weights)


def placed_twin(preset, tower_devices: list[str], **overrides):
    """``(reference, placed)``: ``build_alexnet(preset)`` and the same network with its towers
    on ``tower_devices``, holding the same weights (for checking that placement changes where
    the work runs, not what it computes)."""
    reference = build_alexnet(preset, **overrides)
    placed = build_alexnet(preset, tower_devices=tower_devices, **overrides)
    copy_weights(reference, placed)
    return reference, placed
