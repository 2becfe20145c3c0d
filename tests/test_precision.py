"""alexnet_lib.precision: the cached bfloat16 measurement is used only when it is a finite,
positive number; anything else is measured again and the cache rewritten."""

import json
import math

import pytest
import tensorflow as tf
from helpers.tiny import SMALL, config

from alexnet_lib import precision
from alexnet_lib.model import get_preset
from alexnet_lib.train import Trainer


@pytest.mark.parametrize("cached", ["NaN", "Infinity", "-5", "0", '"fast"', "true", "null"])
def test_a_bad_cached_measurement_is_measured_again(tmp_path, monkeypatch, cached):
    monkeypatch.setenv("ALEXNET_DATA_DIR", str(tmp_path))
    preset = get_preset("cifar", **SMALL)
    key = precision.measurement_key(preset)
    cache = tmp_path / "cache" / "precision.json"
    cache.parent.mkdir()
    cache.write_text(f'{{"{key}": {cached}}}')
    speedup = precision.bfloat16_speedup(preset, batch_size=4, steps=1)
    assert math.isfinite(speedup) and speedup > 0
    assert json.loads(cache.read_text())[key] == speedup
    assert precision.bfloat16_speedup(preset, batch_size=4, steps=1) == speedup  # cached now


@pytest.mark.parametrize("gpus, flags, speedup, expected", [
    (0, {"avx2", "fma"}, None, "float32"),                     # AVX2 only: never measured
    (0, {"avx512f", "avx512_bf16"}, 1.54, "mixed_bfloat16"),   # AMD EPYC, measured 1.54x
    (0, {"avx512f", "avx512_bf16"}, 0.63, "float32"),          # Intel Xeon, measured 0.63x
    (0, {"amx_bf16", "amx_tile"}, 2.0, "mixed_bfloat16"),
    (2, {"avx2"}, None, "mixed_bfloat16"),                     # GPUs: tensor cores
])
def test_precision_auto_is_decided_by_the_devices_and_the_cpu(gpus, flags, speedup, expected):
    """Faked devices, CPU flags and measurements: the decision on any host."""
    from alexnet_lib.precision import choose_precision

    measured = []

    def measure():
        measured.append(1)
        return speedup

    chosen, reason = choose_precision("auto", gpus=gpus, flags=frozenset(flags), measure=measure)
    assert chosen == expected
    assert bool(measured) == (gpus == 0 and bool(flags & {"avx512_bf16", "amx_bf16"}))
    if measured:
        assert f"{speedup:.2f}x" in reason
    assert choose_precision("mixed_float16", gpus=gpus, flags=frozenset(flags)) == (
        "mixed_float16", "asked for")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    from alexnet_lib.precision import cpu_flags

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert cpu_flags(str(info)) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(str(tmp_path / "absent")) == frozenset()


@pytest.mark.slow
def test_the_run_records_its_precision_and_why(tree, tmp_path, monkeypatch):
    import yaml

    import alexnet_lib.precision as precision

    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    monkeypatch.setattr(precision, "bfloat16_speedup", lambda preset: 1.6)
    monkeypatch.setattr(tf.config, "list_logical_devices",
                        lambda kind=None: [] if kind == "GPU" else [tf.config.LogicalDevice(
                            "/device:CPU:0", "CPU")])
    trainer = Trainer(config(tree, tmp_path / "auto", recipe={"epochs": 1, "precision": "auto"}))
    assert trainer.recipe.precision == "mixed_bfloat16"
    assert "precision mixed_bfloat16 (auto: the CPU has avx512_bf16" in trainer.devices_line()
    trainer.fit()
    recorded = yaml.safe_load((tmp_path / "auto" / "resolved.yaml").read_text())["precision"]
    assert recorded["requested"] == "auto" and recorded["chosen"] == "mixed_bfloat16"
    assert "1.60x" in recorded["reason"]
