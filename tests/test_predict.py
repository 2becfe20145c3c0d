"""predict: files and folders, in order, batched through one compiled forward pass, with the
same probabilities as classifying each image alone."""

import json

import numpy as np
import pytest
from helpers.hostile import png_header
from helpers.tiny import COLOURS
from PIL import Image

from alexnet_lib.cli import main
from alexnet_lib.predict import Predictor, expand_folders


@pytest.fixture
def run(trained):
    return trained.run_dir


def test_folders_expand_to_their_images_in_order(tmp_path):
    (tmp_path / "b" / "inner").mkdir(parents=True)
    (tmp_path / "b" / ".hidden").mkdir()
    for name in ("b/2.png", "b/10.JPG", "b/inner/1.jpeg", "b/.hidden/x.png", "b/notes.txt",
                 "a.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    assert [p.relative_to(tmp_path).as_posix() for p in
            expand_folders([tmp_path / "b", tmp_path / "a.png", tmp_path / "empty"])] == [
        "b/10.JPG", "b/2.png", "b/inner/1.jpeg", "a.png", "empty"]


def test_batches_keep_the_order_and_the_single_image_probabilities(run, tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(11):  # several sizes and modes: resized to the stored size first
        size = (16, 16) if i % 3 else (40 + i, 25 + i)
        pixels = np.array(COLOURS[i % 4]) + rng.normal(0, 30, (*size, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i:02d}.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    batched = Predictor(run, batch_size=4)
    results = batched.predict_files([folder, broken, folder / "05.png"], top_k=4)
    expected = [str(p) for p in sorted(folder.iterdir())] + [str(broken), str(folder / "05.png")]
    assert [r.path for r in results] == expected
    assert results[11].error and "broken.png" in results[11].error
    single = Predictor(run, batch_size=1)
    for r in results[:11] + results[12:]:
        alone = single.predict_files([r.path], top_k=4)[0]
        assert [c for c, _ in r.top] == [c for c, _ in alone.top]
        np.testing.assert_allclose([p for _, p in r.top], [p for _, p in alone.top], atol=1e-5)
    red = [r for r in results[:11] if int(r.path[-6:-4]) % 4 == 0]
    assert all(r.top[0][0] == "red" for r in red)


def test_predict_a_folder_from_the_cli(run, tmp_path, capsys):
    folder = tmp_path / "few"
    folder.mkdir()
    Image.fromarray(np.full((16, 16, 3), COLOURS[1], np.uint8)).save(folder / "green.png")
    assert main(["predict", "--checkpoint", str(run), str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{folder / 'green.png'}: green ")


def test_a_pipe_named_among_the_images_is_an_error_entry_not_a_hang(tmp_path, capsys):
    """A FIFO would block ``open`` for ever; it is reported like any unreadable file and the
    other images are still classified (the shipped model, no training)."""
    import os

    os.mkfifo(tmp_path / "pipe.png")
    image = tmp_path / "red.png"
    Image.fromarray(np.full((32, 32, 3), COLOURS[0], np.uint8)).save(image)
    assert main(["predict", str(tmp_path / "pipe.png"), str(image)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith(f"{image}: ") and "pipe.png is not a regular file" in err


def test_top_k_beyond_the_class_count_is_one_error(tmp_path, capsys):
    image = tmp_path / "red.png"
    Image.fromarray(np.full((32, 32, 3), COLOURS[0], np.uint8)).save(image)
    assert main(["predict", "--top-k", "11", str(image)]) == 2
    err = capsys.readouterr().err
    assert "--top-k 11 asks for more classes than the model's 10" in err
    assert main(["predict", "--top-k", "10", "--json", str(image)]) == 0
    assert capsys.readouterr().out.count('"class"') == 10


def test_predict_reports_a_bomb_and_still_classifies_the_others(trained, tmp_path, capsys):
    bomb = png_header(tmp_path / "bomb.png", 30000, 30000)
    red = tmp_path / "red.png"
    Image.fromarray(np.full((16, 16, 3), COLOURS[0], np.uint8)).save(red)
    code = main(["predict", "--checkpoint", str(trained.run_dir), "--json", str(bomb), str(red)])
    captured = capsys.readouterr()
    assert code == 1
    results = json.loads(captured.out)
    assert "too large" in results[0]["error"] and results[1]["top"][0]["class"] == "red"
    assert "bomb.png" in captured.err and "Traceback" not in captured.err
