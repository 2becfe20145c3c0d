"""Writing files so that nothing is lost or left half-written.

* :func:`write_through` (any writer: ``model.save``, ``np.savez``) and :func:`write_atomic`
  (text or bytes) write through a temporary file in the same folder, flushed to disk, and
  one rename: a reader (or a crash) sees the old file or the new one, never a mix. Every
  file the project writes goes through them.
* Temporary names carry the writer's host and process id (:func:`temp_name`), so the next
  process can tell the debris of a crashed writer from the file a live one is still
  writing, and :func:`remove_debris` removes only the former, and only under the names the
  caller's own writers use in that folder.
* The ownership rule: the project deletes or replaces only what it can prove it wrote.
  A folder it creates for its work carries a marker file (:func:`claim_folder`); a folder
  that holds files of someone else's and no marker is refused with one error, never
  cleaned or overwritten. :func:`replace_folder` puts a new folder in the place of one the
  project wrote before (its marker proves it), and nothing else.
* YAML is read back through :func:`read_yaml` / :func:`load_yaml` (safe types only, with a
  size and an alias-expansion budget, so a ten-line "billion laughs" file is one error, not
  a hang) and written by :func:`dump_yaml` (which never writes aliases).
* :class:`FolderLock` lets one process at a time work in a folder. It is an advisory
  ``flock`` on ``<folder>/.lock``: the kernel drops it when the process ends however it ends
  (``kill -9`` included), so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
# .<name>.<host>-<pid>.tmp[.<suffix>]: see temp_name.
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.tmp"
                   r"(?:\.[A-Za-z0-9]+)?$")
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


def is_debris(path: Path, names: Iterable[str]) -> bool:
    """Whether ``path`` is a temporary file or folder that :func:`temp_name` made for one of
    ``names`` (exact names or ``fnmatch`` patterns of the files being written) and whose
    writer no longer runs."""
    match = _TEMP.match(path.name)
    if not match or not any(fnmatch.fnmatchcase(match["name"], n) for n in names):
        return False
    if match["host"] == _HOST:
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
    """Rename ``source`` to ``target``, replacing a file or folder already there (callers
    replace only what the project wrote: see :func:`replace_folder`)."""
    if os.path.lexists(target):
        remove_path(Path(target))
    os.replace(source, target)


def remove_debris(folder: Path, names: Iterable[str]) -> list[Path]:
    """Remove the temporary files and folders that crashed writers of ``names`` (the exact
    names, or ``fnmatch`` patterns, that the caller writes in ``folder``) left there, not
    below it. Returns what was removed; a folder that cannot be listed is left alone."""
    names = [names] if isinstance(names, str) else list(names)
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if is_debris(entry, names):
            try:
                remove_path(entry)
                removed.append(entry)
            except OSError:
                pass
    return removed


# ----------------------------------------------------------------------------- ownership

def _listing(folder: Path, limit: int = 4) -> str:
    names = sorted(p.name for p in folder.iterdir())
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit
                                       else "")


# The file in every folder the project made (or adopted empty) for its runs and sweeps.
MARKER = ".alexnet_lib"
# FolderLock's file.
LOCK_NAME = ".lock"


def claim_folder(folder: str | os.PathLike, *, what: str, option: str,
                 proof: Callable[[Path], bool] | None = None) -> bool:
    """Make ``folder`` the project's, for writing (and later cleaning) its own files there.

    * missing: created (with its parents), the :data:`MARKER` file written in it;
    * an empty folder (or one holding only a :class:`FolderLock`'s file): the marker is
      written in it;
    * a folder with the marker, or for which ``proof(folder)`` holds (a record only the
      project writes, such as a run's ``config.yaml``): the project's already;
    * anything else (a file, a folder with other files): ``ValueError`` naming the folder,
      what is in it and what to do. Nothing is written.

    Returns whether the folder was created.
    """
    folder = Path(folder)
    if os.path.lexists(folder) and not folder.is_dir():
        raise ValueError(f"{option} {folder} is a file, not a folder: pass a folder path (it is "
                         f"created if missing).")
    created = not folder.exists()
    if not created:
        if (folder / MARKER).is_file() or (proof is not None and proof(folder)):
            return False
        if any(p.name != LOCK_NAME for p in folder.iterdir()):  # a lock is the project's
            raise ValueError(
                f"{option} {folder} is not empty and is not {what} ({_listing(folder)}): this "
                f"project writes only into a new or empty folder, or one it wrote before. Pass "
                f"a new folder path, or empty this one yourself.")
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / MARKER, f"This folder is {what}, written by alexnet_lib.\n")
    return created


def check_not_above(target: str | os.PathLike, option: str,
                    protected: dict[str | os.PathLike, str] | None = None) -> Path:
    """Refuse (``ValueError``) a ``target`` folder to be replaced when it is the file
    system's root, the home folder, the working folder or a folder above it, or equal to or
    above one of ``protected`` (``{path: what it is}``). Returns the resolved target."""
    resolved = Path(target).expanduser().resolve()
    guarded = [(Path.cwd().resolve(), "the current folder"),
               (Path.home().resolve(), "the home folder")]
    guarded += [(Path(p).expanduser().resolve(), name) for p, name in (protected or {}).items()]
    if resolved == Path(resolved.anchor):
        raise ValueError(f"{option} {target} is the root folder: pass a new folder path.")
    for place, hit in (("is", lambda path: path == resolved),
                       ("holds", lambda path: resolved in path.parents)):
        for path, name in guarded:
            if hit(path):
                raise ValueError(f"{option} {target} {place} {name}: it cannot be replaced. "
                                 f"Pass a new folder path, e.g. {option} exports/model.")
    return resolved


def check_replaceable(target: str | os.PathLike, marker: str, *, what: str,
                      option: str) -> None:
    """Refuse (``ValueError``) a ``target`` that :func:`replace_folder` would not replace: a
    file or link, or a folder that is neither empty nor ``what`` (holding ``marker``)."""
    target = Path(target)
    if not os.path.lexists(target):
        return
    if not target.is_dir() or target.is_symlink():
        raise ValueError(f"{option} {target} is a file or a link, not a folder: pass a new "
                         f"folder path.")
    if not (target / marker).is_file() and any(target.iterdir()):
        raise ValueError(
            f"{option} {target} is not empty and is not {what} ({_listing(target)}): only "
            f"{what} or an empty folder is replaced. Pass a new folder path, or remove this "
            f"one yourself.")


def replace_folder(source: Path, target: Path, marker: str, *, what: str, option: str) -> None:
    """Rename the complete folder ``source`` to ``target``. A folder already at ``target`` is
    replaced only when it is empty or is ``what`` (it holds ``marker``, so the project wrote
    it); anything else is refused with ``ValueError``, and nothing is removed."""
    check_replaceable(target, marker, what=what, option=option)
    move_into_place(source, Path(target))


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
        path = self.folder / LOCK_NAME
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


# ----------------------------------------------------------------------------- YAML

# The largest YAML file read back, and the most nodes its aliases may expand to: the
# project's own files are a few kilobytes and a few hundred nodes.
YAML_MAX_BYTES = 1 << 20
YAML_MAX_NODES = 200_000


def _expanded_nodes(root: yaml.Node) -> int:
    """How many nodes ``root`` stands for once every alias is expanded (what printing or
    walking the loaded value costs); ``ValueError`` past the budget or for a cycle."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            sizes[key] = 1
            continue
        if children_done:
            open_.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > YAML_MAX_NODES:
                raise ValueError(f"its aliases expand to more than {YAML_MAX_NODES:,} values")
            continue
        if key in open_:
            raise ValueError("an alias refers to a value that contains it")
        open_.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_:
                raise ValueError("an alias refers to a value that contains it")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def load_yaml(text: str, where: str) -> Any:
    """``text`` parsed as YAML with safe types only (no ``!!python`` tags), at most
    :data:`YAML_MAX_BYTES` long and expanding to at most :data:`YAML_MAX_NODES` values.

    Raises:
        ValueError: naming ``where`` and what is wrong.
    """
    if len(text) > YAML_MAX_BYTES:
        raise ValueError(f"{where} is {len(text):,} characters long, more than the "
                         f"{YAML_MAX_BYTES:,} a file of this project holds.")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_nodes(node)
        return loader.construct_document(node)
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise ValueError(f"{where} cannot be read as this project's YAML ({reason}).") from None
    finally:
        loader.dispose()


def read_yaml(path: str | os.PathLike, what: str = "") -> Any:
    """The YAML file at ``path`` through :func:`load_yaml` (regular files only: a FIFO or a
    device is refused rather than waited on).

    Raises:
        FileNotFoundError: when it does not exist.
        ValueError: naming the file, when it is not a regular file or not safe, valid YAML.
    """
    path = Path(path)
    where = f"{what} {path}".strip()
    if not path.exists():
        raise FileNotFoundError(f"{where}: no such file.")
    if not path.is_file():
        raise ValueError(f"{where} is not a regular file: pass a YAML file.")
    if path.stat().st_size > YAML_MAX_BYTES:
        raise ValueError(f"{where} is {path.stat().st_size:,} bytes, more than the "
                         f"{YAML_MAX_BYTES:,} a file of this project holds.")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"{where} is not a text file: pass a YAML file.") from None
    return load_yaml(text, where)


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: Any) -> str:
    """``data`` as YAML in the order given, safe types only, without aliases."""
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False)
