"""Writing files so that nothing is lost or left half-written.

* :func:`write_through` (any writer: ``model.save``, ``np.savez``) and :func:`write_atomic`
  (text or bytes) write through a temporary file in the same folder, flushed to disk, and
  one rename: a reader (or a crash) sees the old file or the new one, never a mix. Every
  file the project writes goes through them.
* Temporary names carry the writer's host and process id (:func:`temp_name`), so the next
  process can tell the debris of a crashed writer from the file a live one is still
  writing, and :func:`remove_debris` removes only the former.
* :class:`FolderLock` lets one process at a time work in a folder. It is an advisory
  ``flock`` on ``<folder>/.lock``: the kernel drops it when the process ends however it ends
  (``kill -9`` included), so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Callable

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
# .<name>.<host>-<pid>.tmp[.<suffix>]: see temp_name.
# Names without a host (.<name>.<pid>.tmp) are taken to be this host's.
_TEMP = re.compile(r"^\..+\.(?:(?P<host>[A-Za-z0-9-]+)-)?(?P<pid>\d+)\.tmp(\.[A-Za-z0-9]+)?$")
# Debris whose writer ran on another host is removed only when it is this old.
FOREIGN_DEBRIS_AGE_S = 24 * 3600


def temp_name(path: Path, suffix: str = "") -> Path:
    """``<dir>/.<name>.<host>-<pid>.tmp<suffix>``: a temporary sibling of ``path``."""
    return path.with_name(f".{path.name}.{_HOST}-{os.getpid()}.tmp{suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_debris(path: Path) -> bool:
    """Whether ``path`` is a temporary file or folder of a writer that no longer runs."""
    match = _TEMP.match(path.name)
    if not match:
        return False
    if match["host"] in (None, _HOST):
        pid = int(match["pid"])
        return pid != os.getpid() and not _alive(pid)
    try:
        return time.time() - path.lstat().st_mtime > FOREIGN_DEBRIS_AGE_S
    except OSError:
        return False


def remove_path(path: Path) -> None:
    """Remove a file, link or folder; missing is fine."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def move_into_place(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``, replacing a file or folder already there."""
    if os.path.lexists(target):
        remove_path(Path(target))
    os.replace(source, target)


def remove_debris(folder: Path) -> list[Path]:
    """Remove the temporary files and folders that crashed writers left in ``folder`` (not
    below it). Returns what was removed; a folder that cannot be listed is left alone."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if is_debris(entry):
            try:
                remove_path(entry)
                removed.append(entry)
            except OSError:
                pass
    return removed


def write_through(path: Path, write: Callable[[Path], None], suffix: str = "") -> None:
    """Create ``path`` by ``write(temporary path)``, flushed to disk, then one rename: a
    reader (or a crash) sees the old file or the new one, never a mix. ``suffix`` ends
    the temporary name for writers that need it (``model.save`` wants ``.keras``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path, suffix)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write ``path`` through a temporary file and one rename: readers see old or new."""
    data = text.encode() if isinstance(text, str) else text
    write_through(path, lambda tmp: Path(tmp).write_bytes(data))


def check_writable(folder: Path, what: str) -> None:
    """Raise one ``PermissionError`` naming ``folder`` when files cannot be created in it."""
    folder = Path(folder)
    probe = temp_name(folder / "write-check")
    try:
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise _unwritable(what, folder, error, "is not writable") from None


def _unwritable(what: str, folder: Path, error: OSError, verb: str) -> PermissionError:
    return PermissionError(errno.EACCES, f"{what} {folder} {verb} ({error.strerror}): fix its "
                                         f"permissions or choose another folder")


class FolderBusy(RuntimeError):
    """Another live process holds the folder's lock."""


class FolderLock:
    """An exclusive lock on ``folder`` for the life of this process (or until released).

    Acquiring it again in the same process (nested calls: train, then evaluate) only counts
    up; the lock is released when every holder has released it.

    Raises:
        FolderBusy: naming the folder and the process that holds it.
    """

    _held: dict[Path, list] = {}  # folder -> [file descriptor, count]

    def __init__(self, folder: str | os.PathLike, what: str = "folder"):
        self.folder = Path(folder).resolve()
        self.what = what
        self._released = False
        entry = self._held.get(self.folder)
        if entry is not None:
            entry[1] += 1
            return
        path = self.folder / ".lock"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise _unwritable(self.what, self.folder, error, "cannot be written") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FolderBusy(
                    f"{self.what} {self.folder} is in use by {holder}: one process at a time "
                    f"may train or evaluate in it. Wait for it to finish (or stop it), or "
                    f"pass another --run-dir.") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._held[self.folder] = [fd, 1]

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        entry = self._held.get(self.folder)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del self._held[self.folder]
            os.close(entry[0])  # closing the descriptor drops the flock

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
