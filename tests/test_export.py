"""The SavedModel export: loaded in a fresh process with TensorFlow alone, it classifies
encoded files and raw pixels as ``predict`` does."""

import json
import subprocess
import sys

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


def test_a_bad_export_target_is_one_error(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["export", "--checkpoint", str(tmp_path / "none.keras"), "--out", str(target)]) == 2
    assert "No model at" in capsys.readouterr().err


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
