"""Datasets for fine-tuning, calibration and evaluation.

A dataset spec is one of:
- ``digits``: scikit-learn's bundled handwritten digits (8x8x1, 10 classes), the demo data;
- ``PATH.npz`` with arrays ``x`` and ``y`` (and optionally ``x_val``/``y_val``);
- ``DIR/`` an image folder with one sub-folder per class.

Images are float32; labels are integer class ids. When no validation split is given, a
fixed, stratified 20 % of the training data is held out so every run sees the same split.
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
            f"dataset {text!r} does not exist; use 'digits', an .npz with x/y, or an image folder"
        )
    if path.is_dir():
        return _image_folder(path, image_size)
    if path.suffix == ".npz":
        return _npz(path)
    if path.suffix == ".json":
        return _coco(path, image_size)
    raise UserError(
        f"dataset {text!r} is not supported; use 'digits', an .npz with x/y, or an image folder"
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
    if "x" not in arrays or "y" not in arrays:
        raise UserError(
            f"dataset {str(path)!r} must hold arrays 'x' and 'y' (has: {', '.join(arrays) or 'none'})"
        )
    x, y = _check_pair(arrays["x"], arrays["y"], path, "x", "y")
    if "x_val" in arrays or "y_val" in arrays:
        if "x_val" not in arrays or "y_val" not in arrays:
            raise UserError(f"dataset {str(path)!r} must hold both 'x_val' and 'y_val', or neither")
        x_val, y_val = _check_pair(arrays["x_val"], arrays["y_val"], path, "x_val", "y_val")
        if x_val.shape[1:] != x.shape[1:]:
            raise UserError(
                f"dataset {str(path)!r}: x_val samples are {x_val.shape[1:]} but x samples are {x.shape[1:]}"
            )
        x_train, y_train = x, y
    else:
        x_train, y_train, x_val, y_val = _stratified_split(x, y)
    classes = int(max(y_train.max(initial=0), y_val.max(initial=0))) + 1
    return Dataset(path.stem, x_train, y_train, x_val, y_val, [str(i) for i in range(classes)])


def _coco(path: Path, image_size: tuple[int, int] | None) -> Dataset:
    """COCO JSON + images (detection): every image is scored and calibrates; see edgeprune.coco."""
    from edgeprune.coco import load_coco

    coco = load_coco(path, image_size)
    names = list(coco.class_names)
    return Dataset(coco.name, coco.x, None, coco.x, None, names, ground_truth=coco.ground_truth)


def _check_pair(
    x: np.ndarray, y: np.ndarray, path: Path, xname: str, yname: str
) -> tuple[np.ndarray, np.ndarray]:
    if x.ndim < 2 or len(x) == 0:
        raise UserError(f"dataset {str(path)!r}: {xname} must be a non-empty batch of samples")
    if not np.issubdtype(x.dtype, np.number):
        raise UserError(f"dataset {str(path)!r}: {xname} must be numeric, not {x.dtype}")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot labels
        y = y.argmax(axis=1)
    y = y.reshape(-1)
    if len(y) != len(x):
        raise UserError(
            f"dataset {str(path)!r}: {xname} has {len(x)} samples but {yname} has {len(y)}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise UserError(f"dataset {str(path)!r}: {yname} must hold integer class ids")
    if y.min() < 0:
        raise UserError(f"dataset {str(path)!r}: {yname} has negative class ids")
    x = x.astype(np.float32) if x.dtype != np.float32 else x
    return x, y.astype(np.int64)


def _image_folder(path: Path, image_size: tuple[int, int] | None) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise UserError(f"dataset folder {str(path)!r} has no class sub-folders (one per class)")
    images, labels = [], []
    for label, name in enumerate(classes):
        for file in sorted((path / name).iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as opened:
                    image = opened.convert("RGB")
                    if image_size is not None:
                        image = image.resize((image_size[1], image_size[0]))
                    images.append(np.asarray(image, dtype=np.float32) / 255.0)
            except (UnidentifiedImageError, OSError):
                raise UserError(f"dataset image {str(file)!r} cannot be read") from None
            labels.append(label)
    if not images:
        raise UserError(
            f"dataset folder {str(path)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})"
        )
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise UserError(
            f"dataset folder {str(path)!r} has images of different sizes; the model's input size is needed"
        )
    x = np.stack(images)
    y = np.asarray(labels, dtype=np.int64)
    x_train, y_train, x_val, y_val = _stratified_split(x, y)
    return Dataset(path.name, x_train, y_train, x_val, y_val, classes)


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
