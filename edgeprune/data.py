"""Datasets for fine-tuning, calibration and evaluation.

A dataset spec is one of:
- ``digits``: scikit-learn's bundled handwritten digits (8x8x1, 10 classes), the demo data;
- ``PATH.npz`` with array ``x`` and labels of any kind: ``y`` (class ids, float targets or
  masks), ``y_<output>`` per named model output, or none at all (calibration, parity,
  bench inputs); optionally ``x_val`` with ``y_val`` / ``y_val_<output>`` likewise;
- ``DIR/`` an image folder with one sub-folder per class, or images alone (x only);
- ``PATH.json``: COCO annotations and their images (detection; edgeprune.coco).

Images are float32. Whole-valued labels of shape [N] (or one-hot [N, C]) are class ids,
whole-valued [N, H, W] (or [N, H, W, 1]) are masks; anything else is a float target. When
no validation split is given, a fixed 20 % of the training data is held out so every run
sees the same split: stratified by class for class ids, seeded at random otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from edgeprune.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
VALIDATION_FRACTION = 0.2
SPLIT_SEED = 1234
MAX_CLASS_IDS = 65536
"""Whole-valued labels beyond this many ids are targets (counts, prices), not classes."""


Labels = Union[np.ndarray, "dict[str, np.ndarray]", None]
"""A split's labels: class ids, float targets or masks (one array), one array per named
model output (`y_<name>` in an .npz), or None for x-only data (calibration, parity)."""


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: Labels
    x_val: np.ndarray
    y_val: Labels
    class_names: list[str]  # classification and segmentation; [] when the labels are not classes
    ground_truth: Any = None
    """Detection: the validation split's COCO ground truth (edgeprune.tasks.detection)."""

    @property
    def has_labels(self) -> bool:
        return self.y_val is not None or self.ground_truth is not None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def calibration(self, count: int = 200) -> np.ndarray:
        """A fixed slice of training inputs for int8 calibration."""
        return self.x_train[:count]


def load_dataset(
    spec: str | os.PathLike[str], image_size: tuple[int, int] | None = None
) -> Dataset:
    """Load a dataset spec; `image_size` (h, w) is required only for image folders."""
    text = str(spec)
    if text == "digits":
        return _digits()
    path = Path(text).expanduser()
    if not path.exists():
        raise UserError(
            f"dataset {text!r} does not exist; use 'digits', an .npz with x (and y), an image folder or a COCO .json"
        )
    if path.is_dir():
        return _image_folder(path, image_size)
    if path.suffix == ".npz":
        return _npz(path)
    if path.suffix == ".json":
        return _coco(path, image_size)
    raise UserError(
        f"dataset {text!r} is not supported; use 'digits', an .npz with x (and y), an image folder or a COCO .json"
    )


def check_fits(
    dataset: Dataset, input_shape: tuple[int | None, ...], model_name: str = "model"
) -> None:
    """Fail with one line when the data's sample shape does not match the model's input."""
    expected = (
        tuple(input_shape[1:])
        if len(input_shape) == len(dataset.x_train.shape)
        else tuple(input_shape)
    )
    actual = dataset.sample_shape
    if len(expected) != len(actual) or any(
        e is not None and e != a for e, a in zip(expected, actual, strict=False)
    ):
        shown = tuple("?" if e is None else e for e in expected)
        raise UserError(
            f"dataset {dataset.name!r} has samples of shape {actual} but {model_name} expects {shown}"
        )


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[..., np.newaxis]
    y = bunch.target.astype(np.int64)
    x_train, y_train, x_val, y_val = _stratified_split(x, y)
    return Dataset("digits", x_train, y_train, x_val, y_val, [str(i) for i in range(10)])


