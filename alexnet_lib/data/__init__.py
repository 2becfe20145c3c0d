"""The data: sources, per-batch transforms and the training pipelines.

* :mod:`.cifar10` -- CIFAR-10 downloaded, verified (SHA-256) and parsed safely.
* :mod:`.folders` -- any class-folder tree (``<root>/<split>/<class>/<image>``), decoded
  in parallel and cached.
* :mod:`.transforms` -- per-batch normalization, crops, flips, colour jitter and the
  test-time views, shared by training, evaluation, ``predict``, ``export`` and analysis.
* :mod:`.datasets` -- ``make_datasets``: the splits in memory and the ``tf.data`` pipelines
  over them.

Importing this package loads only :mod:`.cifar10` (no TensorFlow).
"""

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
