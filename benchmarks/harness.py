"""The benchmarks' timing harness: one way to time, to compare and to say where.

* :func:`host_line`: the machine a figure was measured on (CPU model and flags, cores,
  TensorFlow and Keras versions), printed first by every benchmark.
* :func:`best_of`: the shortest of ``rounds`` timings of one callable.
* :class:`Rate` and :func:`interleaved`: throughput of several variants measured round by
  round, each round at least ``seconds`` long, so that drift in the machine's speed hits
  them alike; the best round of each is kept.
* :func:`table`: a Markdown table.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Callable, Iterable, Sequence

from alexnet_lib.precision import cpu_flags, cpu_model


def host_line() -> str:
    """``# <CPU model>, N CPUs, flags ..., TF x, Keras y`` (the versions of what is loaded)."""
    import sys

    flags = sorted(f for f in cpu_flags() if f.startswith(("avx", "amx")) or f == "fma")
    versions = [f"{name} {sys.modules[module].__version__}"
                for name, module in (("TF", "tensorflow"), ("Keras", "keras"), ("JAX", "jax"))
                if getattr(sys.modules.get(module), "__version__", None)]
    return (f"# {cpu_model()} ({platform.machine()}), {os.cpu_count()} CPUs, flags: "
            f"{' '.join(flags) or 'none listed'}; {', '.join(versions)}")


def best_of(rounds: int, fn: Callable[[], object]) -> float:
    """The shortest wall time of ``rounds`` calls of ``fn``, in seconds."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


class Rate:
    """A variant whose ``step()`` processes ``batch`` images; :meth:`round` measures its
    images/s over at least ``seconds`` and ``min_steps`` steps."""

    def __init__(self, name: str, step: Callable[[], object], batch: int):
        self.name, self.step, self.batch = name, step, batch
        self.rates: list[float] = []

    def round(self, seconds: float, min_steps: int) -> float:
        steps, started = 0, time.perf_counter()
        while steps < min_steps or time.perf_counter() - started < seconds:
            self.step()
            steps += 1
        self.rates.append(steps * self.batch / (time.perf_counter() - started))
        return self.rates[-1]

    @property
    def best(self) -> float:
        return max(self.rates)


def interleaved(variants: Sequence[Rate], *, rounds: int = 3, seconds: float = 10.0,
                min_steps: int = 2, warm_up: int = 2,
                log: Callable[[str], None] = lambda line: print(line, flush=True)) -> None:
    """Warm each variant up (tracing), then measure all of them round by round."""
    for variant in variants:
        for _ in range(warm_up):
            variant.step()
    for r in range(rounds):
        for variant in variants:
            rate = variant.round(seconds, min_steps)
            log(f"round {r + 1}: {variant.name:32s} {rate:8.1f} img/s")


def table(header: Sequence[str], rows: Iterable[Sequence[object]],
          right: Sequence[int] = ()) -> str:
    """A Markdown table; the columns in ``right`` are right-aligned (numbers)."""
    rule = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
