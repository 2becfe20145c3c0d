"""Where a training run's time goes: the loop against the model's own speed, step by step.

Builds the ``Trainer`` of a recipe (default ``cpu``: the ``cifar`` preset, batch 32) on the
CIFAR-10 JPEG copy and times, in one process:

1. start-up: loading the decoded images, the data fingerprint, the normalization
   statistics, building the model, and the first step (tracing and compiling it);
2. the compiled train step alone on one resident batch (what ``bench_train.py`` measures);
3. the same with the loop's per-step work (the learning rate, the step counter, the
   progress reads every ``steps/50`` steps);
4. the input pipeline alone (gathering, normalizing and augmenting batches, nothing trained);
5. the loop as ``Trainer.fit`` runs it: the real pipeline and the per-step work;
6. the end of an epoch: the validation pass, the resume checkpoint and the ``.keras`` export.

Every phase runs ``--steps`` steps (three rounds, best kept) so the per-step figures compare.

Usage:
    python benchmarks/bench_loop.py                  # ~3 min on 2 cores
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

from alexnet_lib.config import TrainConfig  # noqa: E402
from alexnet_lib.paths import shared_cifar10_jpeg  # noqa: E402
from alexnet_lib.precision import cpu_model  # noqa: E402
from alexnet_lib.train import Trainer  # noqa: E402


def best_of(rounds: int, fn) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


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
        data = trainer.datasets
        batch = data.batch_size
        steps = min(args.steps, data.steps_per_epoch)
        resident = next(iter(data.train(0)))
        constant = tf.data.Dataset.from_tensors(resident).repeat()

        started = time.perf_counter()
        trainer._train_step(iter(constant))
        first_step = time.perf_counter() - started
        rows.append(("start-up: data, normalization, model", built, None))
        rows.append(("start-up: the first step (tracing, compiling)", first_step, None))

        def step_alone():
            iterator = iter(constant)
            for _ in range(steps):
                trainer._train_step(iterator)
            trainer.loss_sum.read_value().numpy()

        def loop(dataset_fn):
            def run():
                iterator = iter(dataset_fn())
                every = max(1, data.steps_per_epoch // 50)
                for step in range(steps):
                    trainer._set_lr(step)
                    trainer._train_step(iterator)
                    trainer.step_in_epoch.assign(step + 1)
                    if (step + 1) % every == 0:
                        float(trainer.loss_sum.read_value())
                        float(trainer.correct_sum.read_value())
            return run

        def pipeline_alone():
            for i, _ in enumerate(data.train(1)):
                if i + 1 == steps:
                    break

        phases = (("train step alone, resident batch", step_alone),
                  ("+ the loop's per-step work, resident batch", loop(lambda: constant)),
                  ("input pipeline alone (no training)", pipeline_alone),
                  ("the loop: pipeline + step + per-step work", loop(lambda: data.train(2))))
        for name, fn in phases:
            seconds = best_of(args.rounds, fn)
            rows.append((name, seconds, steps))

        val = data.val()
        rows.append(("end of epoch: validation pass "
                     f"({data.size('val')} images)",
                     best_of(1, lambda: trainer.evaluate_split(val)) if val else 0.0, None))
        rows.append(("end of epoch: resume checkpoint", best_of(1, trainer._save), None))
        rows.append(("end of epoch: best.keras + last.keras",
                     best_of(1, lambda: trainer._export(best=True)), None))
        trainer.close()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)

    alone = next(s for name, s, n in rows if name.startswith("train step alone")) / steps
    print(f"# recipe {args.recipe}, batch {batch}, {steps} steps per phase (best of "
          f"{args.rounds}); {cpu_model()}\n")
    print("| phase | seconds | ms per step | images/s | share of the step alone's speed |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds, n in rows:
        if n is None:
            print(f"| {name} | {seconds:.2f} | | | |")
        else:
            per = seconds / n
            print(f"| {name} | {seconds:.2f} | {1000 * per:.1f} | {batch / per:.0f} | "
                  f"{alone / per:.0%} |")
    epoch_steps = data.steps_per_epoch
    loop_per = rows[-4][1] / steps
    ends = sum(s for name, s, n in rows if name.startswith("end of epoch"))
    epoch = epoch_steps * loop_per + ends
    print(f"\nAn epoch of {epoch_steps} steps: about {epoch:.0f} s "
          f"({epoch_steps * batch / epoch:.0f} training images/s, "
          f"{alone * epoch_steps / epoch:.0%} of the step alone's speed).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