def _npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as exc:  # zipfile.BadZipFile, ValueError on pickled objects, OSError
        raise UserError(
            f"dataset {str(path)!r} is not a readable .npz ({type(exc).__name__})"
        ) from None
    if "x" not in arrays:
        raise UserError(
            f"dataset {str(path)!r} must hold arrays 'x' and 'y' (or 'y_<output>' per output, or "
            f"'x' alone for calibration); it has: {', '.join(arrays) or 'none'}"
        )
    x = _check_x(arrays["x"], path, "x")
    y = _labels_of(arrays, "y", path, len(x))
    if "x_val" in arrays or any(_is_label_key(k, "y_val") for k in arrays):
        if "x_val" not in arrays:
            raise UserError(f"dataset {str(path)!r} must hold both 'x_val' and 'y_val', or neither")
        x_val = _check_x(arrays["x_val"], path, "x_val")
        if x_val.shape[1:] != x.shape[1:]:
            raise UserError(
                f"dataset {str(path)!r}: x_val samples are {x_val.shape[1:]} but x samples are {x.shape[1:]}"
            )
        y_val = _labels_of(arrays, "y_val", path, len(x_val))
        if (y is None) != (y_val is None) or isinstance(y, dict) != isinstance(y_val, dict):
            raise UserError(
                f"dataset {str(path)!r} must hold both 'x_val' and 'y_val', or neither "
                "(y_val of the same kind as y)"
            )
        if isinstance(y, dict) and isinstance(y_val, dict) and set(y) != set(y_val):
            raise UserError(
                f"dataset {str(path)!r} has labels for outputs {', '.join(sorted(y))} but "
                f"y_val for {', '.join(sorted(y_val))}; give the same outputs for both"
            )
        x_train, y_train = x, y
    else:
        x_train, y_train, x_val, y_val = _split(x, y)
    classes = _class_count(y_train, y_val)
    if classes > MAX_CLASS_IDS:
        classes = 0
    return Dataset(path.stem, x_train, y_train, x_val, y_val, [str(i) for i in range(classes)])


def _coco(path: Path, image_size: tuple[int, int] | None) -> Dataset:
    """COCO JSON + images (detection): every image is scored and calibrates; see edgeprune.coco."""
    from edgeprune.coco import load_coco

    coco = load_coco(path, image_size)
    names = list(coco.class_names)
    return Dataset(coco.name, coco.x, None, coco.x, None, names, ground_truth=coco.ground_truth)


def _is_label_key(key: str, prefix: str) -> bool:
    """`key` is `prefix` or `prefix_<output>` (and, for "y", not one of the y_val keys)."""
    if key == prefix:
        return True
    if not key.startswith(prefix + "_") or len(key) == len(prefix) + 1:
        return False
    return not (prefix == "y" and _is_label_key(key, "y_val"))


def _labels_of(arrays: dict[str, np.ndarray], prefix: str, path: Path, count: int) -> Labels:
    """`prefix` as one label array, `prefix_<output>` as {output: array}, or None (x only)."""
    keys = [k for k in arrays if _is_label_key(k, prefix)]
    if not keys:
        return None
    if prefix in keys:
        if len(keys) > 1:
            others = ", ".join(k for k in keys if k != prefix)
            raise UserError(
                f"dataset {str(path)!r} holds both {prefix!r} and {others}; give {prefix!r} "
                f"for one output or {prefix}_<output> for each"
            )
        return _check_labels(arrays[prefix], path, prefix, count)
    return {
        key[len(prefix) + 1 :]: _check_labels(arrays[key], path, key, count) for key in sorted(keys)
    }


def _class_count(*splits: Labels) -> int:
    """Classes of class-id labels or masks; 0 for float targets, named outputs or no labels."""
    arrays = [s for s in splits if isinstance(s, np.ndarray)]
    if not arrays or len(arrays) != len(splits):
        return 0
    if not all(np.issubdtype(a.dtype, np.integer) for a in arrays):
        return 0
    return int(max(a.max(initial=0) for a in arrays)) + 1


def _check_x(x: np.ndarray, path: Path, xname: str) -> np.ndarray:
    if x.ndim < 2 or len(x) == 0:
        raise UserError(f"dataset {str(path)!r}: {xname} must be a non-empty batch of samples")
    if not np.issubdtype(x.dtype, np.number):
        raise UserError(f"dataset {str(path)!r}: {xname} must be numeric, not {x.dtype}")
    return x.astype(np.float32) if x.dtype != np.float32 else x


