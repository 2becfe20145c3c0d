"""Which of a run's values are non-finite: what a divergence message names. Keras and NumPy
only (every backend's loop reads the Keras variables, after the JAX step has synced them)."""

from __future__ import annotations

import keras
import numpy as np


def float_state(model: keras.Model, optimizer) -> list:
    """The model's trainable weights and the optimizer's floating-point slots."""
    slots = [v for v in optimizer.variables if "float" in str(v.dtype)]
    return list(model.trainable_variables) + slots


def nonfinite_variables(model: keras.Model, optimizer) -> list[str]:
    """The paths of the weights and optimizer slots that hold a NaN or an infinity."""
    return [v.path for v in float_state(model, optimizer)
            if not np.isfinite(np.asarray(keras.ops.convert_to_numpy(v), np.float64)).all()]
