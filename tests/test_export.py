"""The SavedModel export: loaded in a fresh process with TensorFlow alone, it classifies
encoded files and raw pixels as ``predict`` does."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.tiny import COLOURS
from PIL import Image

from alexnet_lib.cli import main
from alexnet_lib.paths import shared_cifar10_jpeg
from alexnet_lib.predict import predict

SERVE = r"""
import json, sys
import numpy as np
import tensorflow as tf
from PIL import Image
model = tf.saved_model.load(sys.argv[1])
files = sys.argv[2:]
by_bytes = model.serve_bytes(tf.constant([open(f, "rb").read() for f in files]))
pixels = [np.asarray(Image.open(f).convert("RGB")) for f in files]
by_pixels = [model.signatures["serving_default"](images=tf.constant(p[None])) for p in pixels]
print(json.dumps({
    "alexnet_lib imported": "alexnet_lib" in sys.modules,
    "bytes": [c.decode() for c in by_bytes["classes"].numpy()],
    "bytes_probs": by_bytes["probabilities"].numpy().tolist(),
    "pixels_probs": [r["probabilities"].numpy()[0].tolist() for r in by_pixels],
}))
"""


def _serve(model_dir, files):
    result = subprocess.run([sys.executable, "-c", SERVE, str(model_dir), *map(str, files)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_export_classifies_like_predict_without_the_library(trained, tmp_path):
    run = trained.run_dir
    out = tmp_path / "served"
    assert main(["export", "--checkpoint", str(run), "--out", str(out)]) == 0
    assert (out / "saved_model.pb").exists()
    rng = np.random.default_rng(5)
    files = []
    for i in range(8):  # other sizes than the stored 16x16: resized inside the SavedModel
        size = (16, 16) if i % 2 else (37, 23)
        pixels = np.array(COLOURS[i % 4]) + rng.normal(0, 30, (*size, 3))
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(files[-1])
    served = _serve(out, files)
    assert served["alexnet_lib imported"] is False
    expected = predict(run, files, top_k=4)
    assert served["bytes"] == [r.top[0][0] for r in expected]
    for probs, pixel_probs, r in zip(served["bytes_probs"], served["pixels_probs"], expected):
        np.testing.assert_allclose(np.sort(probs)[::-1][:4], [p for _, p in r.top], atol=1e-5)
        np.testing.assert_allclose(pixel_probs, probs, atol=1e-6)


def test_a_bad_export_target_or_model_is_one_error(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    missing = str(tmp_path / "none.keras")
    assert main(["export", "--checkpoint", missing, "--out", str(target)]) == 2
    assert "is a file or a link, not a folder" in capsys.readouterr().err
    assert target.read_text() == "x"
    assert main(["export", "--checkpoint", missing, "--out", str(tmp_path / "new")]) == 2
    assert "No model at" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def _snapshot(folder: Path) -> dict:
    """Every file below ``folder`` (relative path -> bytes), to prove nothing changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_export_replaces_no_folder_it_did_not_write(tmp_path, capsys, monkeypatch):
    """A user's folder, the checkpoint's own run folder, the working folder's parent and the
    home folder: each refused with one error line (exit 2) before anything is loaded, every
    file unchanged."""
    run = tmp_path / "home" / "work" / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("preset: cifar\n")
    (run / "checkpoints" / "best.keras").write_bytes(b"model")
    mine = tmp_path / "home" / "work" / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    monkeypatch.chdir(tmp_path / "home" / "work")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    before = _snapshot(tmp_path)
    checkpoint = str(run / "checkpoints" / "best.keras")
    cases = {str(mine): "is not empty and is not an export of this project",
             str(run): "is the checkpoint's run folder",
             str(run / "checkpoints"): "holds the checkpoint",
             "..": "is the home folder", ".": "is the current folder",
             "~": "is the home folder", str(tmp_path): "holds the current folder",
             "/": "is the root folder"}
    for out, expected in cases.items():
        assert main(["export", "--checkpoint", checkpoint, "--out", out]) == 2, out
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: --out ") and expected in err, err
    assert _snapshot(tmp_path) == before
    assert main(["export", "--checkpoint", str(run), "--out", str(run)]) == 2  # a run folder
    assert "is the checkpoint's run folder" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


