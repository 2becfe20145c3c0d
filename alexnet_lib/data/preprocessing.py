"""What a batch transform needs to know, without TensorFlow: the vocabularies (test-time
views, normalizations, flip modes), the augmentation switches, the training split's
statistics, the crop policies and the preprocessing a saved model carries.

These are plain data and NumPy (and Keras operations for :func:`resize_image`, so that
they run on any Keras backend); :mod:`alexnet_lib.data.transforms` applies them to batches
with TensorFlow. Each vocabulary is checked here, in one place (:func:`check_views`,
:meth:`Augment.from_value`, :data:`NORMALIZATIONS`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np

from ..checks import check_int
from ..model import MAX_IMAGE_SIZE

NORMALIZATIONS = ("channel", "mean_image")
# Test-time views: the centre crop alone (1 view), it and its mirror image (2), the centre
# and shifted views, each with its mirror image (shift6, shift10; SHIFTS: each position's
# (down, right) offset in pixels), or the paper's 10 patches (tta: four corners and the
# centre, and their mirror images). CENTER_VIEW: where the centre crop sits among each
# set's views. RENAMED_VIEWS: earlier names, refused in what a person writes and read in
# the files earlier versions saved.
VIEWS = ("center", "flip", "shift6", "shift10", "tta")
SHIFTS = {"shift6": ((0, 0), (-1, -1), (1, 1)),
          "shift10": ((0, 0), (-2, 0), (2, 0), (0, -2), (0, 2))}
CENTER_VIEW = {"center": 0, "flip": 0, "shift6": 0, "shift10": 0, "tta": 4}
RENAMED_VIEWS = {"shift": "shift6", "shift2": "shift10"}
FLIP_MODES = ("random", "alternate")
PCA_STD = 0.1  # the paper's standard deviation of the colour-jitter coefficients


@dataclasses.dataclass(frozen=True)
class Augment:
    """Training augmentation switches (evaluation never augments).

    Attributes:
        crop: random crop (pad-and-crop for small inputs, the paper's crops for large ones).
        flip: horizontal mirror.
        pca: the paper's PCA colour jitter (Section 4.1).
        padding: for small inputs (the ``pad`` policy), the reflect padding the random crop
            is taken from, i.e. the largest translation in pixels; 0: the policy's own
            (``image_size / 8``, 4 pixels at 32).
        flip_mode: ``random`` (each image mirrored with probability 1/2, drawn afresh each
            epoch) or ``alternate`` (each image mirrored in every other epoch, starting at
            random: over any two epochs the network sees both orientations of every image).

    Strings name the switches that are on, comma-separated, with an optional value:
    ``"crop,flip"``, ``"crop=2,flip=alternate"`` (translations of up to 2 pixels,
    alternating flips).
    """

    crop: bool = True
    flip: bool = True
    pca: bool = False
    padding: int = 0
    flip_mode: str = "random"

    @classmethod
    def from_value(cls, value: "Augment | dict | bool | str | None") -> "Augment":
        """``True``/``"all"``: every switch; ``False``/``None``/``"none"``: none; a dict,
        or a comma-separated string such as ``"crop=2,flip"``, names the switches that are on.
        """
        if isinstance(value, Augment):
            return value
        if value is True or value == "all":
            return cls(True, True, True)
        if value in (False, None, "none", ""):
            return cls(False, False, False)
        text = value
        if isinstance(value, str):
            value = dict(item.strip().partition("=")[::2] for item in value.split(","))
        if not isinstance(value, dict):
            raise ValueError(f"augment must be a bool, a dict or a string like 'crop,flip'. "
                             f"Received: augment={text!r}")
        switches = ("crop", "flip", "pca")
        unknown = set(value) - set(switches)
        if unknown:
            raise ValueError(f"Unknown augmentation {sorted(unknown)}: choose from "
                             f"{list(switches)}. Received: augment={text!r}")
        on = {name: name in value and (value[name] == "" or bool(value[name]))
              for name in switches}
        padding, flip_mode = 0, "random"
        crop, flip = value.get("crop"), value.get("flip")
        if on["crop"] and crop not in ("", True, None):
            try:
                padding = check_int("crop padding", int(crop) if isinstance(crop, str) and
                                    crop.strip().isdigit() else crop, 1, 64)
            except ValueError:
                raise ValueError(f"augment crop=N takes the padding in pixels, 1 to 64. "
                                 f"Received: augment={text!r}") from None
        if on["flip"] and flip not in ("", True, None):
            if flip not in FLIP_MODES:
                raise ValueError(f"augment flip=MODE takes one of {list(FLIP_MODES)}. "
                                 f"Received: augment={text!r}")
            flip_mode = flip
        if on["pca"] and value["pca"] not in ("", True, None):
            raise ValueError(f"augment pca takes no value. Received: augment={text!r}")
        return cls(**on, padding=padding, flip_mode=flip_mode)


@dataclasses.dataclass(frozen=True)
class Normalization:
    """Statistics of the training split, reused by evaluation and inference.

    ``channel`` maps a pixel ``p`` (0..255) to ``(p / 255 - mean) / std`` per channel;
    ``mean_image`` is the paper's: ``p - mean_image`` on the 0..255 scale. ``eigval`` and
    ``eigvec`` are the principal components of RGB values (0..1 scale) for the colour jitter.
    """

    mode: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    eigval: tuple[float, float, float]
    eigvec: tuple[tuple[float, float, float], ...]
    mean_image: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in ("mode", "mean", "std", "eigval", "eigvec")}
        data = {k: np.asarray(v).tolist() if not isinstance(v, str) else v for k, v in data.items()}
        if self.mean_image is not None:
            data["mean_image"] = np.round(np.asarray(self.mean_image, np.float32), 4).tolist()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Normalization":
        """Statistics saved by :meth:`to_dict`, checked.

        Raises:
            ValueError: naming the bad entry (a missing field, a non-finite value, a
                standard deviation that is not positive: it would divide by zero).
        """
        if not isinstance(data, dict):
            raise ValueError(
                f"normalization statistics must be a mapping. Received: {data!r}"[:200])

        def vector(name, shape, positive=False):
            try:
                value = np.asarray(data[name], np.float64)
            except KeyError:
                raise ValueError(f"normalization statistics lack {name!r}") from None
            except (TypeError, ValueError):
                value = None
            if value is None or value.shape != shape or not np.isfinite(value).all() or (
                    positive and not (value > 0).all()):
                need = "positive finite numbers" if positive else "finite numbers"
                raise ValueError(f"normalization {name} must be {shape} {need}. Received: "
                                 f"{name}={data.get(name)!r}"[:300])
            return value

        mode = data.get("mode")
        if mode not in NORMALIZATIONS:
            raise ValueError(f"normalization mode must be one of {NORMALIZATIONS}. "
                             f"Received: mode={mode!r}")
        mean, std = vector("mean", (3,)), vector("std", (3,), positive=True)
        eigval, eigvec = vector("eigval", (3,)), vector("eigvec", (3, 3))
        mean_image = data.get("mean_image")
        if mean_image is not None or mode == "mean_image":
            mean_image = np.asarray(mean_image, np.float32) if mean_image is not None else None
            if mean_image is None or mean_image.ndim != 3 or mean_image.shape[-1] != 3 or (
                    not np.isfinite(mean_image).all()):
                raise ValueError("normalization mode 'mean_image' needs a finite H x W x 3 "
                                 "mean_image.")
        return cls(mode=mode, mean=tuple(mean.tolist()), std=tuple(std.tolist()),
                   eigval=tuple(eigval.tolist()), eigvec=tuple(tuple(r) for r in eigvec.tolist()),
                   mean_image=mean_image)


def compute_normalization(images: np.ndarray | list[np.ndarray], mode: str = "channel",
                          chunk: int = 4096) -> Normalization:
    """Per-channel mean/std, RGB principal components and (for ``mean_image``) the mean image
    of uint8 ``images`` (an ``N x H x W x 3`` array, or a list of ``H x W x 3`` arrays).

    Raises:
        ValueError: for an unknown ``mode``, or ``mean_image`` over images of several sizes.
    """
    if mode not in NORMALIZATIONS:
        raise ValueError(f"Unknown normalization {mode!r}: choose from {NORMALIZATIONS}.")
    total = np.zeros(3)
    outer = np.zeros((3, 3))
    count = 0
    image_sum = None
    pieces = (images[i:i + chunk] for i in range(0, len(images), chunk)) if isinstance(
        images, np.ndarray) else ([x] for x in images)
    for piece in pieces:
        pixels = np.concatenate([np.asarray(x, np.float64).reshape(-1, 3) for x in piece]) / 255.0
        total += pixels.sum(0)
        outer += pixels.T @ pixels
        count += len(pixels)
        if mode == "mean_image":
            if not isinstance(images, np.ndarray):
                raise ValueError("normalization='mean_image' needs images of one size; this "
                                 "source has several. Use normalization='channel'.")
            s = np.asarray(piece, np.float64).sum(0)
            image_sum = s if image_sum is None else image_sum + s
    mean = total / count
    cov = outer / count - np.outer(mean, mean)
    # A channel without variation is divided by one grey level, not by zero.
    std = np.maximum(np.sqrt(np.clip(np.diag(cov), 0, None)), 1 / 255)
    eigval, eigvec = np.linalg.eigh(cov)
    return Normalization(
        mode=mode, mean=tuple(mean.tolist()), std=tuple(std.tolist()),
        eigval=tuple(np.clip(eigval, 0, None).tolist()),
        eigvec=tuple(tuple(row) for row in eigvec.tolist()),
        mean_image=None if image_sum is None else (image_sum / len(images)).astype(np.float32),
    )


def crop_policy(image_size: int, stored_size: int | None = None) -> tuple[str, int]:
    """How crops of ``image_size`` are taken from images stored at ``stored_size``.

    ``("scale", canvas)`` for inputs over 64 pixels (rescale to ``canvas``, crop);
    ``("crop", stored_size)`` when the input is a little smaller than the stored image (up to
    1.5x, e.g. 24 from 32, as TensorFlow's classic CIFAR-10 model did): crop without
    resizing; else ``("pad", padding)``: resize to ``image_size``, reflect-pad, crop.
    """
    if image_size > 64:
        return "scale", int(round(image_size * 256 / 227))
    if stored_size is not None and image_size < stored_size <= round(image_size * 1.5):
        return "crop", int(stored_size)
    return "pad", max(1, round(image_size / 8))


def check_views(views: str, name: str = "views", saved: bool = False) -> str:
    """``views`` if it names a set of test-time views (:data:`VIEWS`), else one ``ValueError``
    naming the value and the choices. An earlier name (:data:`RENAMED_VIEWS`) is refused
    with its new one, unless ``saved`` (read from a file an earlier version wrote): then it
    is translated."""
    if isinstance(views, str) and views in RENAMED_VIEWS:
        if saved:
            return RENAMED_VIEWS[views]
        raise ValueError(f"The test-time views {views!r} are now named "
                         f"{RENAMED_VIEWS[views]!r}: give `{name}={RENAMED_VIEWS[views]}`. "
                         f"Received: {name}={views!r}")
    if isinstance(views, bool) or views not in VIEWS:
        raise ValueError(f"Unknown test-time views {views!r}: `{name}` must be one of "
                         f"{list(VIEWS)}. Received: {name}={views!r}")
    return views


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """A uint8 ``H x W x 3`` image resized (antialiased) to ``size x size`` uint8."""
    if image.shape[:2] == (size, size):
        return image
    # Keras's resize is TensorFlow's tf.image.resize on that backend (the same pixels).
    resized = keras.ops.image.resize(np.asarray(image, np.float32), (size, size),
                                     antialias=True)
    return np.clip(np.round(keras.ops.convert_to_numpy(resized)), 0, 255).astype(np.uint8)




@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How a model's images were prepared, which a saved model carries so that inference
    sees images exactly as evaluation did.

    Attributes:
        class_names: one name per output, in output order.
        image_size: the network's input side.
        input_size: the side of what the pipeline yields: ``image_size``, or the stored side
            when the model's first layer resizes (``resize_in_model``).
        stored_size: ``(height, width)`` of the training images, ``None`` when they had
            several sizes; inference brings every image to it first.
        normalization: the training split's statistics.
        eval_views: the test-time views the model's recipe evaluates with.
    """

    class_names: tuple[str, ...]
    image_size: int
    input_size: int
    stored_size: tuple[int, int] | None
    normalization: Normalization
    eval_views: str = "center"

    def to_info(self) -> dict[str, Any]:
        """Plain values, as the model file's ``inference_info`` holds them."""
        return {"class_names": list(self.class_names), "image_size": self.image_size,
                "input_size": self.input_size, "stored_size": list(self.stored_size or ()),
                "normalization": self.normalization.to_dict(), "eval_views": self.eval_views}

    @classmethod
    def from_info(cls, info: Any) -> "Preprocessing":
        """The preprocessing an ``inference_info`` mapping describes, checked.

        Raises:
            ValueError: naming the missing or bad entry.
        """
        if not isinstance(info, dict):
            raise ValueError(f"expected a mapping, found {type(info).__name__}")
        names = info.get("class_names")
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
            raise ValueError(
                f"class_names must be a list of non-empty strings, found {names!r}"[:300])
        sizes = {key: check_int(key, info.get(key), 1, MAX_IMAGE_SIZE)
                 for key in ("input_size", "image_size") if key in info}
        if "input_size" not in sizes:
            raise ValueError("input_size is missing")
        stored = info.get("stored_size") or []
        if not isinstance(stored, (list, tuple)) or len(stored) not in (0, 2) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in stored):
            raise ValueError(f"stored_size must list two positive integers, found {stored!r}")
        return cls(class_names=tuple(names), input_size=sizes["input_size"],
                   image_size=sizes.get("image_size", sizes["input_size"]),
                   stored_size=tuple(stored) or None,
                   normalization=Normalization.from_dict(info.get("normalization")),
                   eval_views=check_views(info.get("eval_views", "center"), saved=True))

    def to_stored(self, image: np.ndarray) -> np.ndarray:
        """A uint8 image at the size the training images were stored at (square stores)."""
        return resize_image(image, self.stored_size[0]) if self.stored_size else image
