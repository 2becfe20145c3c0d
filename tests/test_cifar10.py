"""CIFAR-10 download, verification, extraction and parsing, against archives built here
and served from 127.0.0.1."""

import hashlib
import http.server
import os
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers.archives import N, batch_arrays, binary_bytes, make_tar, python_bytes
from helpers.tiny import cli_args, one_error_line

from alexnet_lib.cli import main
from alexnet_lib.data import cifar10
from alexnet_lib.data.cifar10 import (
    ChecksumError,
    DownloadError,
    download,
    load_cifar10,
    read_binary_batch,
    read_python_batch,
    safe_extract,
)

BATCHES = list(cifar10.TRAIN_BATCHES) + ["test_batch"]


@pytest.fixture
def tiny_archives(tmp_path):
    """Both official layouts with known content; returns paths and the expected arrays."""
    arrays = {name: batch_arrays(i) for i, name in enumerate(BATCHES)}
    binary = make_tar(tmp_path / "cifar-10-binary.tar.gz", {
        f"cifar-10-batches-bin/{n}.bin": binary_bytes(*a) for n, a in arrays.items()})
    python = make_tar(tmp_path / "cifar-10-python.tar.gz", {
        f"cifar-10-batches-py/{n}": python_bytes(*a) for n, a in arrays.items()})
    return {"binary": binary, "python": python, "arrays": arrays}


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class _Server:
    """Serves a dict of path -> bytes on 127.0.0.1; ``truncate`` sends half and hangs up."""

    def __init__(self, files, truncate=False):
        files_ = files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = files_.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if truncate else body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_good_file_is_verified_and_atomic(tmp_path, tiny_archives):
    body = tiny_archives["binary"].read_bytes()
    with _Server({"/a.tar.gz": body}) as server:
        dest = download(f"{server.url}/a.tar.gz", tmp_path / "cache" / "a.tar.gz",
                        _sha256(tiny_archives["binary"]), progress=False)
    assert dest.read_bytes() == body
    assert not (tmp_path / "cache" / "a.tar.gz.part").exists()
    # A second call reuses the verified file without any network.
    assert download("http://127.0.0.1:9/unused", dest, _sha256(dest), progress=False) == dest


def test_corrupt_cached_file_is_quarantined_and_fetched_again(tmp_path, tiny_archives):
    body = tiny_archives["binary"].read_bytes()
    dest = tmp_path / "dl" / "a.tar.gz"
    dest.parent.mkdir()
    dest.write_bytes(body[:100])
    with _Server({"/a.tar.gz": body}) as server:
        download(f"{server.url}/a.tar.gz", dest, _sha256(tiny_archives["binary"]), progress=False)
    assert dest.read_bytes() == body
    assert (tmp_path / "dl" / "a.tar.gz.corrupt").read_bytes() == body[:100]


def test_download_wrong_checksum_removes_the_file(tmp_path, tiny_archives):
    body = tiny_archives["binary"].read_bytes()
    with _Server({"/a.tar.gz": body}) as server:
        with pytest.raises(ChecksumError, match="expected 0{64}"):
            download(f"{server.url}/a.tar.gz", tmp_path / "dl" / "a.tar.gz", "0" * 64,
                     progress=False)
    assert list((tmp_path / "dl").iterdir()) == []


def test_download_truncated_transfer_retries_then_fails_clearly(tmp_path, tiny_archives):
    body = tiny_archives["binary"].read_bytes()
    with _Server({"/a.tar.gz": body}, truncate=True) as server:
        url = f"{server.url}/a.tar.gz"
        with pytest.raises(DownloadError, match=f"Could not download {url} after 2 attempts"):
            download(url, tmp_path / "dl" / "a.tar.gz", _sha256(tiny_archives["binary"]),
                     retries=2, progress=False)
    assert list((tmp_path / "dl").iterdir()) == []


def test_offline_error_names_the_url_and_the_local_alternative(tmp_path):
    url = "http://127.0.0.1:9/cifar-10-binary.tar.gz"  # discard port: connection refused
    with pytest.raises(DownloadError) as info:
        download(url, tmp_path / "x.tar.gz", "0" * 64, retries=1, progress=False)
    message = str(info.value)
    assert url in message and "ALEXNET_DATA_DIR" in message and "cifar10-jpeg" in message


