"""CIFAR-10: download with verification, safe extraction, and parsing that never runs code.

* The download streams to a temporary ``.<name>.<host>-<pid>.tmp.part`` beside the target,
  hashes while it writes,
  retries a broken transfer, and is renamed to its final name only after the SHA-256
  matched. A wrong checksum removes the partial file.
* Extraction goes to a temporary folder beside the target and refuses members that
  would leave it (absolute paths, ``..``, links pointing outside, devices); the folder
  is renamed into place only when everything was extracted.
* The binary format (``cifar-10-batches-bin``) is parsed with NumPy. The python format
  (``cifar-10-batches-py``) is unpickled only after the file's MD5 matched the official
  one, and then with an unpickler that can build nothing but plain containers and NumPy
  arrays.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import http.client
import io
import os
import pickle
import shutil
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from ..files import check_writable, move_into_place, remove_debris, temp_name
from ..paths import DATA_ENV, data_dir

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
RECORD_BYTES = 1 + 32 * 32 * 3


@dataclasses.dataclass(frozen=True)
class Archive:
    url: str
    filename: str
    sha256: str
    folder: str  # the folder the archive extracts to


CIFAR10_ARCHIVES = {
    "binary": Archive(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        filename="cifar-10-binary.tar.gz",
        sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
        folder="cifar-10-batches-bin",
    ),
    "python": Archive(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        filename="cifar-10-python.tar.gz",
        sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
        folder="cifar-10-batches-py",
    ),
}
# What this module writes in the data folder: the archives, their extracted folders and the
# writability probe -- the only names whose temporary files it cleans there.
DATA_FOLDER_FILES = (*(a.filename for a in CIFAR10_ARCHIVES.values()), "*.extracted",
                     "write-check")
# MD5 of each official python-format batch: checked before any of them is unpickled.
PYTHON_BATCH_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


class DownloadError(RuntimeError):
    """The archive could not be fetched."""


class ChecksumError(ValueError):
    """A file's checksum differs from the published one."""


def _hash(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _progress(done: int, total: int | None, start: float, stream=sys.stderr) -> None:
    rate = done / max(time.monotonic() - start, 1e-6) / 1e6
    if total:
        width = 30
        filled = int(width * done / total)
        stream.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] "
                     f"{done / 1e6:7.1f}/{total / 1e6:.1f} MB {rate:5.1f} MB/s")
    else:
        stream.write(f"\r  {done / 1e6:7.1f} MB {rate:5.1f} MB/s")
    stream.flush()


def download(url: str, dest: str | os.PathLike, sha256: str, *, retries: int = 3,
             timeout: float = 60.0, progress: bool = True) -> Path:
    """Fetch ``url`` to ``dest`` atomically, verified against ``sha256``.

    An existing ``dest`` with the right checksum is reused; one with a wrong checksum is
    moved aside to ``dest + ".corrupt"`` and fetched again. The bytes go to a temporary
    ``.part`` file beside it (left-overs of crashed downloads are removed); a broken
    transfer is retried up to ``retries`` times; the part file becomes ``dest`` only after
    its checksum matched.

    Raises:
        DownloadError: naming the URL, when every attempt failed.
        ChecksumError: when the complete file has the wrong checksum (it is removed).
    """
    dest = Path(dest)
    if dest.exists():
        if _hash(dest, "sha256") == sha256:
            return dest
        quarantine = dest.with_name(dest.name + ".corrupt")
        os.replace(dest, quarantine)
        print(f"{dest} had the wrong SHA-256; moved it to {quarantine} and downloading again.",
              file=sys.stderr)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_debris(dest.parent, [dest.name])
    part = temp_name(dest, ".part")
    last_error: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            digest = hashlib.sha256()
            with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as f:
                total = response.length
                done, start = 0, time.monotonic()
                if progress:
                    print(f"Downloading {url}", file=sys.stderr)
                while block := response.read(1 << 20):
                    f.write(block)
                    digest.update(block)
                    done += len(block)
                    if progress:
                        _progress(done, total, start)
                if progress:
                    print(file=sys.stderr)
                if total is not None and done != total:
                    raise DownloadError(f"transfer ended after {done} of {total} bytes")
            break
        except (OSError, http.client.HTTPException, DownloadError) as error:
            last_error = error
            part.unlink(missing_ok=True)
            if attempt < retries:
                time.sleep(min(2 ** attempt, 10) * 0.1)
    else:
        raise DownloadError(
            f"Could not download {url} after {retries} attempts ({last_error}). Without "
            f"network access, point the project at a local copy: pass the archive, its "
            f"extracted folder or a class-folder tree as the data source (for example "
            f"DATA=../shared/datasets/cifar10-jpeg), or put {dest.name} in the data folder "
            f"({dest.parent}; set {DATA_ENV} to use another)."
        )
    actual = digest.hexdigest()
    if actual != sha256:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{url} downloaded with SHA-256 {actual}, expected {sha256}; the file was "
            f"removed. Try again later, or use a local copy you trust."
        )
    os.replace(part, dest)
    return dest