def _read_only_folder(tmp_path) -> Path:
    """A folder no file can be created in: a read-only one, or (root writes anywhere)
    ``/sys``, whose top refuses new files even to root."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    try:
        (Path("/sys") / "alexnet-probe").touch()
    except OSError:
        return Path("/sys")
    pytest.skip("no folder here refuses root's writes")


@pytest.mark.slow
def test_export_into_a_read_only_folder_is_one_error(trained, tmp_path, capsys):
    folder = _read_only_folder(tmp_path)
    try:
        assert main(["export", "--checkpoint", str(trained.run_dir),
                     "--out", str(folder / "alexnet-model")]) == 2
    finally:
        if folder.is_relative_to(tmp_path):
            folder.chmod(0o755)
    err = capsys.readouterr().err
    assert err.startswith("error: The folder of --out") and "is not writable" in err, err
    assert not (folder / "alexnet-model").exists()


@pytest.mark.realdata
@pytest.mark.slow
def test_the_export_agrees_with_predict_on_real_test_images(tmp_path):
    data = shared_cifar10_jpeg()
    if not data.is_dir():
        pytest.skip(f"the CIFAR-10 JPEG copy is not at {data}")
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--train-subset", "1024", "--val-size", "64",
                 "--epochs", "1", "--precision", "float32", "--run-dir", str(run),
                 "--no-evaluate"]) == 0
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "served")]) == 0
    files = [f for c in sorted((data / "test").iterdir()) for f in sorted(c.iterdir())[:20]]
    served = _serve(tmp_path / "served", files)
    expected = [r.top[0][0] for r in predict(run, files, top_k=1)]
    agree = sum(a == b for a, b in zip(served["bytes"], expected))
    # The export decodes JPEGs with the accurate integer DCT, as Pillow does.
    assert agree == len(files), (agree, len(files))
    by_pixels = [int(np.argmax(p)) for p in served["pixels_probs"]]
    names = sorted(p.name for p in (data / "test").iterdir())
    assert [names[i] for i in by_pixels] == expected  # the same pixels: the same answer
    print(f"export vs predict top-1 on {len(files)} test JPEGs: {agree} agree (bytes), "
          f"{len(files)} (pixels)")


HOSTILE = r"""
import io, json, resource, sys
import numpy as np
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
items = [open(f, "rb").read() for f in sys.argv[2:]]
model.serve_bytes(tf.constant(items[:1]))  # traced and warm
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = model.serve_bytes(tf.constant(items))
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
empty = model.serve_bytes(tf.constant([], tf.string))
print(json.dumps({
    "valid": [bool(v) for v in out["valid"].numpy()],
    "classes": [c.decode() for c in out["classes"].numpy()],
    "probs": out["probabilities"].numpy().tolist(), "grown_mb": grown,
    "empty": [list(empty[k].shape) for k in ("valid", "classes", "probabilities")],
}))
"""


@pytest.mark.slow
def test_serve_bytes_answers_every_item_and_decodes_no_bomb(trained, tmp_path):
    """One request of good images, junk, an empty string, a truncated JPEG and a PNG that
    declares 9000x9000 pixels (79 KB): every item answered, the good ones as ``predict``
    answers them, the bomb never decoded (memory), an empty request answered empty. A
    transparent PNG gets predict's class: composited on white, not stripped of its alpha."""
    run = trained.run_dir
    out = tmp_path / "served"
    assert main(["export", "--checkpoint", str(run), "--out", str(out)]) == 0
    good = [tmp_path / "good.jpg", tmp_path / "good.png"]
    rng = np.random.default_rng(2)
    for path, colour in zip(good, COLOURS):
        pixels = np.array(colour) + rng.normal(0, 30, (16, 16, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=95)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good[0].read_bytes()[:200])
    bomb = tmp_path / "bomb.png"
    Image.new("L", (9000, 9000)).save(bomb)
    assert bomb.stat().st_size < 100_000
    # Green under full transparency: white once composited (as predict sees it), green
    # when the alpha is dropped -- the case must tell the two apart to mean anything.
    clear = tmp_path / "clear.png"
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = COLOURS[1]
    Image.fromarray(rgba, "RGBA").save(clear)
    stripped = tmp_path / "stripped.png"
    Image.fromarray(rgba[..., :3]).save(stripped)
    expected = {p.name: r.top[0][0] for p, r in zip(
        [*good, clear, stripped], predict(run, [*good, clear, stripped], top_k=1))}
    assert expected["clear.png"] != expected["stripped.png"], expected
    (tmp_path / "junk").write_bytes(b"junk")
    (tmp_path / "empty").write_bytes(b"")
    names = [good[0], tmp_path / "junk", tmp_path / "empty", bomb, good[1], truncated, clear]
    result = subprocess.run([sys.executable, "-c", HOSTILE, str(out), *map(str, names)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["valid"] == [True, False, False, False, True, False, True]
    assert served["classes"] == [expected["good.jpg"], "", "", "", expected["good.png"], "",
                                 expected["clear.png"]]
    probs = np.array(served["probs"])
    assert np.allclose(probs[[1, 2, 3, 5]], 0) and np.allclose(probs[[0, 4, 6]].sum(1), 1)
    assert served["grown_mb"] < 500, served["grown_mb"]  # 9000x9000 RGB alone is 243 MB
    assert served["empty"] == [[0], [0], [0, len(trained.datasets.class_names)]]


@pytest.mark.slow
def test_export_replaces_its_own_export_and_clears_a_killed_ones_debris(trained, tmp_path):
    from alexnet_lib.export import EXPORT_MARKER
    from alexnet_lib.files import _HOST

    out = tmp_path / "served"
    assert main(["export", "--checkpoint", str(trained.run_dir), "--out", str(out)]) == 0
    assert (out / EXPORT_MARKER).is_file()
    (out / "variables" / "stale").write_text("from the first export")
    debris = tmp_path / f".served.{_HOST}-{4_194_305}.tmp"  # a killed export's folder
    (debris / "variables").mkdir(parents=True)
    neighbour = tmp_path / f".other.{_HOST}-{4_194_305}.tmp"  # not the export's name: stays
    neighbour.mkdir()
    assert main(["export", "--checkpoint", str(trained.run_dir), "--out", str(out)]) == 0
    assert (out / "saved_model.pb").is_file() and not (out / "variables" / "stale").exists()
    assert not debris.exists() and neighbour.exists()