@pytest.mark.parametrize("layout", ["binary", "python"])
def test_load_cifar10_from_a_served_archive(tmp_path, tiny_archives, layout, monkeypatch):
    """The default 'cifar10' source: download, verify, extract, parse."""
    archive = tiny_archives[layout]
    info = cifar10.CIFAR10_ARCHIVES[layout]
    with _Server({"/" + info.filename: archive.read_bytes()}) as server:
        monkeypatch.setitem(cifar10.CIFAR10_ARCHIVES, "binary", cifar10.Archive(
            url=f"{server.url}/{info.filename}", filename=info.filename,
            sha256=_sha256(archive), folder=info.folder))
        monkeypatch.setattr(cifar10, "PYTHON_BATCH_MD5", {
            n: hashlib.md5(python_bytes(*tiny_archives["arrays"][n])).hexdigest()
            for n in BATCHES})
        splits = load_cifar10("cifar10", data_dir_override=tmp_path / "cache")
    train_x, train_y = splits["train"]
    assert train_x.shape == (5 * N, 32, 32, 3) and train_x.dtype == np.uint8
    np.testing.assert_array_equal(train_x[:N], tiny_archives["arrays"]["data_batch_1"][0])
    np.testing.assert_array_equal(train_y[-N:], tiny_archives["arrays"]["data_batch_5"][1])
    np.testing.assert_array_equal(splits["test"][0], tiny_archives["arrays"]["test_batch"][0])


def test_load_cifar10_from_a_user_archive_and_folder(tmp_path, tiny_archives):
    splits = load_cifar10(tiny_archives["binary"], data_dir_override=tmp_path / "c",
                          verify=False)
    np.testing.assert_array_equal(splits["test"][1], tiny_archives["arrays"]["test_batch"][1])
    # The extracted folder as a source, too.
    folder = next((tmp_path / "c").glob("*.extracted"))
    again = load_cifar10(folder / "cifar-10-batches-bin", verify=False)
    np.testing.assert_array_equal(again["train"][0], splits["train"][0])


def test_user_archive_with_unknown_checksum_is_refused(tmp_path, tiny_archives):
    with pytest.raises(ChecksumError, match="neither official CIFAR-10 archive"):
        load_cifar10(tiny_archives["binary"], data_dir_override=tmp_path / "c")


def test_missing_source_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.tar.gz"):
        load_cifar10(tmp_path / "nowhere.tar.gz")


def test_tar_with_parent_member_is_refused_and_nothing_is_left(tmp_path):
    evil = make_tar(tmp_path / "evil.tar.gz", {
        "cifar-10-batches-bin/test_batch.bin": b"x" * 3073,
        "../escaped.txt": b"owned"})
    target = tmp_path / "target"
    with pytest.raises(ValueError, match=r"'\.\./escaped\.txt'"):
        safe_extract(evil, target)
    assert not (tmp_path / "escaped.txt").exists()
    assert list(target.iterdir()) == []


def test_tar_with_outside_symlink_is_refused(tmp_path):
    path = tmp_path / "link.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-bin/passwd")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(ValueError, match="points outside"):
        safe_extract(path, tmp_path / "t")


def test_truncated_archive_is_a_clear_error(tmp_path, tiny_archives):
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(tiny_archives["binary"].read_bytes()[:200])
    target = tmp_path / "t"
    with pytest.raises(ValueError, match="truncated or corrupt"):
        safe_extract(cut, target)
    assert list(target.iterdir()) == []


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch " + str(_RunsCode.marker),))


def test_python_batch_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    _RunsCode.marker = marker
    batch = tmp_path / "test_batch"
    batch.write_bytes(pickle.dumps({b"data": _RunsCode(), b"labels": []}, protocol=2))
    # Even with a matching checksum (so the restricted unpickler is what stops it) ...
    with pytest.raises(ValueError, match="refusing to load"):
        read_python_batch(batch, hashlib.md5(batch.read_bytes()).hexdigest())
    assert not marker.exists()
    # ... and the official checksum stops it before unpickling.
    with pytest.raises(ChecksumError, match="will not be unpickled"):
        read_python_batch(batch, cifar10.PYTHON_BATCH_MD5["test_batch"])
    assert not marker.exists()


