"""make_datasets: splits, statistics, augmentation, determinism, resume, errors (synthetic data)."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from alexnet_lib.data import transforms
from alexnet_lib.data.datasets import make_datasets
from alexnet_lib.data.preprocessing import Augment, compute_normalization, crop_policy


def _fake(n_train=200, n_test=50, size=16, classes=4, seed=0):
    """Images whose first pixel encodes their index, so splits can be told apart."""
    rng = np.random.default_rng(seed)

    def split(n, offset):
        x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        ids = np.arange(n) + offset
        x[:, 0, 0, 0], x[:, 0, 0, 1] = ids % 256, ids // 256
        return x, (np.arange(n) % classes).astype(np.int32)
    splits = {"train": split(n_train, 0), "test": split(n_test, 10000)}
    return splits, tuple("abcdefghij"[:classes]), []


def _ids(x):
    return set((x[:, 0, 0, 0].astype(int) + 256 * x[:, 0, 0, 1].astype(int)).tolist())


def _make(loaded=None, **kw):
    kw.setdefault("preset", "cifar")
    preset = kw.pop("preset")
    loaded = loaded or _fake()
    from alexnet_lib.model import get_preset
    p = get_preset(preset, num_classes=len(loaded[1]), image_size=kw.pop("image_size", 16))
    return make_datasets("fake", p, loaded=loaded, **kw)


def test_validation_split_is_seeded_disjoint_and_sized():
    a = _make(val_size=30, batch_size=16, seed=1)
    b = _make(val_size=30, batch_size=16, seed=1)
    c = _make(val_size=30, batch_size=16, seed=2)
    assert (a.size("train"), a.size("val"), a.size("test")) == (170, 30, 50)
    val_a, train_a = _ids(a.splits["val"][0]), _ids(a.splits["train"][0])
    assert not val_a & train_a and len(val_a | train_a) == 200
    assert val_a == _ids(b.splits["val"][0]) and val_a != _ids(c.splits["val"][0])
    assert a.steps_per_epoch == 170 // 16


def test_subsets():
    ds = _make(val_size=20, train_subset=64, test_subset=10, batch_size=16)
    assert (ds.size("train"), ds.size("val"), ds.size("test")) == (64, 20, 10)
    assert sum(len(y) for _, y in ds.train(0)) == 64
    assert sum(len(y) for _, y in ds.test()) == 10


def test_normalization_statistics_match_numpy():
    x = np.random.default_rng(3).integers(0, 256, (50, 6, 6, 3), dtype=np.uint8)
    norm = compute_normalization(x, chunk=7)
    pixels = x.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(norm.mean, pixels.mean(0), rtol=1e-10)
    np.testing.assert_allclose(norm.std, pixels.std(0), rtol=1e-9)
    cov = np.cov(pixels.T, bias=True)
    vecs = np.array(norm.eigvec)
    np.testing.assert_allclose(vecs @ np.diag(norm.eigval) @ vecs.T, cov, atol=1e-10)
    image = compute_normalization(x, "mean_image")
    np.testing.assert_allclose(image.mean_image, x.mean(0), rtol=1e-6)
    # The list form (images of several sizes) gives the same statistics.
    listed = compute_normalization(list(x))
    np.testing.assert_allclose(listed.mean, norm.mean)


def test_evaluation_is_exact_normalization_and_train_stats_are_standard():
    ds = _make(val_size=0, batch_size=32)
    norm = ds.normalization
    x, _ = next(iter(ds.test()))
    raw = ds.splits["test"][0][:32]
    expected = (raw / 255.0 - np.array(norm.mean)) / np.array(norm.std)
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-5)
    everything = np.concatenate([x.numpy() for x, _ in ds.evaluation("train")])
    np.testing.assert_allclose(everything.reshape(-1, 3).mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(everything.reshape(-1, 3).std(0), 1, atol=1e-4)


def test_random_crop_is_a_window_of_the_padded_image_and_flip_mirrors():
    ds = _make(val_size=0, batch_size=16, augment="crop,flip")
    x, y = next(iter(ds.train(0)))
    norm = ds.normalization
    order = np.random.default_rng([ds.seed, 1, 0]).permutation(ds.size("train"))[:16]
    raw = (ds.splits["train"][0][order] / 255.0 - np.array(norm.mean)) / np.array(norm.std)
    np.testing.assert_array_equal(y.numpy(), ds.splits["train"][1][order])
    pad = crop_policy(16)[1]
    padded = np.pad(raw, [(0, 0), (pad, pad), (pad, pad), (0, 0)], mode="reflect")
    flips = 0
    for i in range(16):
        windows = [padded[i, top:top + 16, left:left + 16]
                   for top in range(2 * pad + 1) for left in range(2 * pad + 1)]
        plain = any(np.allclose(w, x[i], atol=1e-5) for w in windows)
        mirrored = any(np.allclose(w[:, ::-1], x[i], atol=1e-5) for w in windows)
        assert plain or mirrored
        flips += mirrored and not plain
    assert 0 < flips < 16


def test_flip_views_are_the_centre_and_its_mirror_image():
    ds = _make(val_size=0, batch_size=16)
    raw = (ds.splits["test"][0][:16] / 255.0 - np.array(ds.normalization.mean)) \
        / np.array(ds.normalization.std)
    centre, _ = next(iter(ds.test("center")))
    views, labels = next(iter(ds.test("flip")))
    assert views.shape == (16, 2, 16, 16, 3) and labels.shape == (16,)
    np.testing.assert_allclose(centre, raw, atol=1e-5)
    np.testing.assert_allclose(views[:, 0], raw, atol=1e-5)
    np.testing.assert_allclose(views[:, 1], raw[:, :, ::-1], atol=1e-5)
    with pytest.raises(ValueError, match="'mirror'.*center.*flip.*tta"):
        next(iter(ds.test("mirror")))


def test_pca_jitter_adds_one_colour_offset_per_image_along_the_components():
    loaded = _fake()
    plain = _make(loaded, val_size=0, batch_size=16, augment="none", seed=5)
    jitter = _make(loaded, val_size=0, batch_size=16, augment="pca", seed=5,
                   normalization=plain.normalization)
    a, _ = next(iter(plain.train(0)))
    b, _ = next(iter(jitter.train(0)))
    diff = (b - a).numpy() * np.array(plain.normalization.std)  # back to the 0..1 scale
    per_image = diff.reshape(16, -1, 3)
    np.testing.assert_allclose(per_image, per_image[:, :1, :].repeat(per_image.shape[1], 1),
                               atol=1e-5)
    assert np.abs(per_image[:, 0]).max() > 1e-4
    # Every offset is a combination of the eigenvectors scaled by eigenvalues x N(0, 0.1).
    vecs, vals = np.array(plain.normalization.eigvec), np.array(plain.normalization.eigval)
    alphas = per_image[:, 0] @ vecs / vals
    assert 0.02 < alphas.std() < 0.3


def test_epochs_are_reproducible_distinct_and_resumable():
    ds = _make(val_size=0, batch_size=16)
    first = [x.numpy() for x, _ in ds.train(2)]
    again = [x.numpy() for x, _ in ds.train(2)]
    other = [x.numpy() for x, _ in ds.train(3)]
    resumed = [x.numpy() for x, _ in ds.train(2, start_step=4)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])
    assert len(resumed) == len(first) - 4
    assert all(np.array_equal(a, b) for a, b in zip(first[4:], resumed))


def test_large_inputs_use_the_papers_scale_and_crop_with_ten_views():
    assert crop_policy(227) == ("scale", 256)
    ds = _make(val_size=0, batch_size=4, image_size=227, test_subset=4)
    x, _ = next(iter(ds.train(0)))
    assert x.shape == (4, 227, 227, 3)
    centre, _ = next(iter(ds.test()))
    views, _ = next(iter(ds.test("tta")))
    assert views.shape == (4, 10, 227, 227, 3)
    np.testing.assert_allclose(views[:, 4], centre, atol=1e-6)
    np.testing.assert_allclose(views[:, 9], centre[:, :, ::-1], atol=1e-6)
    raw = ds.splits["test"][0][:4]
    normalized = (raw / 255.0 - np.array(ds.normalization.mean)) / np.array(ds.normalization.std)
    canvas = tf.image.resize(normalized,
                             (256, 256)).numpy()
    np.testing.assert_allclose(views[:, 0], canvas[:, :227, :227], atol=1e-4)
    np.testing.assert_allclose(views[:, 3], canvas[:, 29:, 29:], atol=1e-4)


def test_resize_in_model_yields_stored_size():
    ds = _make(val_size=0, batch_size=4, image_size=227, resize_in_model=True)
    assert ds.input_size == 16 and ds.image_size == 227
    assert next(iter(ds.train(0)))[0].shape == (4, 16, 16, 3)


def test_mean_image_normalization():
    ds = _make(val_size=0, batch_size=8, normalization="mean_image", augment="none")
    x, _ = next(iter(ds.test()))
    raw = ds.splits["test"][0][:8].astype(np.float32)
    np.testing.assert_allclose(x.numpy(), raw - ds.normalization.mean_image, atol=1e-3)


def test_images_of_several_sizes_from_a_folder_tree(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("x", "y"):
            for i, shape in enumerate([(10, 14), (20, 9), (16, 16)]):
                path = tmp_path / split / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(path)
    from alexnet_lib.model import get_preset
    ds = make_datasets(tmp_path, get_preset("cifar", num_classes=2, image_size=16), val_size=0,
                       batch_size=3, data_dir=tmp_path / "cache")
    assert ds.stored_size is None
    batches = list(ds.train(0))
    assert len(batches) == 2 and batches[0][0].shape == (3, 16, 16, 3)
    assert sum(len(y) for _, y in ds.test()) == 6


@pytest.mark.parametrize("kwargs, match", [
    ({"val_size": 500}, "val_size=500"),
    ({"train_subset": 1000, "val_size": 10}, "train_subset=1000"),
    ({"batch_size": 0}, "batch_size=0"),
    ({"augment": "crop,rotate"}, "rotate"),
])
def test_bad_arguments_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _make(**kwargs)


def test_class_count_must_match_the_preset():
    with pytest.raises(ValueError, match="num_classes=4"):
        make_datasets("fake", "cifar", loaded=_fake())


def test_missing_source_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-data"):
        make_datasets(tmp_path / "no-such-data")


def test_augment_values():
    assert Augment.from_value("crop,flip") == Augment(True, True, False)
    assert Augment.from_value(True) == Augment(True, True, True)
    assert Augment.from_value(None) == Augment(False, False, False)


def test_smaller_input_crops_the_stored_image_without_resizing():
    assert crop_policy(24, 32) == ("crop", 32) and crop_policy(16, 64) == ("pad", 2)
    ds = _make(_fake(size=20), val_size=0, batch_size=8, image_size=16, augment="crop")
    norm = ds.normalization
    x, _ = next(iter(ds.test()))
    raw = (ds.splits["test"][0][:8] / 255.0 - np.array(norm.mean)) / np.array(norm.std)
    np.testing.assert_allclose(x.numpy(), raw[:, 2:18, 2:18], atol=1e-5)  # the centre
    order = np.random.default_rng([ds.seed, 1, 0]).permutation(ds.size("train"))[:8]
    train_raw = (ds.splits["train"][0][order] / 255.0 - np.array(norm.mean)) / np.array(norm.std)
    t, _ = next(iter(ds.train(0)))
    offsets = set()
    for i in range(8):
        hits = [(a, b) for a in range(5) for b in range(5)
                if np.allclose(train_raw[i, a:a + 16, b:b + 16], t[i], atol=1e-5)]
        assert hits
        offsets.add(hits[0])
    assert len(offsets) > 1
    views, _ = next(iter(ds.test("tta")))
    np.testing.assert_allclose(views[:, 0], raw[:, :16, :16], atol=1e-5)
    np.testing.assert_allclose(views[:, 4], x, atol=1e-5)
    flip, _ = next(iter(ds.test("flip")))
    np.testing.assert_allclose(flip[:, 0], x, atol=1e-5)
    np.testing.assert_allclose(flip[:, 1], x[:, :, ::-1], atol=1e-5)


def test_augment_strings_with_values():
    assert Augment.from_value("crop=2,flip=alternate") == Augment(
        True, True, False, padding=2, flip_mode="alternate")
    assert Augment.from_value({"crop": 3, "flip": False}) == Augment(True, False, False, 3)
    assert Augment.from_value({"crop": 0, "flip": True}) == Augment(False, True, False)
    for bad, match in [("crop=0", "crop=N.*'crop=0'"), ("crop=two", "crop=N.*'crop=two'"),
                       ("flip=sometimes", "random.*alternate.*'flip=sometimes'"),
                       ("pca=1", "pca takes no value")]:
        with pytest.raises(ValueError, match=match):
            Augment.from_value(bad)


def _normalized(ds, images):
    norm = ds.normalization
    return (images / 255.0 - np.array(norm.mean)) / np.array(norm.std)


def test_translations_stay_within_the_padding_asked_for():
    ds = _make(val_size=0, batch_size=32, augment="crop=1")
    x, _ = next(iter(ds.train(0)))
    order = np.random.default_rng([ds.seed, 1, 0]).permutation(ds.size("train"))[:32]
    padded = np.pad(_normalized(ds, ds.splits["train"][0][order]),
                    [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    offsets = set()
    for i in range(32):
        hits = [(top, left) for top in range(3) for left in range(3)
                if np.allclose(padded[i, top:top + 16, left:left + 16], x[i], atol=1e-5)]
        assert hits, f"image {i} is not a window of the image padded by 1"
        offsets.add(hits[0])
    assert len(offsets) > 3  # several of the 9 translations occur


def test_alternating_flips_mirror_each_image_in_every_other_epoch():
    ds = _make(val_size=0, batch_size=20, augment="flip=alternate")
    n = ds.steps_per_epoch * 20
    seen = {}
    for epoch in range(3):
        order = np.random.default_rng([ds.seed, 1, epoch]).permutation(ds.size("train"))[:n]
        images = np.concatenate([x.numpy() for x, _ in ds.train(epoch)])
        raw = _normalized(ds, ds.splits["train"][0][order])
        mirrored = np.array([np.allclose(images[i], raw[i, :, ::-1], atol=1e-5)
                             and not np.allclose(images[i], raw[i], atol=1e-5)
                             for i in range(n)])
        assert all(np.allclose(images[i], raw[i, :, ::-1] if m else raw[i], atol=1e-5)
                   for i, m in enumerate(mirrored))
        seen[epoch] = dict(zip(order.tolist(), mirrored.tolist()))
    common = set(seen[0]) & set(seen[1]) & set(seen[2])
    assert len(common) > 100
    assert all(seen[0][r] != seen[1][r] and seen[0][r] == seen[2][r] for r in common)
    assert 0.3 < np.mean([seen[0][r] for r in common]) < 0.7  # the first epoch is random
    # Rebuilding an epoch (a resumed run) gives the same flips.
    again = np.concatenate([x.numpy() for x, _ in ds.train(1)])
    np.testing.assert_array_equal(again, np.concatenate([x.numpy() for x, _ in ds.train(1)]))


@pytest.mark.parametrize("views, shifts", [
    ("shift6", ((0, 0), (-1, -1), (1, 1))),  # centre, up-left, down-right
    ("shift10", ((0, 0), (-2, 0), (2, 0), (0, -2), (0, 2))),  # centre, up, down, left, right
])
def test_shift_views_are_the_centre_and_its_shifts_mirrored(views, shifts):
    ds = _make(val_size=0, batch_size=8)
    raw = _normalized(ds, ds.splits["test"][0][:8])
    got, _ = next(iter(ds.test(views)))
    assert got.shape == (8, 2 * len(shifts), 16, 16, 3)
    reach = max(abs(d) for shift in shifts for d in shift)
    padded = np.pad(raw, [(0, 0), (reach, reach), (reach, reach), (0, 0)], mode="reflect")
    # each view: the window of the reflect-padded image moved by (dy, dx), then its mirror
    expected = [padded[:, reach + dy:reach + dy + 16, reach + dx:reach + dx + 16]
                for dy, dx in shifts]
    np.testing.assert_allclose(expected[0], raw)
    assert not np.allclose(expected[1], expected[2])  # the shifts move the image
    for k, view in enumerate(expected):
        np.testing.assert_allclose(got[:, 2 * k], view, atol=1e-5)
        np.testing.assert_allclose(got[:, 2 * k + 1], view[:, :, ::-1], atol=1e-5)


def test_shifted_views_pad_a_crop_canvas_with_too_little_room():
    """A 15-pixel input cropped from 16 leaves no room for two-pixel shifts around the
    centre: the canvas is reflect-padded so that every view is a whole window."""
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 16, 16, 3)), tf.float32)
    views = transforms._shifted_views(x, 15, transforms.SHIFTS["shift10"])
    assert views.shape == (2, 10, 15, 15, 3)
    padded = np.pad(x.numpy(), [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect")
    np.testing.assert_allclose(views[:, 2], padded[:, 0:15, 2:17])  # up two pixels
    np.testing.assert_allclose(views[:, 9], padded[:, 2:17, 4:19][:, :, ::-1])  # right, mirrored


def test_pipelines_run_without_tf_data_autotuning():
    """An autotuned iterator's destructor waits for tf.data's tuning thread, which sleeps up
    to a minute between rounds: each epoch's dropped iterator stalled training. Every
    pipeline turns autotuning off, and an iterator dropped half-way still gives way to the
    next epoch's identical batches."""
    ds = _make(val_size=20, batch_size=20, augment="flip=alternate")
    for dataset in (ds.train(0), ds.train(1, 1), ds.val(), ds.test(), ds.test("flip")):
        assert dataset.options().autotune.enabled is False
    first = iter(ds.train(0))
    next(first)
    del first
    again = [x.numpy() for x, _ in ds.train(0)]
    assert len(again) == ds.steps_per_epoch
    np.testing.assert_array_equal(again[0], next(iter(ds.train(0)))[0].numpy())
