"""alexnet_lib.precision: the cached bfloat16 measurement is used only when it is a finite,
positive number; anything else is measured again and the cache rewritten."""

import json
import math

import pytest
from helpers.tiny import SMALL

from alexnet_lib import precision
from alexnet_lib.model import get_preset


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
