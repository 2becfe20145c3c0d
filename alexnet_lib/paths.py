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
