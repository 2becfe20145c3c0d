"""The seam between the project and Keras's backend: the few parts that are the backend's own
(input pipelines, the compiled forward pass, the training step and its resume state) live in
one module per backend, and :func:`backend_module` loads the one of the backend this
process runs on (chosen on import, see :func:`alexnet_lib.choose_backend`). Everything else
is shared and written in Keras operations and NumPy.
"""

from __future__ import annotations

from . import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

from importlib import import_module
from types import ModuleType

import keras

# The backends the project runs on, and what each is for.
BACKENDS = {"tensorflow": "CPUs, tf.distribute, SavedModel export",
            "jax": "GPUs without TensorFlow"}


def backend_name() -> str:
    """The Keras backend of this process.

    Raises:
        ValueError: for a backend the project does not run on.
    """
    name = keras.backend.backend()
    if name not in BACKENDS:
        raise ValueError(f"Keras's backend is {name!r} (KERAS_BACKEND), which this project "
                         f"does not run on: set KERAS_BACKEND to one of "
                         f"{', '.join(BACKENDS)}.")
    return name


def backend_version() -> str:
    """The backend's version (TensorFlow's or JAX's ``__version__``)."""
    return getattr(import_module(backend_name()), "__version__", "unknown")


def devices() -> list[str]:
    """The devices the backend computes on, by its own names (``/device:CPU:0`` on
    TensorFlow, ``TFRT_CPU_0`` or ``cuda:0`` on JAX)."""
    name = backend_name()
    if name == "tensorflow":
        return [d.name for d in import_module("tensorflow").config.list_logical_devices()]
    return [str(d) for d in import_module("jax").devices()]


def gpu_count() -> int:
    """How many GPUs the backend sees."""
    if backend_name() == "tensorflow":
        return len(import_module("tensorflow").config.list_logical_devices("GPU"))
    return sum(d.platform == "gpu" for d in import_module("jax").devices())


def backend_module(modules: dict[str, str], package: str) -> ModuleType:
    """The module of ``modules`` (backend name -> module, relative to ``package``) for this
    process's backend, imported on first use, so that a backend's parts never import the
    other backend."""
    return import_module(modules[backend_name()], package)


def refuse_on_jax(what: str, alternative: str) -> None:
    """One clear error for what only the TensorFlow backend does.

    Raises:
        ValueError: on any backend but TensorFlow, naming ``what`` and ``alternative``.
    """
    name = backend_name()
    if name != "tensorflow":
        raise ValueError(f"{what} needs the TensorFlow backend; this process runs on "
                         f"{name} (KERAS_BACKEND={name}). {alternative}")
