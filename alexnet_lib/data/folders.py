"""ImageNet-style class-folder trees: ``<root>/<split>/<class>/<image>`` or
``<root>/<class>/<image>``.

* Class names are the class folder names in sorted (code point) order, the order Keras'
  ``image_dataset_from_directory`` uses; label ``i`` is ``class_names[i]``. For the CIFAR-10
  JPEG tree this gives the official order 0..9 (airplane .. truck).
* Splits are the subfolders ``train``, ``val`` (or ``validation``) and ``test`` when the root
  holds them; otherwise the whole tree is the ``train`` split.
* Images are decoded with Pillow into uint8 RGB at their stored size: grayscale, palette and
  RGBA files become 3 channels. When every image of a split has the same size the split is one
  ``N x H x W x 3`` array; otherwise a list of arrays.
* A file that cannot be decoded (corrupt, truncated, or not an image) raises :class:`ImageError`
  naming it, unless ``skip_corrupt=True``, which skips it and records it in ``skipped``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..files import remove_debris, write_through

SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "test": "test"}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


# The most pixels an image may declare before it is decoded (a 16-bit 8000x8000 photo
# passes; a 30000x30000 "decompression bomb" of a few kilobytes does not).
MAX_IMAGE_PIXELS = 64_000_000
SKIP_HINT = (", or skip unreadable files (--skip-corrupt on the command line, "
             "skip_corrupt=True in Python)")


class ImageError(ValueError):
    """An image file that cannot be decoded."""


@dataclasses.dataclass
class FolderDataset:
    """A decoded class-folder tree.

    Attributes:
        root: the tree's root folder.
        class_names: folder names in label order.
        splits: ``{split: (images, labels)}``; images is a uint8 array ``N x H x W x 3`` when
            all images of the split share a size, else a list of ``H x W x 3`` arrays.
        files: ``{split: [path, ...]}`` in the same order as the images.
        skipped: files that could not be decoded (only with ``skip_corrupt=True``).
    """

    root: Path
    class_names: tuple[str, ...]
    splits: dict[str, tuple[np.ndarray | list[np.ndarray], np.ndarray]]
    files: dict[str, list[Path]]
    skipped: list[Path]


def decode_image(path: str | os.PathLike) -> np.ndarray:
    """One image file as a uint8 ``H x W x 3`` RGB array.

    Raises:
        ImageError: naming the file, when it is not a readable JPEG/PNG (or other Pillow
            format) image.
    """
    if os.path.exists(path) and not (os.path.isfile(path) or os.path.isdir(path)):
        # A FIFO would block the read for ever; a device could be endless.
        raise ImageError(f"{path} is not a regular file (a pipe, socket or device): pass an "
                         f"image file.")
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past twice its limit, raises) about huge images; the
            # explicit bound below gives one clear error instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ImageError(
                    f"{path} declares {width}x{height} pixels, more than the "
                    f"{MAX_IMAGE_PIXELS:,} this project decodes (a decompression bomb, or an "
                    f"image to downscale first). Remove or shrink the file{SKIP_HINT}.")
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or (
                    image.mode == "P" and "transparency" in image.info):
                # Composite on white: a transparent background is not black.
                rgba = image.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, rgba)
            elif image.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit grayscale: keep the top 8 bits rather than clipping at 255.
                array = np.asarray(image, dtype=np.uint32) >> 8
                return np.repeat(array.astype(np.uint8)[..., None], 3, axis=-1)
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except ImageError:
        raise
    except IsADirectoryError:
        raise ImageError(f"{path} is a folder, not an image file: pass the image files in it "
                         f"(e.g. {Path(path) / '*.jpg'}).") from None
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file.") from None
    except Image.DecompressionBombError as error:
        raise ImageError(
            f"{path} is too large to decode ({error}); this project decodes at most "
            f"{MAX_IMAGE_PIXELS:,} pixels (a decompression bomb, or an image to downscale "
            f"first). Remove or shrink the file{SKIP_HINT}.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageError(
            f"{path} cannot be decoded as an image ({type(error).__name__}: {error}). "
            f"Remove or replace the file{SKIP_HINT}."
        ) from error


def _list_class_folders(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def _list_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def scan_class_folders(root: str | os.PathLike
                       ) -> tuple[tuple[str, ...], dict[str, list[tuple[Path, int]]]]:
    """Class names and ``{split: [(file, label), ...]}`` of a tree, without decoding anything.

    Raises:
        FileNotFoundError: when ``root`` is not a folder.
        ValueError: when a split has no class folders, or a split holds a class the training
            split lacks.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(
            f"Class-folder source {str(root)!r} is not a folder. Expected <root>/<class>/<image> "
            f"or <root>/<split>/<class>/<image> with split in train, val, test.")
    subfolders = {p.name: p for p in _list_class_folders(root)}
    split_folders = {SPLIT_NAMES[name]: path for name, path in subfolders.items()
                     if name in SPLIT_NAMES}
    if "train" not in split_folders:
        split_folders = {"train": root}
    classes = tuple(p.name for p in _list_class_folders(split_folders["train"]))
    if not classes:
        raise ValueError(f"{split_folders['train']} has no class folders: expected "
                         f"<class>/<image> below it.")
    index = {c: i for i, c in enumerate(classes)}
    splits: dict[str, list[tuple[Path, int]]] = {}
    for split, folder in split_folders.items():
        entries = []
        for class_folder in _list_class_folders(folder):
            if class_folder.name not in index:
                raise ValueError(
                    f"{class_folder} is a class the training split does not have "
                    f"({', '.join(classes)}). Every split must use the training split's classes.")
            target = class_folder.resolve()
            if target == root or target in root.parents or target in folder.resolve().parents \
                    or target == folder.resolve():
                raise ValueError(
                    f"Class folder {class_folder} is a link to {target}, a folder above it: "
                    f"a class folder must hold the images of one class. Remove the link.")
            files = _list_files(class_folder)
            if not files:
                raise ValueError(
                    f"Class folder {class_folder} holds no image files: every folder below "
                    f"{folder} is a class, so an empty one would add a class without images. "
                    f"Add its images or remove the folder.")
            entries += [(f, index[class_folder.name]) for f in files]
        if not entries:
            raise ValueError(f"{folder} holds no image files below its class folders.")
        splits[split] = entries
    return classes, splits


