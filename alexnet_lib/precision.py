"""Which precision a run computes in, decided by the devices and the CPU (``auto``).

On a GPU, ``mixed_bfloat16``. On a CPU the flag list does not settle it: bfloat16 is
emulated (10x slower) without ``avx512_bf16``/``amx_bf16``, and with them it was 1.54x
float32's speed on one host and 0.63x on another (docs/benchmarks.md), so it is measured
once per host, preset and backend version and the result kept in the data folder.
"""

from __future__ import annotations

from . import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import json
import math
import time
from typing import Callable

import keras
import numpy as np

from .backend import backend_name, backend_version, gpu_count
from .files import write_atomic
from .model import Preset, build_alexnet, get_preset
from .paths import data_dir

# CPU flags of native bfloat16 arithmetic (AVX512-BF16, Intel AMX); see choose_precision.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpuinfo(field: str, cpuinfo: str) -> str | None:
    """The first ``field`` line's value in Linux's ``/proc/cpuinfo`` (``None``: absent)."""
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if line.startswith(field):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return None


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (empty where there is no such file)."""
    return frozenset((_cpuinfo("flags", cpuinfo) or "").split())


def choose_precision(precision: str, *, gpus: int, flags: frozenset[str] | set[str],
                     measure: Callable[[], float] | None = None) -> tuple[str, str]:
    """``(precision, reason)``: ``auto`` decided by the devices and the CPU.

    * A GPU: ``mixed_bfloat16`` (tensor cores, no loss scaling).
    * A CPU without bfloat16 arithmetic (neither ``avx512_bf16`` nor ``amx_bf16`` among its
      flags): ``float32``; bfloat16 is emulated there, 10x slower.
    * A CPU with it: measured, because the flag does not settle it (docs/benchmarks.md:
      1.54x float32's speed on an AMD EPYC with ``avx512_bf16``, 0.63x on an Intel Xeon
      with ``avx512_bf16`` and no AMX). ``measure()`` returns bfloat16's speed as a multiple
      of float32's; ``mixed_bfloat16`` is chosen when it is at least 1.1.

    Other values are returned as they are.
    """
    if precision != "auto":
        return precision, "asked for"
    if gpus:
        return "mixed_bfloat16", f"auto: {gpus} GPU(s), bfloat16 on tensor cores"
    native = [flag for flag in BF16_CPU_FLAGS if flag in flags]
    if not native:
        return "float32", ("auto: the CPU has no bfloat16 arithmetic (neither "
                           f"{' nor '.join(BF16_CPU_FLAGS)}), where bfloat16 is 10x slower")
    speedup = measure() if measure is not None else None
    if speedup is None:
        return "float32", f"auto: the CPU has {', '.join(native)}, but bfloat16 was not measured"
    chosen = "mixed_bfloat16" if speedup >= BF16_MIN_SPEEDUP else "float32"
    return chosen, (f"auto: the CPU has {', '.join(native)}; bfloat16 measured at {speedup:.2f}x "
                    f"float32's training speed on this host")


# bfloat16 must train at least this much faster than float32 to be chosen by `auto`.
BF16_MIN_SPEEDUP = 1.1


def resolve_precision(precision: str, preset: Preset | str = "cifar") -> str:
    """The precision ``precision`` means on this machine (:func:`precision_decision`)."""
    return precision_decision(precision, preset)[0]


def precision_decision(precision: str, preset: Preset | str = "cifar") -> tuple[str, str]:
    """:func:`choose_precision` for this machine's GPUs and CPU, measuring ``preset``'s
    training step in both precisions when the CPU has bfloat16 arithmetic (once per host,
    preset and backend version: the result is kept in the data folder's cache)."""
    preset = get_preset(preset) if isinstance(preset, str) else preset
    return choose_precision(precision, gpus=gpu_count(),
                            flags=cpu_flags(), measure=lambda: bfloat16_speedup(preset))


def measurement_key(preset: Preset) -> str:
    """What a cached measurement holds for: this CPU, the backend's version (JAX's marked
    as such) and the network."""
    version = backend_version()
    if backend_name() != "tensorflow":
        version = f"{backend_name()}-{version}"
    return "|".join([cpu_model(), ",".join(cpu_bfloat16_flags()), version, preset.name,
                     str(preset.image_size), str(preset.towers)])


def bfloat16_speedup(preset: Preset, *, batch_size: int = 32, steps: int = 4) -> float:
    """``mixed_bfloat16``'s training speed as a multiple of ``float32``'s for ``preset`` on
    this host: a few SGD steps on one resident random batch in each policy (best of two
    rounds). Cached in ``<data dir>/cache/precision.json``."""
    cache = data_dir() / "cache" / "precision.json"
    key = measurement_key(preset)
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    cached = known.get(key) if isinstance(known, dict) else None
    if (isinstance(cached, (int, float)) and not isinstance(cached, bool)
            and math.isfinite(cached) and cached > 0):
        return float(cached)  # anything else (NaN, Infinity, -5, text) is measured again
    rates = {}
    policy = keras.config.dtype_policy()
    try:
        for name in ("float32", "mixed_bfloat16"):
            keras.config.set_dtype_policy(name)
            model = build_alexnet(preset)
            model.compile(optimizer=keras.optimizers.SGD(0.001),
                          loss="sparse_categorical_crossentropy")
            rng = np.random.default_rng(0)
            x = rng.standard_normal((batch_size, *model.input_shape[1:]), dtype=np.float32)
            y = rng.integers(0, preset.num_classes, batch_size)
            model.train_on_batch(x, y)  # build and trace
            best = 0.0
            for _ in range(2):
                started = time.perf_counter()
                for _ in range(steps):
                    model.train_on_batch(x, y)
                best = max(best, steps * batch_size / (time.perf_counter() - started))
            rates[name] = best
    finally:
        keras.config.set_dtype_policy(policy)
    speedup = round(rates["mixed_bfloat16"] / rates["float32"], 3)
    if isinstance(known, dict):
        known[key] = speedup
        try:
            write_atomic(cache, json.dumps(known, indent=1))
        except OSError:
            pass  # a cache that cannot be written only costs the measurement next time
    return speedup


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name (``unknown CPU`` where Linux does not say)."""
    return _cpuinfo("model name", cpuinfo) or "unknown CPU"


def cpu_bfloat16_flags() -> list[str]:
    """The flags of native bfloat16 arithmetic this CPU has (sorted)."""
    return sorted(set(BF16_CPU_FLAGS) & cpu_flags())
