"""The resume state of the JAX backend: checkpoints as arrays plus a small JSON record.

``checkpoints/ckpt-N.npz`` holds every variable of the model (dropout's random state
included) and of the optimizer, by position; ``ckpt-N.json`` the loop's numbers (epoch, step
within it, the schedule's plateau state, the running sums); ``checkpoint.json`` the index of
the two kept. Each file is written whole through a temporary name and one rename, the index
last, so a ``kill -9`` at any moment leaves the previous checkpoint loadable; a damaged newest
one falls back to the one before it, as on TensorFlow (:mod:`.state`).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from ..files import remove_debris, remove_path, write_atomic, write_through
from ..runs import MODEL_FILES, RUN_FILES, RunFolder
from .schedule import Schedule
from .step_jax import JaxTrainStep

INDEX = "checkpoint.json"
KEEP = 2
_NAME = re.compile(r"(ckpt-\d+)\.(npz|json)")


class JaxResumeState:
    """The resume checkpoints of one run folder on the JAX backend (one process writes).

    Attributes:
        epoch, step: where the run is (0-based epoch; optimizer steps done in it), as
            restored or last saved.
    """

    def __init__(self, run: RunFolder, model: keras.Model, optimizer, step: JaxTrainStep,
                 schedule: Schedule, *, say: Callable[[str], None]):
        self.run, self.model, self.optimizer = run, model, optimizer
        self.train_step, self.schedule, self.say = step, schedule, say
        self.epoch, self.step = 0, 0
        self.folder = run.checkpoints

    @property
    def checkpoints(self) -> list[str]:
        """The kept checkpoints' prefixes (``<folder>/ckpt-N``), oldest first."""
        try:
            names = json.loads((self.folder / INDEX).read_text())["checkpoints"]
        except (OSError, ValueError, KeyError, TypeError):
            return []
        return [str(self.folder / n) for n in names if isinstance(n, str) and _NAME.fullmatch(
            f"{n}.npz")]

    @property
    def latest(self) -> str | None:
        kept = self.checkpoints
        return kept[-1] if kept else None

    def save(self, epoch: int, step: int) -> None:
        """A checkpoint at ``(epoch, step)``, numbered by the optimizer's step counter."""
        self.epoch, self.step = epoch, step
        arrays = self.train_step.arrays()
        iterations = int(next(a for a, v in zip(arrays["optimizer"], self.optimizer.variables)
                              if v.path.endswith("/iteration")))
        name = f"ckpt-{iterations}"
        flat = {f"{group}_{i}": a for group in arrays for i, a in enumerate(arrays[group])}

        def write_npz(path):
            buffer = io.BytesIO()
            np.savez(buffer, **flat)
            Path(path).write_bytes(buffer.getvalue())

        self.folder.mkdir(parents=True, exist_ok=True)
        write_through(self.folder / f"{name}.npz", write_npz)
        loss, correct = self.train_step.sums()
        write_atomic(self.folder / f"{name}.json", json.dumps({
            "epoch": epoch, "step": step, "schedule": self.schedule.state(),
            "sums": [loss, correct], "iterations": iterations}))
        kept = [Path(p).name for p in self.checkpoints if Path(p).name != name][-(KEEP - 1):]
        kept.append(name)
        write_atomic(self.folder / INDEX, json.dumps({"checkpoints": kept}))
        for old in self._outside(kept):
            remove_path(old)

    def _outside(self, kept: list[str]) -> list[Path]:
        """The checkpoint files of the folder whose checkpoint is not in ``kept``."""
        if not self.folder.is_dir():
            return []
        return [p for p in self.folder.iterdir()
                if (match := _NAME.fullmatch(p.name)) and match[1] not in kept]

    def restore(self) -> bool:
        """Restore the newest readable checkpoint, if any. Returns whether one was found.

        Raises:
            ValueError: when checkpoints exist but none can be read.
        """
        candidates = list(reversed(self.checkpoints))
        for i, prefix in enumerate(candidates):
            try:
                self._load(prefix)
            except Exception as error:  # noqa: BLE001  (any damage: report, try the older one)
                reason = " ".join(str(error).split())[:200] or type(error).__name__
                self.say(f"warning: checkpoint {prefix} cannot be read ({reason})"
                         + ("; trying the previous one." if i + 1 < len(candidates) else "."))
                continue
            return True
        if candidates:
            raise ValueError(
                f"No checkpoint in {self.folder} can be read ({', '.join(candidates)}). "
                f"Move the folder aside to start over, or pass a new --run-dir.")
        return False

    def _load(self, prefix: str) -> None:
        record = json.loads(Path(f"{prefix}.json").read_text())
        groups = {"trainable": self.model.trainable_variables,
                  "non_trainable": self.model.non_trainable_variables,
                  "optimizer": self.optimizer.variables}
        with np.load(f"{prefix}.npz", allow_pickle=False) as data:
            values = {group: [data[f"{group}_{i}"] for i in range(len(variables))]
                      for group, variables in groups.items()}
        for group, variables in groups.items():
            for variable, value in zip(variables, values[group]):
                if tuple(value.shape) != tuple(variable.shape):
                    raise ValueError(f"{variable.path} has shape {value.shape}, the model's "
                                     f"{tuple(variable.shape)}")
        for group, variables in groups.items():
            for variable, value in zip(variables, values[group]):
                variable.assign(value)
        self.train_step.load()
        self.train_step.set_sums(*record["sums"])
        self.schedule.load(record["schedule"])
        self.epoch, self.step = int(record["epoch"]), int(record["step"])

    def remove_debris(self) -> list[Path]:
        """Remove what crashed writers left: temporary files, and checkpoint files that no
        index names. Returns what was removed."""
        removed = (remove_debris(self.run.path, RUN_FILES)
                   + remove_debris(self.folder, [*MODEL_FILES, "ckpt-*.npz", "ckpt-*.json",
                                                 INDEX]))
        for path in self._outside([Path(p).name for p in self.checkpoints]):
            remove_path(path)
            removed.append(path)
        return removed

    def close(self) -> None:
        """Nothing to release (kept for the loop's symmetry with :class:`~.state.ResumeState`)."""