def _check_member(member: tarfile.TarInfo, target: Path) -> None:
    name = member.name
    resolved = (target / name).resolve()
    if os.path.isabs(name) or not resolved.is_relative_to(target):
        raise ValueError(f"Refusing archive member {name!r}: it would be written outside "
                         f"{target}. The archive is not a CIFAR-10 archive.")
    if member.issym() or member.islnk():
        link_base = resolved.parent if member.issym() else target
        link = (link_base / member.linkname).resolve()
        if os.path.isabs(member.linkname) or not link.is_relative_to(target):
            raise ValueError(f"Refusing archive member {name!r}: link to {member.linkname!r} "
                             f"points outside {target}.")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise ValueError(f"Refusing archive member {name!r}: not a file or folder.")


def safe_extract(archive: str | os.PathLike, target_dir: str | os.PathLike) -> Path:
    """Extract a tar archive into ``target_dir`` refusing members that leave it.

    Extraction happens in a temporary folder beside ``target_dir``; each top-level entry
    is moved into place only after the whole archive extracted, so a failure leaves
    nothing half-extracted where a reader would look.

    Raises:
        ValueError: naming the offending member (``..``, absolute path, outside link,
            device), or when the file is not a readable tar archive.
    """
    archive, target_dir = Path(archive), Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    remove_debris(target_dir, ["extract"])
    tmp = temp_name(target_dir / "extract")
    tmp.mkdir()
    try:
        try:
            with tarfile.open(archive) as tar:
                members = tar.getmembers()
                for member in members:
                    _check_member(member, tmp.resolve())
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(tmp, members=members, filter="data")
                else:  # Python < 3.11.4: members were checked above
                    tar.extractall(tmp, members=members)
        except (tarfile.TarError, EOFError, OSError) as error:
            raise ValueError(f"{archive} is not a readable tar archive ({error}); it may be "
                             f"truncated or corrupt. Delete it and download it again.") from error
        for entry in tmp.iterdir():
            move_into_place(entry, target_dir / entry.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target_dir


def read_binary_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One binary-format batch: ``(images uint8 [N, 32, 32, 3], labels uint8 [N])``.

    Each record is a label byte followed by the R, G, B planes of a 32x32 image.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise ValueError(f"{path} holds {raw.size} bytes, not a whole number of "
                         f"{RECORD_BYTES}-byte CIFAR-10 records: it is truncated or not a batch.")
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].copy()
    if labels.max() > 9:
        raise ValueError(f"{path} has label {labels.max()} (CIFAR-10 labels are 0..9).")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    return images, labels


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds only NumPy arrays and plain containers; any other global is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("builtins", "list"), ("builtins", "dict"), ("__builtin__", "list"),
        ("_codecs", "encode"),  # how protocol-2 pickles from Python 3 store bytes
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a CIFAR-10 batch holds only arrays and lists"
        )


