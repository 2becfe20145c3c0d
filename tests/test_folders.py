"""Class-folder trees: layouts, class order, colour modes, sizes, corrupt files, the cache."""

import numpy as np
import pytest
from helpers.hostile import png_header
from helpers.tiny import make_tree
from PIL import Image

from alexnet_lib.data.folders import (
    ImageError,
    decode_image,
    load_class_folders,
    scan_class_folders,
)


def _write(path, array, mode=None, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path, format=fmt)


@pytest.fixture
def tree(tmp_path):
    """train/test with three classes whose folder order is not creation order."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for label, name in enumerate(["ant", "bee", "cat"]):
            for i in range(n):
                _write(tmp_path / split / name / f"{i}.png",
                       np.full((8, 8, 3), 40 * label + i, np.uint8)
                       + rng.integers(0, 2, (8, 8, 3), np.uint8))
    return tmp_path


def test_split_layout_and_class_order(tree):
    data = load_class_folders(tree)
    assert data.class_names == ("ant", "bee", "cat")
    assert set(data.splits) == {"train", "test"}
    x, y = data.splits["train"]
    assert x.shape == (9, 8, 8, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, [0, 0, 0, 1, 1, 1, 2, 2, 2])
    # Pixel values follow the label: each file was decoded, not just listed.
    np.testing.assert_allclose(x.reshape(9, -1).mean(1),
                               [40 * c + i + 0.5 for c in range(3) for i in range(3)],
                               atol=0.2)


def test_flat_layout_is_train_split(tmp_path):
    for name in ("b", "a"):
        _write(tmp_path / name / "x.jpg", np.zeros((5, 7, 3), np.uint8))
    classes, entries = scan_class_folders(tmp_path)
    assert classes == ("a", "b") and list(entries) == ["train"]


def test_grayscale_palette_rgba_and_mixed_sizes(tmp_path):
    gray = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    _write(tmp_path / "c" / "gray.png", gray, mode="L")
    _write(tmp_path / "c" / "gray.jpg", gray, mode="L", fmt="JPEG")
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0  # one transparent pixel composites onto white
    _write(tmp_path / "c" / "rgba.png", rgba, mode="RGBA")
    Image.fromarray(np.full((6, 6, 3), 9, np.uint8)).convert(
        "P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "c" / "pal.png")
    data = load_class_folders(tmp_path)
    images = dict(zip([p.name for p in data.files["train"]], data.splits["train"][0]))
    assert isinstance(data.splits["train"][0], list)  # several sizes: kept as a list
    np.testing.assert_array_equal(images["gray.png"], np.repeat(gray[..., None], 3, -1))
    assert images["gray.jpg"].shape == (12, 10, 3)
    assert tuple(images["rgba.png"][0, 0]) == (255, 255, 255)
    assert tuple(images["rgba.png"][1, 1]) == (200, 0, 0)
    assert tuple(images["pal.png"][2, 2]) == (9, 9, 9)


def test_corrupt_file_names_it_or_is_skipped(tree):
    bad = tree / "train" / "bee" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tree / "train" / "cat" / "notes.txt").write_text("hello")
    with pytest.raises(ImageError, match="broken.jpg.*skip_corrupt=True"):
        load_class_folders(tree)
    data = load_class_folders(tree, skip_corrupt=True)
    assert sorted(p.name for p in data.skipped) == ["broken.jpg", "notes.txt"]
    assert len(data.splits["train"][1]) == 9


def test_truncated_png_is_an_error(tmp_path):
    path = tmp_path / "a" / "t.png"
    _write(path, np.zeros((64, 64, 3), np.uint8) + np.arange(64, dtype=np.uint8)[:, None, None])
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ImageError, match="t.png"):
        decode_image(path)


def test_unknown_class_in_test_split(tree):
    _write(tree / "test" / "dog" / "0.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="dog"):
        scan_class_folders(tree)


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        scan_class_folders(tmp_path / "nowhere")


def test_cache_is_reused_and_invalidated(tree, tmp_path):
    cache = tmp_path / "cache"
    first = load_class_folders(tree, cache_dir=cache)
    files = list(cache.iterdir())
    assert len(files) == 1
    second = load_class_folders(tree, cache_dir=cache)
    np.testing.assert_array_equal(first.splits["train"][0], second.splits["train"][0])
    assert second.files["test"] == first.files["test"]
    # A new file changes the key: the cache is not used for a different tree.
    _write(tree / "train" / "ant" / "9.png", np.full((8, 8, 3), 250, np.uint8))
    third = load_class_folders(tree, cache_dir=cache)
    assert len(third.splits["train"][1]) == 10 and len(list(cache.iterdir())) == 2


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage", "mismatched"])
def test_a_damaged_cache_is_decoded_again_and_rewritten(tree, tmp_path, capsys, damage):
    cache = tmp_path / "cache"
    first = load_class_folders(tree, cache_dir=cache)
    [path] = list(cache.iterdir())
    data = path.read_bytes()
    if damage == "mismatched":  # a whole archive whose arrays disagree in length
        with np.load(path) as arrays:
            altered = {k: arrays[k] for k in arrays.files}
        altered["train_y"] = altered["train_y"][:-1]
        with open(path, "wb") as handle:
            np.savez(handle, **altered)
    else:
        path.write_bytes({"truncate": data[:len(data) // 2], "empty": b"",
                          "garbage": b"not a zip file" * 10}[damage])
    again = load_class_folders(tree, cache_dir=cache)
    notice = capsys.readouterr().err
    assert "notice: the decoded-image cache" in notice and "is damaged" in notice
    np.testing.assert_array_equal(again.splits["train"][0], first.splits["train"][0])
    np.testing.assert_array_equal(again.splits["train"][1], first.splits["train"][1])
    cached = load_class_folders(tree, cache_dir=cache)  # rewritten whole: read, no notice
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(cached.splits["train"][0], first.splits["train"][0])


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    bomb = png_header(tmp_path / "bomb.png", 30000, 30000)
    with pytest.raises(ImageError,
                       match=r"bomb.png is too large.*900000000 pixels.*--skip-corrupt"):
        decode_image(bomb)
    # Over the project's bound but under Pillow's own: refused from the header.
    big = png_header(tmp_path / "big.png", 9000, 9000)
    with pytest.raises(ImageError, match=r"big.png declares 9000x9000 pixels.*64,000,000"):
        decode_image(big)
    tree = make_tree(tmp_path / "tree", train=3, test=2)
    png_header(tree / "train" / "red" / "bomb.png", 30000, 30000)
    with pytest.raises(ImageError, match="bomb.png"):
        load_class_folders(tree)
    loaded = load_class_folders(tree, skip_corrupt=True)
    assert [p.name for p in loaded.skipped] == ["bomb.png"]
    assert len(loaded.splits["train"][1]) == 12


def test_an_empty_class_folder_or_a_link_to_its_parent_is_refused(tmp_path):
    tree = make_tree(tmp_path / "tree", train=2, test=1)
    (tree / "train" / "zebra").mkdir()
    with pytest.raises(ValueError, match=r"zebra holds no image files"):
        load_class_folders(tree)
    (tree / "train" / "zebra").rmdir()
    (tree / "train" / "loop").symlink_to(tree / "train")
    with pytest.raises(ValueError, match=r"loop is a link to .*a folder above it"):
        load_class_folders(tree)
