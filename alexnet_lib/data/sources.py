"""Data sources, without TensorFlow: naming one (``cifar10``, a CIFAR-10 archive or folder,
a class-folder tree), loading its splits into memory as uint8 arrays, and the fingerprint
that tells two copies of the same data from different data.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..paths import data_dir as default_data_dir
from .cifar10 import CIFAR10_CLASSES, load_cifar10
from .folders import load_class_folders


def resolve_source(source: str | os.PathLike) -> str:
    """``"cifar10"`` as it is; a path made absolute (``~`` expanded), so that a run folder
    records the data it was trained on whatever the working directory is later."""
    text = str(source)
    return text if text == "cifar10" else os.path.abspath(os.path.expanduser(text))


def data_fingerprint(splits: dict, class_names) -> str:
    """A digest of the class names and of every image and label of every split: equal for
    two copies of the same data wherever they are, different when any image differs."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(repr(tuple(class_names)).encode())
    for split in sorted(splits):
        images, labels = splits[split]
        digest.update(f"|{split}|{len(labels)}|".encode())
        digest.update(np.ascontiguousarray(labels, np.int64).tobytes())
        for block in ([images] if isinstance(images, np.ndarray) else images):
            digest.update(repr(block.shape).encode())
            digest.update(np.ascontiguousarray(block).data)
    return digest.hexdigest()


def load_source(source: str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
                skip_corrupt: bool = False) -> tuple[dict, tuple[str, ...], list[Path]]:
    """``({split: (images, labels)}, class_names, skipped)`` for any supported source.

    ``source`` is ``"cifar10"`` (download or cache), an official CIFAR-10 archive, its
    extracted folder, or a class-folder tree.
    """
    text = str(source)
    path = Path(text).expanduser()
    if text != "cifar10" and not path.exists():
        raise FileNotFoundError(
            f"Data source {text!r} does not exist. Use 'cifar10' (download to the data folder), "
            f"the path of the CIFAR-10 archive or its extracted folder, or a class-folder tree "
            f"such as ../shared/datasets/cifar10-jpeg.")
    is_cifar = text == "cifar10" or path.is_file() or any(
        (p / "test_batch.bin").exists() or (p / "test_batch").exists()
        for p in [path, *path.glob("cifar-10-batches-*")])
    if is_cifar:
        splits = load_cifar10(source, data_dir_override=data_dir)
        return ({k: (x, y.astype(np.int32)) for k, (x, y) in splits.items()},
                CIFAR10_CLASSES, [])
    folders = load_class_folders(path, skip_corrupt=skip_corrupt,
                                 cache_dir=default_data_dir(data_dir) / "cache")
    return folders.splits, folders.class_names, folders.skipped