def test_binary_batch_round_trip_and_truncation(tmp_path):
    images, labels = batch_arrays(7)
    path = tmp_path / "b.bin"
    path.write_bytes(binary_bytes(images, labels))
    got_x, got_y = read_binary_batch(path)
    np.testing.assert_array_equal(got_x, images)
    np.testing.assert_array_equal(got_y, labels)
    path.write_bytes(binary_bytes(images, labels)[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_binary_batch(path)


def test_data_folder_debris_is_removed(tmp_path, monkeypatch):
    """What crashed extractions, downloads and cache writes left in the data folder goes the
    next time that folder is written; a live writer's temporary file stays."""
    from helpers.archives import batch_arrays, binary_bytes, make_tar

    from alexnet_lib.data.cifar10 import TRAIN_BATCHES, load_cifar10
    from alexnet_lib.files import _HOST

    cache = tmp_path / "cache"
    cache.mkdir()
    dead = 4_194_304 + 1  # above Linux's largest pid: no live process has it
    stale = [cache / f".write-check.{_HOST}-{dead}.tmp",
             cache / f".cifar-10-binary.tar.gz.{_HOST}-{dead}.tmp.part",
             cache / f".cifar-10-binary.tar.gz.0123.extracted.otherhost-{dead}.tmp"]
    stale[0].write_bytes(b"x")
    stale[1].write_bytes(b"x")
    stale[2].mkdir()
    os.utime(stale[2], (0, 0))  # another host's debris goes once it is a day old
    live = cache / f".cifar-10-binary.tar.gz.{_HOST}-{os.getppid()}.tmp.part"
    live.write_bytes(b"x")
    theirs = cache / f".folders-abc.npz.{_HOST}-{dead}.tmp"  # not written here: stays
    theirs.write_bytes(b"x")
    archive = make_tar(tmp_path / "cifar-10-binary.tar.gz", {
        f"cifar-10-batches-bin/{n}.bin": binary_bytes(*batch_arrays(i))
        for i, n in enumerate([*TRAIN_BATCHES, "test_batch"])})
    load_cifar10(archive, data_dir_override=cache, verify=False)
    assert not any(p.exists() for p in stale) and live.exists()
    assert sorted(p.name for p in cache.iterdir() if p.name.startswith(".")) == sorted(
        [live.name, theirs.name])


def test_the_extraction_cache_is_keyed_by_content(tmp_path):
    from helpers.archives import batch_arrays, binary_bytes, make_tar

    from alexnet_lib.data.cifar10 import TRAIN_BATCHES, load_cifar10

    def archive(folder, seed, extra=None):
        folder.mkdir()
        files = {f"cifar-10-batches-bin/{n}.bin": binary_bytes(*batch_arrays(seed + i))
                 for i, n in enumerate([*TRAIN_BATCHES, "test_batch"])}
        files.update(extra or {})
        return make_tar(folder / "cifar-10-binary.tar.gz", files)

    cache = tmp_path / "cache"
    first = load_cifar10(archive(tmp_path / "a", 0), data_dir_override=cache, verify=False)
    second = load_cifar10(archive(tmp_path / "b", 100), data_dir_override=cache, verify=False)
    assert not np.array_equal(first["test"][0], second["test"][0])
    np.testing.assert_array_equal(second["test"][0], batch_arrays(105)[0])
    evil = archive(tmp_path / "c", 0, {"../escaped.txt": b"owned"})
    with pytest.raises(ValueError, match="escaped.txt"):
        load_cifar10(evil, data_dir_override=cache, verify=False)
    assert not (cache.parent / "escaped.txt").exists()


@pytest.mark.slow
def test_offline_download_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    from alexnet_lib.data import cifar10

    archive = cifar10.CIFAR10_ARCHIVES["binary"]
    monkeypatch.setitem(cifar10.CIFAR10_ARCHIVES, "binary", cifar10.Archive(
        url="http://127.0.0.1:9/cifar-10-binary.tar.gz", filename=archive.filename,
        sha256=archive.sha256, folder=archive.folder))
    monkeypatch.setenv("ALEXNET_DATA_DIR", str(tmp_path / "data"))
    assert main(["train", "--data", "cifar10", "--run-dir", str(tmp_path / "run")]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "Could not download http://127.0.0.1:9/" in line and "DATA=" in line


@pytest.mark.slow
def test_a_data_folder_that_is_a_file_only_costs_the_cache(tree, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "data-file"
    blocker.write_text("a file where the data folder should be")
    monkeypatch.setenv("ALEXNET_DATA_DIR", str(blocker))
    args = cli_args(tree, tmp_path / "run")
    args[args.index("--epochs") + 1] = "1"
    assert main(args) == 0
    assert "continuing without the cache" in capsys.readouterr().err
    assert main(["train", "--data", "cifar10", "--run-dir", str(tmp_path / "r2")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(blocker) in line and "ALEXNET_DATA_DIR" in line


def test_the_user_archive_message_names_what_a_cli_user_can_do(tmp_path):
    from helpers.archives import make_tar

    from alexnet_lib.data.cifar10 import ChecksumError, load_cifar10

    archive = make_tar(tmp_path / "mine.tar.gz", {"cifar-10-batches-bin/test_batch.bin": b"x"})
    with pytest.raises(ChecksumError, match="extract it and pass its folder"):
        load_cifar10(archive, data_dir_override=tmp_path / "c")