def _signature(classes, entries) -> str:
    """Changes whenever a file is added, removed, renamed, resized or touched."""
    digest = hashlib.sha256(repr(classes).encode())
    for split in sorted(entries):
        for path, label in entries[split]:
            stat = path.stat()
            digest.update(f"{split}/{label}/{path}/{stat.st_size}/{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _read_cache(path: Path, classes) -> FolderDataset | None:
    """The cached decoded images, or ``None`` (with a one-line notice) when the cache is
    damaged -- truncated, emptied, altered -- so that the tree is decoded again and the
    cache rewritten."""
    try:
        with np.load(path, allow_pickle=False) as data:
            splits = {s: (data[f"{s}_x"], data[f"{s}_y"]) for s in data["splits"].tolist()}
            files = {s: [Path(f) for f in data[f"{s}_files"].tolist()] for s in splits}
            skipped = [Path(f) for f in data["skipped"].tolist()]
        for split, (x, y) in splits.items():
            if (x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3 or y.ndim != 1
                    or len(x) != len(y) or len(files[split]) != len(y)
                    or (len(y) and not 0 <= int(y.min()) <= int(y.max()) < len(classes))):
                raise ValueError(f"its {split} arrays do not fit together")
        return FolderDataset(Path(), classes, splits, files, skipped)
    except Exception as error:  # noqa: BLE001  (zip, npy and our own checks: all mean damage)
        reason = " ".join(str(error).split())[:120] or type(error).__name__
        print(f"notice: the decoded-image cache {path} is damaged ({type(error).__name__}: "
              f"{reason}); decoding the images again and rewriting it.", file=sys.stderr)
        return None


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as handle:  # a handle: np.savez would add .npz to a name
        np.savez(handle, **arrays)


def _write_cache(path: Path, dataset: FolderDataset) -> None:
    arrays = {"splits": np.array(list(dataset.splits)),
              "skipped": np.array([str(p) for p in dataset.skipped], dtype=str)}
    for split, (x, y) in dataset.splits.items():
        arrays.update({f"{split}_x": x, f"{split}_y": y,
                       f"{split}_files": np.array([str(p) for p in dataset.files[split]])})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_debris(path.parent, ["folders-*.npz"])
        write_through(path, lambda tmp: _savez(tmp, arrays))
    except OSError as error:
        # The cache only saves time: a cache folder that cannot be written (read-only, a
        # file, full) must not stop the work that needed the images.
        reason = error.strerror or str(error)
        print(f"warning: cannot cache the decoded images in {path.parent} ({reason}); "
              f"continuing without the cache. Set ALEXNET_DATA_DIR to a writable folder to "
              f"keep it.", file=sys.stderr)


def load_class_folders(root: str | os.PathLike, *, skip_corrupt: bool = False,
                       splits: tuple[str, ...] | None = None, workers: int | None = None,
                       cache_dir: str | os.PathLike | None = None) -> FolderDataset:
    """Decode a class-folder tree into memory (uint8, stored size).

    Args:
        root: the tree's root.
        skip_corrupt: skip files that cannot be decoded (listed in ``skipped``) instead of
            raising.
        splits: which splits to decode (default: all present).
        workers: decoding threads (default: the CPU count).
        cache_dir: where to keep the decoded arrays of a tree whose images all have one size,
            keyed by every file's path, size and modification time, so the next load reads
            one file instead of decoding every image (the CIFAR-10 JPEG tree: about 1 s
            instead of 30 s). ``None``: no cache.

    Raises:
        ImageError: a file that cannot be decoded, unless ``skip_corrupt``.
        FileNotFoundError, ValueError: see :func:`scan_class_folders`.
    """
    classes, entries = scan_class_folders(root)
    wanted = splits or tuple(entries)
    cache = None
    if cache_dir is not None:
        key = _signature(classes, {s: entries[s] for s in wanted if s in entries})
        cache = Path(cache_dir) / f"folders-{key}-{'skip' if skip_corrupt else 'strict'}.npz"
        if cache.exists():
            cached = _read_cache(cache, classes)
            if cached is not None:
                cached.root = Path(root)
                return cached
    result, files, skipped = {}, {}, []

    def load(path: Path):
        try:
            return decode_image(path)
        except ImageError:
            if skip_corrupt:
                return None
            raise

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for split in wanted:
            if split not in entries:
                continue
            paths = [p for p, _ in entries[split]]
            images = list(pool.map(load, paths, chunksize=256))
            keep = [i for i, image in enumerate(images) if image is not None]
            skipped += [paths[i] for i in range(len(paths)) if images[i] is None]
            labels = np.array([entries[split][i][1] for i in keep], dtype=np.int32)
            images = [images[i] for i in keep]
            if not images:
                raise ValueError(f"No readable image in split {split!r} of {root}.")
            shapes = {image.shape for image in images}
            result[split] = (np.stack(images) if len(shapes) == 1 else images, labels)
            files[split] = [paths[i] for i in keep]
    dataset = FolderDataset(Path(root), classes, result, files, skipped)
    if cache is not None and all(isinstance(x, np.ndarray) for x, _ in result.values()):
        _write_cache(cache, dataset)
    return dataset
