"""The ``train`` command with an optimizer variant that is not a recipe field, for measuring it.

Two variants, measured on the ``cpu`` recipe (docs/benchmarks.md, "Levers at make train's
budget") and not kept, so they stay here rather than in the recipe:

* ``--beta-1``, ``--beta-2``: AdamW's moment decay rates (Keras' defaults: 0.9, 0.999).
* ``--lookahead K``: Lookahead (Zhang et al. 2019) around the recipe's optimizer: a slow copy
  of the weights starts from the weights training starts from (after conv1's whitening) and
  every ``K`` optimizer steps moves ``--lookahead-alpha`` of the way to the trained (fast)
  weights, which then restart from it. The slow copy is not checkpointed: a run measured with
  it must not be interrupted.

Everything after ``--`` is the ``python -m alexnet_lib`` command line.

Usage:
    python benchmarks/train_variant.py --beta-2 0.99 -- train \\
        --data ../shared/datasets/cifar10-jpeg --run-dir runs/lev-beta2
    python benchmarks/train_variant.py --lookahead 5 -- train \\
        --data ../shared/datasets/cifar10-jpeg --run-dir runs/lev-lookahead
"""

from __future__ import annotations

import argparse
import functools

import alexnet_lib.quiet  # noqa: F401  (before TensorFlow: hides its start-up lines)

# isort: split

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from alexnet_lib import cli  # noqa: E402
from alexnet_lib import train as train_module  # noqa: E402


def with_adamw_betas(beta_1: float | None, beta_2: float | None) -> None:
    betas = {k: v for k, v in (("beta_1", beta_1), ("beta_2", beta_2)) if v is not None}
    if betas:
        keras.optimizers.AdamW = functools.partial(keras.optimizers.AdamW, **betas)
        print(f"AdamW with {betas}", flush=True)


def with_lookahead(every: int, alpha: float) -> None:
    build = train_module.Trainer._build_train_step

    def build_with_lookahead(trainer):
        step = build(trainer)
        fast = trainer.model.trainable_variables
        # The trainer builds its step after conv1's whitening: the slow copy starts there.
        slow = [tf.Variable(v, trainable=False) for v in fast]
        iterations = trainer.optimizer.iterations

        @tf.function
        def synchronize():
            def move():
                for s, v in zip(slow, fast):
                    s.assign(s + alpha * (v - s))
                    v.assign(s)
                return tf.constant(0)
            tf.cond(tf.equal(iterations % every, 0), move, lambda: tf.constant(0))

        def step_with_lookahead(iterator):
            step(iterator)
            synchronize()

        return step_with_lookahead

    train_module.Trainer._build_train_step = build_with_lookahead
    print(f"Lookahead every {every} steps, alpha {alpha}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beta-1", type=float)
    parser.add_argument("--beta-2", type=float)
    parser.add_argument("--lookahead", type=int, default=0, metavar="K")
    parser.add_argument("--lookahead-alpha", type=float, default=0.5)
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="-- then the alexnet_lib command line")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the alexnet_lib command after --, e.g. -- train --data DIR")
    with_adamw_betas(args.beta_1, args.beta_2)
    if args.lookahead:
        with_lookahead(args.lookahead, args.lookahead_alpha)
    return cli.main(command)


if __name__ == "__main__":
    raise SystemExit(main())