def read_python_batch(path: str | os.PathLike, md5: str | None) -> tuple[np.ndarray, np.ndarray]:
    """One python-format batch, verified against ``md5`` before it is unpickled.

    Args:
        path: the batch file.
        md5: its expected MD5 (see ``PYTHON_BATCH_MD5``); ``None`` skips the check and
            relies on the restricted unpickler alone.

    Raises:
        ChecksumError: when the MD5 differs.
        ValueError: when the file is not a CIFAR-10 batch (including a pickle that
            would build anything but arrays and lists).
    """
    path = Path(path)
    if md5 is not None and (actual := _hash(path, "md5")) != md5:
        raise ChecksumError(f"{path} has MD5 {actual}, expected {md5}: it is not the official "
                            f"batch and will not be unpickled.")
    try:
        with open(path, "rb") as f:
            batch = _RestrictedUnpickler(io.BufferedReader(f), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ValueError(f"{path} is not a CIFAR-10 python batch: {error}") from error
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path} is not a CIFAR-10 python batch (no data/labels).")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ValueError(f"{path}: data of shape {data.shape} with {len(labels)} labels.")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def _read_folder(folder: Path, verify: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if (folder / "test_batch.bin").exists():
        read = lambda name: read_binary_batch(folder / f"{name}.bin")  # noqa: E731
    elif (folder / "test_batch").exists():
        read = lambda name: read_python_batch(  # noqa: E731
            folder / name, PYTHON_BATCH_MD5[name] if verify else None)
    else:
        raise FileNotFoundError(
            f"{folder} holds neither CIFAR-10 layout (test_batch.bin or test_batch): pass the "
            f"official archive or its extracted cifar-10-batches-bin / cifar-10-batches-py folder."
        )
    train = [read(name) for name in TRAIN_BATCHES]
    return {
        "train": (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])),
        "test": read("test_batch"),
    }


def _batches_folder(root: Path) -> Path:
    """``root``'s official ``cifar-10-batches-*`` subfolder if it has one, else ``root``."""
    inner = [root / a.folder for a in CIFAR10_ARCHIVES.values() if (root / a.folder).is_dir()]
    return inner[0] if inner else root


def load_cifar10(source: str | os.PathLike = "cifar10", *,
                 data_dir_override: str | os.PathLike | None = None,
                 verify: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """CIFAR-10 as uint8 arrays at their stored 32x32 size: ``{"train": (x, y), "test": (x, y)}``.

    Args:
        source: ``"cifar10"`` (the cached or downloaded official binary archive), the
            path of an official archive (``.tar.gz``, either layout), or of its
            extracted ``cifar-10-batches-bin`` / ``cifar-10-batches-py`` folder.
        data_dir_override: cache folder (default: ``$ALEXNET_DATA_DIR`` or ``data/``).
        verify: check the official checksums (always true for downloads; set false
            only for archives you built yourself).

    Raises:
        DownloadError, ChecksumError, FileNotFoundError, ValueError: each naming the
            file or URL and what to do.
    """
    cache = data_dir(data_dir_override)
    if str(source) == "cifar10":
        info = CIFAR10_ARCHIVES["binary"]
        folder = cache / info.folder
        if not (folder / "test_batch.bin").exists():
            _writable_cache(cache)
            archive = download(info.url, cache / info.filename, info.sha256)
            safe_extract(archive, cache)
        return _read_folder(folder, verify=True)
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"CIFAR-10 source {str(source)!r} does not exist. Use 'cifar10' "
                                f"to download, or the path of the archive or extracted folder.")
    if path.is_dir():
        return _read_folder(_batches_folder(path), verify)
    digest = _hash(path, "sha256")
    if verify and digest not in {a.sha256 for a in CIFAR10_ARCHIVES.values()}:
        raise ChecksumError(
            f"{path} has SHA-256 {digest}, which is neither official CIFAR-10 archive's. "
            f"Use the official file; for an archive you built, extract it and pass its "
            f"folder (or call load_cifar10(..., verify=False) in Python)."
        )
    # Keyed by the archive's content: another archive of the same name is extracted (and
    # checked) on its own.
    extracted = cache / f"{path.name}.{digest[:16]}.extracted"
    if not extracted.exists():
        _writable_cache(cache)
        tmp = temp_name(extracted)
        try:
            safe_extract(path, tmp)
            try:
                os.replace(tmp, extracted)
            except OSError:
                if not extracted.is_dir():  # not another process finishing first
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _read_folder(_batches_folder(extracted), verify)


def _writable_cache(cache: Path) -> None:
    """Create the data folder (clearing what crashed writers left in it), or raise one
    error naming it and ``ALEXNET_DATA_DIR``."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        check_writable(cache, "The data folder")
        remove_debris(cache, DATA_FOLDER_FILES)
    except OSError as error:
        reason = "it is a file, not a folder" if cache.is_file() else (error.strerror or error)
        raise PermissionError(
            errno.EACCES, f"The data folder {cache} cannot hold the CIFAR-10 files "
                          f"({reason}): set {DATA_ENV} to a writable folder, "
                          f"or pass a class-folder tree or an extracted CIFAR-10 folder as "
                          f"the data.") from None
