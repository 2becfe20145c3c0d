"""Every value check of the project, for presets, recipes, run configurations, layers, data,
the CLI and the notebooks alike.

Each check takes the name a person typed and the value, returns the value in its proper
type (an integer-valued float becomes an ``int``, an ``int`` a ``float``, ``"1e-3"`` the
number 0.001), and otherwise raises one ``ValueError`` that names the field, the range and
the value received. Booleans are never numbers here: ``epochs=true`` is refused.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from .files import load_yaml

_TRUE = ("true", "yes", "on")
_FALSE = ("false", "no", "off")


def _fail(name: str, expected: str, value: Any) -> None:
    raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")


def _number(value: Any) -> float | int | None:
    """``value`` as a Python number, or ``None`` when it is not one (text is parsed)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            return None
    try:
        import numpy as np

        if isinstance(value, np.generic):
            value = value.item()
    except ImportError:  # pragma: no cover
        pass
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None,
              *, allow_none: bool = False) -> int | None:
    """An integer in ``[minimum, maximum]`` (a whole float such as ``2.0`` is accepted)."""
    if value is None and allow_none:
        return None
    number = _number(value)
    if isinstance(number, float) and math.isfinite(number) and number.is_integer():
        number = int(number)
    if not isinstance(number, int) or (minimum is not None and number < minimum) or (
            maximum is not None and number > maximum):
        _fail(name, _range("an integer", minimum, maximum, allow_none), value)
    return number


def check_float(name: str, value: Any, minimum: float | None = None,
                maximum: float | None = None, *, min_open: bool = False,
                max_open: bool = False, allow_none: bool = False) -> float | None:
    """A finite number in the range (``min_open``/``max_open`` exclude the bound)."""
    if value is None and allow_none:
        return None
    number = _number(value)
    ok = number is not None and math.isfinite(number)
    if ok and minimum is not None:
        ok = number > minimum if min_open else number >= minimum
    if ok and maximum is not None:
        ok = number < maximum if max_open else number <= maximum
    if not ok:
        low = "" if minimum is None else ("(" if min_open else "[") + f"{minimum}, "
        high = "" if maximum is None else f"{maximum}" + (")" if max_open else "]")
        if minimum is not None and maximum is not None:
            where = f"a finite number in {low}{high}"
        elif minimum is not None:
            where = f"a finite number {'>' if min_open else '>='} {minimum}"
        elif maximum is not None:
            where = f"a finite number {'<' if max_open else '<='} {maximum}"
        else:
            where = "a finite number"
        _fail(name, where + (" (or None)" if allow_none else ""), value)
    return float(number)


def check_bool(name: str, value: Any) -> bool:
    """``True`` or ``False`` (text such as ``"yes"`` is refused: :func:`parse_value` turns
    the words true/false, yes/no, on/off typed on a command line into booleans)."""
    if isinstance(value, bool):
        return value
    try:
        import numpy as np

        if isinstance(value, np.bool_):
            return bool(value)
    except ImportError:  # pragma: no cover
        pass
    _fail(name, "true or false", value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """One of ``choices``."""
    choices = tuple(choices)
    if isinstance(value, bool) or value not in choices:
        _fail(name, f"one of {list(choices)}", value)
    return value


def _range(kind: str, minimum, maximum, allow_none: bool) -> str:
    if minimum is not None and maximum is not None:
        text = f"{kind} in [{minimum}, {maximum}]"
    elif minimum == 1:
        text = f"a positive {kind.removeprefix('an ')}"
    elif minimum == 0:
        text = f"a non-negative {kind.removeprefix('an ')}"
    elif minimum is not None:
        text = f"{kind} >= {minimum}"
    else:
        text = kind
    return text + (" (or None)" if allow_none else "")


def parse_value(text: str) -> Any:
    """A ``KEY=VALUE`` value as typed on a command line: numbers in any notation (``1e-3``,
    ``5E-4``, ``.5``, ``nan``), ``true``/``false``, ``null``/``none``, YAML lists and maps
    (``[24, 32, 32, 24]``); anything else stays text (checked later against its field)."""
    stripped = text.strip()
    number = _number(stripped)
    if number is not None:
        return number
    lowered = stripped.lower()
    if lowered in _TRUE + _FALSE:
        return lowered in _TRUE
    if lowered in ("null", "none", "~", ""):
        return None
    try:
        return load_yaml(stripped, "the value")
    except ValueError:
        return stripped


def check_device_pair(name: str, value: Any, *, allow_none: bool = True) -> list[str] | None:
    """Two non-empty device names, e.g. ``["/GPU:0", "/GPU:1"]`` (a text ``"a,b"`` is split
    at the comma). Whether this machine has them is :func:`alexnet_lib.distribute.check_devices`'s
    question."""
    if value is None and allow_none:
        return None
    devices = [d.strip() for d in value.split(",")] if isinstance(value, str) else value
    if not isinstance(devices, (list, tuple)) or len(devices) != 2 or not all(
            isinstance(d, str) and d.strip() for d in devices):
        _fail(name, "two device names, e.g. ['/GPU:0', '/GPU:1'] (or /GPU:0,/GPU:1)", value)
    return [d.strip() for d in devices]


def check_mapping(name: str, value: Any, keys: Iterable[str] | None = None) -> dict:
    """A mapping from field names (among ``keys``, when given) to values."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        _fail(name, "a mapping of field names to values", value)
    if keys is not None:
        keys = sorted(keys)
        unknown = sorted(set(value) - set(keys))
        if unknown:
            raise ValueError(f"`{name}` names unknown field(s) {unknown}: choose from {keys}. "
                             f"Received: {name}={value!r}")
    return dict(value)
