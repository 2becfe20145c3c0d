"""Importing TensorFlow without its C++ start-up lines.

On a CPU-only machine ``import tensorflow`` and the first device query print lines such as
``I0000 ... oneDNN custom operations are on`` and ``E0000 ... failed call to cuInit: INTERNAL:
CUDA error``, which read like failures; some are written before TensorFlow's logging is set
up and ignore ``TF_CPP_MIN_LOG_LEVEL``. Every module of this package that uses TensorFlow
imports this one first, and :func:`import_tensorflow` then imports TensorFlow (and asks it
for its devices) with the process's standard error pointed at ``/dev/null`` for that moment.

A person who sets ``TF_CPP_MIN_LOG_LEVEL`` keeps that level for everything TensorFlow logs
afterwards; the start-up lines, which ignore the level, stay hidden unless it is ``0``
(show everything), which hides nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys

LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
# Set beside LOG_LEVEL_ENV when this module chose the level, so that child processes
# (notebook kernels, workers) do not take it for the user's choice.
CHOSEN_HERE_ENV = "ALEXNET_QUIET_LOG_LEVEL"


@contextlib.contextmanager
def _stderr_silenced():
    """Point file descriptor 2 (what C++ code writes to) at /dev/null, then restore it."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to hide
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow():
    """``tensorflow``, imported quietly unless the user chose a log level (see above)."""
    level = os.environ.get(LOG_LEVEL_ENV, "").strip()
    chosen_by_user = level != "" and os.environ.get(CHOSEN_HERE_ENV) != level
    if "tensorflow" in sys.modules or (chosen_by_user and level == "0"):
        import tensorflow as tf

        return tf
    if not chosen_by_user:
        # TensorFlow's info and warning lines, from now on (also in child processes).
        os.environ[LOG_LEVEL_ENV] = os.environ[CHOSEN_HERE_ENV] = "2"
    with _stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # the CUDA probe, and its cuInit error line
    return tf


# The model's layers also run on Keras's other backends (``KERAS_BACKEND=jax`` or ``torch``,
# where TensorFlow may not be installed): TensorFlow is then not imported here.
if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
    import_tensorflow()
