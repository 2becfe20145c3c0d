"""The compiled training step of the JAX backend, and the state it owns.

One ``jax.jit`` over ``model.stateless_call`` + ``jax.value_and_grad`` + the optimizer's
``stateless_apply``, as :class:`~.step.TrainStep` computes it on TensorFlow: the loss summed
per example over the batch (label smoothing), the paper's weight decay added to every
kernel's gradient, the update. The whole state -- trainable and non-trainable weights
(dropout's random state among them), the optimizer's variables, the epoch's running sums
and the non-finite flags -- is one pytree, donated to each step; the host reads values only
when the loop asks (:meth:`sums`, :meth:`nonfinite`). The learning rate is read from the
optimizer's variable at every call, where :class:`~.schedule.Schedule` sets it.

Data parallel over several devices (``devices``): the state is replicated on every device
and each batch split along its first axis over them; XLA partitions the one compiled step
and sums the gradients across the devices, so the run is the one-device run up to the
order of those sums.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import keras
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..config import Recipe
from ..errors import LOSS_OR_GRADIENTS, STATE


def _finite(arrays) -> jax.Array:
    """Whether every value of ``arrays`` is finite (one sum per array, as on TensorFlow)."""
    sums = [jnp.sum(jnp.asarray(a, jnp.float32)) for a in arrays]
    return jnp.isfinite(sum(sums)) if sums else jnp.asarray(True)


class JaxTrainStep:
    """``step(iterator)``: one optimizer step on the next ``(images, labels)`` batch.

    The model's and optimizer's Keras variables hold the state only after :meth:`sync`
    (before evaluating, exporting or saving); :meth:`load` takes it back from them (after a
    restore, or any change made through the variables).
    """

    def __init__(self, model: keras.Model, optimizer, recipe: Recipe, num_classes: int,
                 check_finite: bool = True, devices: list | None = None):
        self.model, self.optimizer, self.recipe = model, optimizer, recipe
        self.num_classes, self.check_finite = num_classes, check_finite
        self.devices = list(devices or [])
        self._replicated = self._split = None
        if len(self.devices) > 1:
            mesh = Mesh(np.array(self.devices), ("batch",))
            self._replicated = NamedSharding(mesh, PartitionSpec())
            self._split = NamedSharding(mesh, PartitionSpec("batch"))
        self._lr_index = next(i for i, v in enumerate(optimizer.variables)
                              if v.path.endswith("/learning_rate"))
        self._iterations_index = next(i for i, v in enumerate(optimizer.variables)
                                      if v.path.endswith("/iteration"))
        self.load()
        self._step = jax.jit(self._build(), donate_argnums=0,
                             **({"out_shardings": self._replicated} if self._replicated else {}))

    # ---- the state
    def load(self) -> None:
        """Take the state from the Keras variables (copies: the step donates its buffers)."""
        def copy(variables):
            return [jnp.array(keras.ops.convert_to_numpy(v)) for v in variables]

        self.state = {"trainable": copy(self.model.trainable_variables),
                      "non_trainable": copy(self.model.non_trainable_variables),
                      "optimizer": copy(self.optimizer.variables),
                      "sums": jnp.zeros(2, jnp.float32),
                      "nonfinite": jnp.array([-1, 0], jnp.int32)}
        self._place()

    def _place(self) -> None:
        """The state replicated on every device (data parallel), else left where it is."""
        if self._replicated is not None:
            self.state = jax.device_put(self.state, self._replicated)

    def sync(self) -> None:
        """Write the state into the Keras variables (copies, for the same reason)."""
        for name, variables in (("trainable", self.model.trainable_variables),
                                ("non_trainable", self.model.non_trainable_variables),
                                ("optimizer", self.optimizer.variables)):
            for variable, value in zip(variables, self.state[name]):
                variable.assign(np.asarray(value))

    def sums(self) -> tuple[float, float]:
        """The epoch's summed loss and number of correct predictions so far."""
        loss, correct = np.asarray(self.state["sums"]).tolist()
        return float(loss), float(correct)

    def reset_sums(self) -> None:
        self.set_sums(0.0, 0.0)

    def set_sums(self, loss: float, correct: float) -> None:
        """The running sums as a checkpoint kept them (a run resumed mid-epoch)."""
        sums = jnp.array([loss, correct], jnp.float32)
        self.state["sums"] = (sums if self._replicated is None
                              else jax.device_put(sums, self._replicated))

    def nonfinite(self) -> tuple[int, int]:
        """``(optimizer step, kind)`` where a non-finite value first appeared (``-1``:
        never); kind :data:`~alexnet_lib.errors.LOSS_OR_GRADIENTS` or ``STATE``."""
        at, kind = np.asarray(self.state["nonfinite"]).tolist()
        return int(at), int(kind)

    def __call__(self, iterator) -> None:
        x, y = next(iterator)
        if self._split is not None:
            x, y = jax.device_put(x, self._split), jax.device_put(np.asarray(y), self._split)
        # The variable's device value: no copy to the host, so nothing waits on the device.
        lr = jnp.asarray(keras.ops.convert_to_tensor(self.optimizer.learning_rate), jnp.float32)
        self.state = self._step(self.state, jnp.asarray(x), jnp.asarray(y), lr)

    # ---- the compiled step
    def _build(self):
        recipe, model, optimizer = self.recipe, self.model, self.optimizer
        num_classes, check = self.num_classes, self.check_finite
        global_batch = float(recipe.batch_size)
        decay = recipe.weight_decay if recipe.optimizer != "adamw" else 0.0
        decayed = [("kernel" in v.path) for v in model.trainable_variables]
        lr_index, iterations_index = self._lr_index, self._iterations_index

        def loss_fn(trainable, non_trainable, x, y):
            probs, non_trainable = model.stateless_call(trainable, non_trainable, x,
                                                        training=True)
            target = jax.nn.one_hot(y, num_classes)
            if recipe.label_smoothing:
                target = target * (1 - recipe.label_smoothing) + (
                    recipe.label_smoothing / num_classes)
            per_example = keras.losses.categorical_crossentropy(target, probs)
            return jnp.sum(per_example) / global_batch, (probs, per_example, non_trainable)

        gradient = jax.value_and_grad(loss_fn, has_aux=True)

        def step(state, x, y, lr):
            (loss, (probs, per_example, non_trainable)), grads = gradient(
                state["trainable"], state["non_trainable"], x, y)
            if decay:
                grads = [g + decay * w.astype(g.dtype) if d else g
                         for g, w, d in zip(grads, state["trainable"], decayed)]
            variables = list(state["optimizer"])
            variables[lr_index] = lr.astype(variables[lr_index].dtype)
            trainable, variables = optimizer.stateless_apply(variables, grads,
                                                             state["trainable"])
            correct = jnp.sum(jnp.argmax(probs, -1) == y).astype(jnp.float32)
            sums = state["sums"] + jnp.stack([jnp.sum(per_example).astype(jnp.float32),
                                              correct])
            flags = state["nonfinite"]
            if check:
                floats = [v for v in variables if jnp.issubdtype(v.dtype, jnp.floating)]
                inputs_bad = ~_finite([loss, *grads])
                state_bad = ~_finite([*trainable, *floats])
                first = (inputs_bad | state_bad) & (flags[0] < 0)
                kind = jnp.where(inputs_bad, LOSS_OR_GRADIENTS, STATE)
                at = variables[iterations_index].astype(jnp.int32)
                flags = jnp.where(first, jnp.stack([at, kind]).astype(jnp.int32), flags)
            return {"trainable": trainable, "non_trainable": non_trainable,
                    "optimizer": variables, "sums": sums, "nonfinite": flags}

        return step

    def arrays(self) -> dict[str, Any]:
        """The state as host arrays by name (what the resume state saves)."""
        return {name: [np.asarray(a) for a in self.state[name]]
                for name in ("trainable", "non_trainable", "optimizer")}