def _check_labels(y: np.ndarray, path: Path, yname: str, count: int) -> np.ndarray:
    """Class ids [N] (int64; one-hot and [N, 1] become ids), masks (int64), or float32 targets."""
    xname = "x_val" if yname.startswith("y_val") else "x"
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != count:
        have = len(y) if y.ndim else 0
        raise UserError(
            f"dataset {str(path)!r}: {xname} has {count} samples but {yname} has {have}"
        )
    if y.dtype == np.bool_:
        y = y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.integer) and not np.issubdtype(y.dtype, np.floating):
        raise UserError(f"dataset {str(path)!r}: {yname} must be numeric, not {y.dtype}")
    if not np.all(np.isfinite(y)):
        raise UserError(f"dataset {str(path)!r}: {yname} holds NaN or infinite values")
    whole = bool(np.issubdtype(y.dtype, np.integer) or np.all(np.mod(y, 1) == 0))
    if whole and y.ndim == 2 and y.shape[1] > 1 and _one_hot(y):
        return y.argmax(axis=1).astype(np.int64)
    if whole and y.ndim == 2 and y.shape[1] == 1 and y.min() >= 0:
        return y.reshape(-1).astype(np.int64)
    if whole and (y.ndim == 1 or y.ndim >= 3) and y.min() >= 0:
        return y.astype(np.int64)  # class ids, or masks
    return y.astype(np.float32)


def _one_hot(y: np.ndarray) -> bool:
    return bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1))


def _image_folder(path: Path, image_size: tuple[int, int] | None) -> Dataset:
    """One sub-folder per class; or images alone, an x-only dataset (calibration, parity)."""
    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        loose = _images_in(path)
        if not loose:
            raise UserError(
                f"dataset folder {str(path)!r} has no class sub-folders (one per class) and no "
                f"images ({', '.join(IMAGE_SUFFIXES)})"
            )
        x = _stack(path, [_read_image(file, image_size) for file in loose])
        x_train, _, x_val, _ = _split(x, None)
        return Dataset(path.name, x_train, None, x_val, None, [])
    images, labels = [], []
    for label, name in enumerate(classes):
        for file in _images_in(path / name):
            images.append(_read_image(file, image_size))
            labels.append(label)
    if not images:
        raise UserError(
            f"dataset folder {str(path)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})"
        )
    x = _stack(path, images)
    y = np.asarray(labels, dtype=np.int64)
    x_train, y_train, x_val, y_val = _stratified_split(x, y)
    return Dataset(path.name, x_train, y_train, x_val, y_val, classes)


def _images_in(folder: Path) -> list[Path]:
    return [
        f for f in sorted(folder.iterdir()) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
    ]


def _read_image(file: Path, image_size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as opened:
            image = opened.convert("RGB")
            if image_size is not None:
                image = image.resize((image_size[1], image_size[0]))
            return np.asarray(image, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError):
        raise UserError(f"dataset image {str(file)!r} cannot be read") from None


def _stack(path: Path, images: list[np.ndarray]) -> np.ndarray:
    if len({im.shape for im in images}) > 1:
        raise UserError(
            f"dataset folder {str(path)!r} has images of different sizes; the model's input size is needed"
        )
    return np.stack(images)


def _split(x: np.ndarray, y: Labels) -> tuple[Any, ...]:
    """Stratified for class ids [N]; else a fixed, seeded 20 % of the samples (any labels).

    Whole-valued labels with more distinct values than half the samples are targets
    (counts, ages), not classes: stratifying those would leave the validation split empty.
    """
    if (
        isinstance(y, np.ndarray)
        and y.ndim == 1
        and np.issubdtype(y.dtype, np.integer)
        and len(np.unique(y)) <= max(2, len(y) // 2)
    ):
        return _stratified_split(x, y)
    rng = np.random.default_rng(SPLIT_SEED)
    order = rng.permutation(len(x))
    take = round(len(x) * VALIDATION_FRACTION)
    if len(x) > 1:
        take = max(1, take)
    val, train = np.sort(order[:take]), order[take:]

    def part(index: np.ndarray) -> Labels:
        if y is None:
            return None
        if isinstance(y, dict):
            return {name: values[index] for name, values in y.items()}
        return y[index]

    return x[train], part(train), x[val], part(val)


def _stratified_split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(SPLIT_SEED)
    val_idx = []
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        rng.shuffle(members)
        take = round(len(members) * VALIDATION_FRACTION)
        if len(members) > 1:
            take = max(1, take)
        val_idx.extend(members[:take].tolist())
    mask = np.zeros(len(y), dtype=bool)
    mask[val_idx] = True
    train_idx = np.flatnonzero(~mask)
    rng.shuffle(train_idx)
    val = np.flatnonzero(mask)
    return x[train_idx], y[train_idx], x[val], y[val]
