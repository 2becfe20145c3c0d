"""Training a run: :class:`Trainer` (the loop) and :func:`train`, made of parts that own
their state.

* :mod:`.loop` -- ``Trainer``: set-up (run folder, lock, precision, data, model), the epochs
  and their steps, saved models, divergence.
* :mod:`.step` -- ``TrainStep``: the compiled step of the TensorFlow backend, with the
  epoch's running sums and the non-finite flags it owns.
* :mod:`.state` -- ``ResumeState``: the resume checkpoints (position, schedule, sums,
  dropout's random state), two kept, restored with fallback, crash debris removed.
* :mod:`.schedule` -- ``Schedule``: learning rate, plateau rule and the weights' moving
  average, shared by every backend.
* :mod:`.report` -- ``Reporter``: messages, ``keras.utils.Progbar``, the devices line,
  TensorBoard scalars.
* :mod:`.build` -- the model behind its input, conv1's whitening, the recipe's optimizer.
* :mod:`.step_jax`, :mod:`.state_jax` -- the JAX backend's step and resume state, the same
  interfaces without TensorFlow.

The step and the resume state are where a second backend's implementation slots in.
"""

from .. import lazy_exports

# Loaded on first use: the JAX backend's parts import without TensorFlow.
_EXPORTS = {"Trainer": "loop", "train": "loop", "TrainStep": "step", "ResumeState": "state",
            "Schedule": "schedule", "learning_rate_at": "schedule", "input_model": "build"}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
