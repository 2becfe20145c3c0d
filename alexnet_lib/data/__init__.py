"""Datasets: CIFAR-10 (download, verify, safe parsing)."""

from .cifar10 import (
    CIFAR10_ARCHIVES,
    CIFAR10_CLASSES,
    ChecksumError,
    DownloadError,
    download,
    load_cifar10,
    read_binary_batch,
    read_python_batch,
    safe_extract,
)

__all__ = [
    "CIFAR10_ARCHIVES",
    "CIFAR10_CLASSES",
    "ChecksumError",
    "DownloadError",
    "download",
    "load_cifar10",
    "read_binary_batch",
    "read_python_batch",
    "safe_extract",
]
