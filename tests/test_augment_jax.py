"""alexnet_lib.data.augment_jax: training's augmentation on the JAX device, without
TensorFlow: every crop a window the TensorFlow pipeline could take (the same canvas), flips
where asked, the PCA jitter one colour offset per image, the same key the same batch."""

import pytest
from helpers.jaxproc import jax_env, run_python

AUGMENT = r"""
import json, sys
import jax, jax.numpy as jnp, numpy as np
from alexnet_lib.data.augment_jax import train_batch
from alexnet_lib.data.device_transforms import normalize, views_of
from alexnet_lib.data.preprocessing import Augment, compute_normalization

rng = np.random.default_rng(0)
images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
norm = compute_normalization(images)
key = jax.random.PRNGKey(7)
x = np.asarray(normalize(images, norm))
out = {}

plain = np.asarray(train_batch(images, norm, 32, Augment(False, False, False), key))
out["plain_is_centre"] = bool(np.array_equal(plain, np.asarray(views_of(x, 32, "center"))))

def windows(canvas, size):
    margin = canvas.shape[0] - size
    return [(t, l) for t in range(margin + 1) for l in range(margin + 1)]

def found(batch, canvas_of, size):
    spots = []
    for i, image in enumerate(batch):
        canvas = canvas_of[i]
        hits = [(t, l) for t, l in windows(canvas, size)
                if np.array_equal(canvas[t:t + size, l:l + size], image)]
        spots.append(hits[0] if hits else None)
    return spots

padded = np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect")
crops = np.asarray(train_batch(images, norm, 32, Augment(True, False, False, padding=2), key))
spots = found(crops, padded, 32)
out["crops_found"] = all(s is not None for s in spots)
out["crop_spots"] = len(set(spots))
again = np.asarray(train_batch(images, norm, 32, Augment(True, False, False, padding=2), key))
other = np.asarray(train_batch(images, norm, 32, Augment(True, False, False, padding=2),
                               jax.random.PRNGKey(8)))
out["same_key_same"] = bool(np.array_equal(crops, again))
out["other_key_differs"] = not np.array_equal(crops, other)

flip = np.array([True, False, True, False, False, True])
flipped = np.asarray(train_batch(images, norm, 32,
                                 Augment(False, True, False, flip_mode="alternate"), key,
                                 flip=jnp.asarray(flip)))
out["flips"] = bool(all(np.array_equal(f, p[:, ::-1] if m else p)
                        for f, p, m in zip(flipped, plain, flip)))

pca = np.asarray(train_batch(images, norm, 32, Augment(False, False, True), key)) - plain
out["pca_constant"] = float(np.abs(pca - pca[:, :1, :1, :]).max())
out["pca_size"] = float(np.abs(pca).mean())

big = np.asarray(train_batch(images[:2], norm, 227, Augment(True, True, False), key))
canvas = np.asarray(jax.image.resize(jnp.asarray(x[:2]), (2, 256, 256, 3), "bilinear"))
spots = [found(big[i:i + 1], canvas[i:i + 1], 227)[0] or
         found(big[i:i + 1, :, ::-1], canvas[i:i + 1], 227)[0] for i in range(2)]
out["scale_shape"] = list(big.shape)
out["scale_found"] = all(s is not None for s in spots)
out["tensorflow"] = sys.modules.get("tensorflow", "no") is None
print(json.dumps(out))
"""


@pytest.mark.slow
def test_training_augmentation_on_jax_without_tensorflow(tmp_path):
    out = run_python(AUGMENT, env=jax_env(tmp_path), timeout=600)
    assert out["tensorflow"] is True
    assert out["plain_is_centre"]
    assert out["crops_found"] and out["crop_spots"] >= 3  # windows of the padded canvas, varied
    assert out["same_key_same"] and out["other_key_differs"]
    assert out["flips"]
    assert out["pca_constant"] < 1e-5 and out["pca_size"] > 1e-3  # one offset per image
    assert out["scale_shape"] == [2, 227, 227, 3] and out["scale_found"]
