"""alexnet_lib: AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012) on CIFAR-10.

The tested library behind the notebooks and ``python -m alexnet_lib``. Importing the
package does not import TensorFlow: the names below load their modules on first use, so
``python -m alexnet_lib --help`` answers at once. TensorFlow's C++ start-up lines are hidden
(see :mod:`alexnet_lib.quiet`; set ``TF_CPP_MIN_LOG_LEVEL=0`` to see them).

Keras's backend: ``KERAS_BACKEND`` (or ``~/.keras/keras.json``) when set; otherwise
TensorFlow where it can be imported, else JAX (:func:`choose_backend`, run on import, before
Keras is).
"""

import importlib.util as _util
import json as _json
import os as _os
from importlib import import_module as _import_module


def choose_backend() -> str:
    """The Keras backend this process uses (also put in ``KERAS_BACKEND``, which child
    processes inherit): the user's ``KERAS_BACKEND``, or ``keras.json``'s ``backend`` when
    that is installed; else ``tensorflow`` when it is installed, else ``jax``."""
    chosen = _os.environ.get("KERAS_BACKEND", "").strip()
    if not chosen:
        home = _os.environ.get("KERAS_HOME") or _os.path.join(_os.path.expanduser("~"),
                                                               ".keras")
        try:
            with open(_os.path.join(home, "keras.json")) as handle:
                chosen = _json.load(handle).get("backend") or ""
        except (OSError, ValueError, AttributeError):
            pass
        # Keras writes keras.json itself on first use: a backend named there that is not
        # installed here (a copied home folder, say) is no choice.
        if isinstance(chosen, str) and chosen and not _util.find_spec(chosen):
            chosen = ""
    if not isinstance(chosen, str) or not chosen:
        chosen = "tensorflow" if _util.find_spec("tensorflow") else "jax"
    _os.environ["KERAS_BACKEND"] = chosen
    return chosen


choose_backend()

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


def lazy_exports(package: str, exports: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package`` whose names in ``exports`` (name ->
    submodule) load their submodule on first use."""
    namespace = _import_module(package).__dict__

    def __getattr__(name: str):
        if name in exports:
            value = getattr(_import_module(f".{exports[name]}", package), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
