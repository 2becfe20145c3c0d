"""Where data and runs live. Anchored on the project, overridable by parameters and
environment variables; nothing depends on the working directory."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_ENV = "ALEXNET_DATA_DIR"


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The download cache: ``override``, else ``$ALEXNET_DATA_DIR``, else ``<project>/data``."""
    if override is not None:
        return Path(override).expanduser().resolve()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser().resolve()
    return PROJECT_ROOT / "data"


def shared_cifar10_jpeg() -> Path:
    """The CIFAR-10 JPEG class-folder copy kept beside the project (``../shared/datasets``)."""
    return PROJECT_ROOT.parent / "shared" / "datasets" / "cifar10-jpeg"


RUNS_ENV = "ALEXNET_RUNS_DIR"


def runs_dir() -> Path:
    """Where run folders go by default: ``$ALEXNET_RUNS_DIR``, else ``<project>/runs``."""
    if os.environ.get(RUNS_ENV):
        return Path(os.environ[RUNS_ENV]).expanduser().resolve()
    return PROJECT_ROOT / "runs"


def project_path(path: str | os.PathLike) -> Path:
    """``path`` itself when absolute, else relative to the project root (notebooks run
    from ``notebooks/`` under Jupyter but from the root under papermill); a relative path
    that starts with ``runs/`` is under :func:`runs_dir`."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    if path.parts and path.parts[0] == "runs":
        return runs_dir().joinpath(*path.parts[1:])
    return PROJECT_ROOT / path


def shipped_run() -> Path:
    """The default recipe's trained run that comes with the project (``models/cifar-cpu``):
    a run folder without its resume checkpoints (configuration, normalization, history,
    metrics and ``checkpoints/best.keras``)."""
    return PROJECT_ROOT / "models" / "cifar-cpu"


def shipped_model() -> Path:
    """The shipped run's model, which ``predict`` uses when no checkpoint is named."""
    return shipped_run() / "checkpoints" / "best.keras"
