"""Where a training run's time goes: the loop against the model's own speed, step by step.

Builds the ``Trainer`` of a recipe (default ``cpu``, with its network and batch) on the
CIFAR-10 JPEG copy and times, in one process:

1. start-up: loading the decoded images, the data fingerprint, the normalization
   statistics, building the model, and the first step (tracing and compiling it);
2. the compiled train step alone on one resident batch (what ``bench_train.py`` measures);
3. the same with the loop's per-step work (the learning rate, the step counter, the
   progress reads every ``steps/50`` steps);
4. the input pipeline alone (gathering, normalizing and augmenting batches, nothing trained);
5. the loop as ``Trainer.fit`` runs it: the real pipeline and the per-step work;
6. the end of an epoch: the validation pass, the resume checkpoint and the ``.keras`` export;
7. what the divergence check costs: the step alone built without it
   (``TrainStep(check_finite=False)``), against the step alone.

Every phase runs ``--steps`` steps (three rounds, best kept) so the per-step figures compare.

Usage:
    python benchmarks/bench_loop.py                  # ~4 min on 2 cores
    python benchmarks/bench_loop.py --recipe quick --steps 200
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import alexnet_lib.quiet  # noqa: F401  (before TensorFlow: hides its start-up lines)

# isort: split

import tensorflow as tf  # noqa: E402
from harness import best_of, host_line, table  # noqa: E402

from alexnet_lib.config import TrainConfig  # noqa: E402
from alexnet_lib.paths import shared_cifar10_jpeg  # noqa: E402
from alexnet_lib.train import Trainer, TrainStep  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="cpu")
    parser.add_argument("--data", default=str(shared_cifar10_jpeg()))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    run_dir = tempfile.mkdtemp(prefix="bench-loop-")
    rows = []
    try:
        started = time.perf_counter()
        trainer = Trainer(TrainConfig(preset="cifar", recipe=args.recipe, data=args.data,
                                      run_dir=run_dir + "/run"), log=open("/dev/null", "w"))
        built = time.perf_counter() - started
        data, step, schedule = trainer.datasets, trainer.step, trainer.schedule
        batch = data.batch_size
        steps = min(args.steps, data.steps_per_epoch)
        resident = next(iter(data.train(0)))
        constant = tf.data.Dataset.from_tensors(resident).repeat()

        started = time.perf_counter()
        step(iter(constant))
        first_step = time.perf_counter() - started
        rows.append(("start-up: data, normalization, model", built, None))
        rows.append(("start-up: the first step (tracing, compiling)", first_step, None))

        def alone(train_step):
            def run():
                iterator = iter(constant)
                for _ in range(steps):
                    train_step(iterator)
                train_step.sums()
            return run

        def loop(dataset_fn):
            def run():  # what Trainer's epoch does per step, with the same public parts
                iterator = iter(dataset_fn())
                every = max(1, data.steps_per_epoch // 50)
                for i in range(steps):
                    schedule.apply(i)
                    step(iterator)
                    if (i + 1) % every == 0:
                        step.sums()
                        trainer.check_finite()
            return run

        def pipeline_alone():
            for i, _ in enumerate(data.train(1)):
                if i + 1 == steps:
                    break

        unchecked = TrainStep(trainer.model, trainer.optimizer, trainer.recipe,
                              trainer.preset.num_classes, trainer.strategy, check_finite=False)
        unchecked(iter(constant))  # trace
        phases = (("train step alone, resident batch", alone(step)),
                  ("+ the loop's per-step work, resident batch", loop(lambda: constant)),
                  ("input pipeline alone (no training)", pipeline_alone),
                  ("the loop: pipeline + step + per-step work", loop(lambda: data.train(2))),
                  ("train step alone, without the divergence check", alone(unchecked)))
        for name, fn in phases:
            rows.append((name, best_of(args.rounds, fn), steps))

        val = data.val()
        rows.append(("end of epoch: validation pass "
                     f"({data.size('val')} images)",
                     best_of(1, lambda: trainer.evaluate_split(val)) if val else 0.0, None))
        rows.append(("end of epoch: resume checkpoint", best_of(1, lambda: trainer.save(1, 0)),
                     None))
        rows.append(("end of epoch: best.keras + last.keras",
                     best_of(1, lambda: trainer.export(best=True)), None))
        trainer.close()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)

    per_step = {name: seconds / n for name, seconds, n in rows if n}
    base = per_step["train step alone, resident batch"]
    print(f"# recipe {args.recipe}, batch {batch}, {steps} steps per phase (best of "
          f"{args.rounds})")
    print(host_line() + "\n")
    print(table(["phase", "seconds", "ms per step", "images/s", "share of the step alone's speed"],
                [(name, f"{seconds:.2f}", *((f"{1000 * seconds / n:.1f}",
                                             f"{batch * n / seconds:.0f}",
                                             f"{base * n / seconds:.0%}") if n else ("", "", "")))
                 for name, seconds, n in rows], right=(1, 2, 3, 4)))
    epoch_steps = data.steps_per_epoch
    loop_per = per_step["the loop: pipeline + step + per-step work"]
    ends = sum(s for name, s, n in rows if name.startswith("end of epoch"))
    epoch = epoch_steps * loop_per + ends
    check = base / per_step["train step alone, without the divergence check"] - 1
    print(f"\nAn epoch of {epoch_steps} steps: about {epoch:.0f} s "
          f"({epoch_steps * batch / epoch:.0f} training images/s, "
          f"{base * epoch_steps / epoch:.0%} of the step alone's speed). The divergence check "
          f"costs {check:+.1%} of the step alone.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
