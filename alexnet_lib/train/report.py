"""What a run tells: its messages, a progress bar per epoch (``keras.utils.Progbar``), the
devices line and the TensorBoard scalars of every epoch (TensorBoard's own event writer, no
TensorFlow needed). Only the chief worker of a cluster speaks and writes."""

from __future__ import annotations

from .. import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import sys
from pathlib import Path
from typing import Any, TextIO

import keras
from tensorboard.summary import Writer

from ..backend import backend_name, backend_version, devices

# The epoch scalars written to TensorBoard.
SCALARS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr")


class Reporter:
    """Messages to ``stream`` (default stdout), progress bars while the stream is standard
    output (``keras.utils.Progbar`` writes there), TensorBoard scalars into ``tensorboard``.
    """

    def __init__(self, tensorboard: Path, *, is_chief: bool = True, stream: TextIO | None = None):
        self.is_chief, self.tensorboard = is_chief, tensorboard
        self.stream = stream or sys.stdout
        self._writer: Writer | None = None  # created with the first epoch's scalars
        self._bar: keras.utils.Progbar | None = None

    def say(self, text: str) -> None:
        if self.is_chief:
            print(text, file=self.stream, flush=True)

    def start_epoch(self, epoch: int, epochs: int, steps: int, start_step: int) -> None:
        """A progress bar for epoch ``epoch`` (0-based) of ``steps`` steps, from
        ``start_step`` (a resumed epoch)."""
        self.say(f"Epoch {epoch + 1}/{epochs}")
        shown = self.is_chief and self.stream in (sys.stdout, sys.__stdout__)
        self._bar = keras.utils.Progbar(steps, verbose=1 if shown else 0, interval=0.0,
                                        stateful_metrics=("loss", "accuracy"))
        if start_step:
            self._bar.update(start_step)

    def progress(self, step: int, loss: float, accuracy: float) -> None:
        """The epoch's running loss and accuracy after ``step`` steps."""
        if self._bar is not None:
            self._bar.update(step, [("loss", loss), ("accuracy", accuracy)])

    def end_epoch(self, row: dict[str, Any]) -> None:
        """Close the epoch's bar, print its validation scores, and write its scalars."""
        if self._bar is not None:
            self._bar.update(self._bar.target, [("loss", row["loss"]),
                                                ("accuracy", row["accuracy"])])
            self._bar = None
        if row.get("val_loss") is not None:
            self.say(f"  validation loss {row['val_loss']:.4f} "
                     f"accuracy {row['val_accuracy']:.4f}")
        if self.is_chief:
            if self._writer is None:
                self.tensorboard.mkdir(parents=True, exist_ok=True)
                self._writer = Writer(str(self.tensorboard))
            for key in SCALARS:
                if row.get(key) is not None:
                    self._writer.add_scalar(key, float(row[key]), step=row["epoch"] + 1)
            self._writer.flush()


    def close(self) -> None:
        """Close the TensorBoard writer (``fit`` does this when it returns or fails)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def backend_info() -> dict[str, Any]:
    """Keras's backend: its name, version and devices (as ``resolved.yaml`` records them),
    and Keras's version."""
    return {"name": backend_name(), "version": backend_version(), "keras": keras.__version__,
            "devices": devices()}


def devices_line(devices: list[str], replicas: int, tower_devices: list[str] | None,
                 precision: str, reason: str) -> str:
    """One line: where the run computes, on which Keras backend, in which precision and
    why."""
    placed = f"; towers on {', '.join(tower_devices)}" if tower_devices else ""
    return (f"Devices: {', '.join(devices)} ({replicas} replica{'s' * (replicas > 1)}"
            f"{placed}); backend {backend_name()} {backend_version()}; precision {precision} "
            f"({reason}).")
