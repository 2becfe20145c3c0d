"""CIFAR-10 download, verification, extraction and parsing, against archives built here
and served from 127.0.0.1."""

import hashlib
import http.server
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers.archives import N, batch_arrays, binary_bytes, make_tar, python_bytes

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
