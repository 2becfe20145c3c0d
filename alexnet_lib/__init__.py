"""alexnet_lib: AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012) on CIFAR-10.

The tested library behind the notebooks and ``python -m alexnet_lib``. Importing the
package does not import TensorFlow: the names below load their modules on first use, so
``python -m alexnet_lib --help`` answers at once. TensorFlow's C++ start-up lines are hidden
(see :mod:`alexnet_lib.quiet`; set ``TF_CPP_MIN_LOG_LEVEL=0`` to see them).
"""

from importlib import import_module as _import_module

__version__ = "0.1.0"

_EXPORTS = {
    "LocalResponseNormalization": "layers",
    "TowerConv2D": "layers",
    "DEFAULT_CPU_PRESET": "model",
    "PRESETS": "model",
    "Preset": "model",
    "build_alexnet": "model",
    "format_layer_table": "model",
    "get_preset": "model",
    "layer_table": "model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(_import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
