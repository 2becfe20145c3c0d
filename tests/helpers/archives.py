"""CIFAR-10 archives built in the tests: batches of known random records, in the binary or
the Python-pickle layout, packed as the official .tar.gz files are."""

import io
import pickle
import tarfile

import numpy as np

N = 4  # records per batch


def batch_arrays(seed, n=N):
    """``n`` random 32x32 images and their labels (uint8)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    return images, labels


def binary_bytes(images, labels):
    """One batch in the binary layout: per record a label byte, then the R, G, B planes."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return np.concatenate([labels[:, None], planes], axis=1).tobytes()


def python_bytes(images, labels):
    """One batch in the Python layout: a pickled dict of ``data`` and ``labels``."""
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return pickle.dumps({b"data": data, b"labels": [int(v) for v in labels]}, protocol=2)


def make_tar(path, files):
    """A .tar.gz at ``path`` holding ``files`` (name -> bytes)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path
