"""The compiled training step of the TensorFlow backend, and the state it owns.

One ``tf.function`` run by ``strategy.run`` under the default strategy,
``MirroredStrategy`` or ``MultiWorkerMirroredStrategy`` (Keras 3 ``model.fit`` fails under
the last one in TF 2.21): forward, loss (summed per example over the global batch, label
smoothing), the paper's weight decay, the update, and the epoch's running sums of the loss
and of correct predictions in sync-on-read variables.

Divergence is caught where it starts: every step checks the loss, the gradients and, after
the update, every weight and optimizer slot; the first optimizer step where any was
non-finite is kept, agreed by every replica, for the loop to read.
"""

from __future__ import annotations

from .. import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

from typing import Any

import keras
import tensorflow as tf

from ..config import Recipe
from ..errors import LOSS_OR_GRADIENTS, STATE
from .finite import float_state


def all_finite(tensors) -> tf.Tensor:
    """Whether every value of ``tensors`` is finite: one sum per tensor, which is NaN or
    infinite as soon as any element is (or when the values are astronomically large, which
    is divergence too)."""
    sums = [tf.reduce_sum(tf.cast(t, tf.float32)) for t in tensors if t is not None]
    return tf.math.is_finite(tf.add_n(sums)) if sums else tf.constant(True)


class TrainStep:
    """``step(iterator)``: one optimizer step on the next batch of ``iterator``.

    Args:
        check_finite: check the loss, gradients, weights and slots at every step (on by
            default; off only to measure what the check costs).

    The state it owns: :meth:`sums` (the epoch's summed loss and correct predictions,
    :meth:`reset_sums` at an epoch's start; also in the resume checkpoint, see
    :meth:`checkpoint_objects`) and :meth:`nonfinite` (where divergence started).
    """

    def __init__(self, model: keras.Model, optimizer, recipe: Recipe, num_classes: int,
                 strategy: tf.distribute.Strategy, check_finite: bool = True):
        self.model, self.optimizer, self.recipe = model, optimizer, recipe
        self.num_classes, self.strategy, self.check_finite = num_classes, strategy, check_finite
        with strategy.scope():
            on_read = dict(synchronization=tf.VariableSynchronization.ON_READ,
                           aggregation=tf.VariableAggregation.SUM)
            self.loss_sum = tf.Variable(0.0, dtype=tf.float32, trainable=False, **on_read)
            self.correct_sum = tf.Variable(0.0, dtype=tf.float32, trainable=False, **on_read)
            # The optimizer step at which a loss, a gradient or the updated state first held
            # a non-finite value, agreed by every replica; -1: never. Not checkpointed: no
            # checkpoint is written once it is set.
            self.nonfinite_at = tf.Variable(-1, dtype=tf.int64, trainable=False,
                                            name="nonfinite_at")
            self.nonfinite_kind = tf.Variable(0, dtype=tf.int64, trainable=False,
                                              name="nonfinite_kind")
        self._step = self._build()

    def __call__(self, iterator) -> None:
        self._step(iterator)

    def sync(self) -> None:
        """Nothing to do: the Keras variables are the state (the JAX step's ``sync`` writes
        its state into them)."""

    def reset_sums(self) -> None:
        self.loss_sum.assign(0.0)
        self.correct_sum.assign(0.0)

    def sums(self) -> tuple[float, float]:
        """The epoch's summed loss and number of correct predictions so far (all-reduced
        over the replicas: every worker must read them at the same steps)."""
        return float(self.loss_sum.read_value()), float(self.correct_sum.read_value())

    def nonfinite(self) -> tuple[int, int]:
        """``(optimizer step, kind)`` where a non-finite value first appeared (``-1``:
        never); kind :data:`LOSS_OR_GRADIENTS` or :data:`STATE`."""
        return int(self.nonfinite_at.numpy()), int(self.nonfinite_kind.numpy())

    def checkpoint_objects(self) -> dict[str, Any]:
        """What the resume checkpoint keeps of the step: the running sums (a run resumed
        mid-epoch reports the epoch's whole loss)."""
        return {"loss_sum": self.loss_sum, "correct_sum": self.correct_sum}

    def _build(self):
        recipe, model, optimizer = self.recipe, self.model, self.optimizer
        num_classes, check = self.num_classes, self.check_finite
        global_batch = float(recipe.batch_size)
        decay = recipe.weight_decay if recipe.optimizer != "adamw" else 0.0
        decayed_ids = {id(v) for v in model.trainable_variables if "kernel" in v.path}
        scaled = recipe.precision == "mixed_float16"
        loss_sum, correct_sum = self.loss_sum, self.correct_sum

        def replica_step(x, y):
            with tf.GradientTape() as tape:
                probs = model(x, training=True)
                target = tf.one_hot(y, num_classes)
                if recipe.label_smoothing:
                    smoothing = recipe.label_smoothing
                    target = target * (1 - smoothing) + smoothing / num_classes
                per_example = keras.losses.categorical_crossentropy(target, probs)
                loss = tf.reduce_sum(per_example) / global_batch
                scaled_loss = optimizer.scale_loss(loss) if scaled else loss
            variables = model.trainable_variables
            grads = tape.gradient(scaled_loss, variables)
            if decay:
                grads = [g + decay * tf.cast(v, g.dtype) if id(v) in decayed_ids else g
                         for g, v in zip(grads, variables)]
            optimizer.apply_gradients(zip(grads, variables))
            correct = tf.cast(tf.equal(tf.argmax(probs, -1, output_type=tf.int32),
                                       tf.cast(y, tf.int32)), tf.float32)
            loss_sum.assign_add(tf.reduce_sum(per_example))
            correct_sum.assign_add(tf.reduce_sum(correct))
            if not check:
                return tf.zeros([2], tf.float32)
            # Where divergence starts: the loss and gradients (a loss-scaled float16 step
            # skips non-finite gradients itself), then every weight and optimizer slot after
            # the update -- an update can overflow the state while the loss is still finite.
            inputs_bad = tf.logical_not(all_finite([loss] + ([] if scaled else grads)))
            state_bad = tf.logical_not(all_finite(float_state(model, optimizer)))
            return tf.stack([tf.cast(inputs_bad, tf.float32), tf.cast(state_bad, tf.float32)])

        # XLA compiles the replica's computation; the iterator stays outside it.
        replica = (tf.function(replica_step, jit_compile=True) if recipe.jit_compile
                   else replica_step)
        strategy = self.strategy
        nonfinite_at, nonfinite_kind = self.nonfinite_at, self.nonfinite_kind

        def step(iterator):
            x, y = next(iterator)
            flags = strategy.run(replica, args=(x, y))
            # Summed over the replicas (and workers), so that all of them agree.
            flags = strategy.reduce(tf.distribute.ReduceOp.SUM, flags, axis=None)
            first = tf.logical_and(tf.reduce_any(flags > 0), nonfinite_at < 0)
            kind = tf.where(flags[0] > 0, tf.constant(LOSS_OR_GRADIENTS, tf.int64),
                            tf.constant(STATE, tf.int64))
            nonfinite_at.assign(tf.where(first, tf.cast(optimizer.iterations, tf.int64),
                                         nonfinite_at))
            nonfinite_kind.assign(tf.where(first, kind, nonfinite_kind))

        return tf.function(step)
