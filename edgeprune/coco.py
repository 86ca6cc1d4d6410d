"""COCO-format detection data: the JSON's boxes checked, its images loaded at the model's size.

A spec is a COCO JSON file (`images`, `annotations` with `bbox` [x, y, w, h] in pixels,
`categories`). Each image's `file_name` is looked up relative to the JSON's folder, then in
an `images/` folder beside the JSON (COCO's own `val2017/...` layout works with the first).
Every image is validation data (COCO files name one split each) and also what int8
calibration reads. Images are resized to the model's input size (no letterbox), RGB float32
in [0, 1]; boxes stay in the original pixels, which is what the evaluator compares against.
Every mismatch is one line, raised before any image is decoded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.errors import UserError

BOX_TOLERANCE = 1.0
"""Pixels a box may stick out of its image (rounding in exporters) before it is an error."""


@dataclass
class CocoGroundTruth:
    """The validation split's boxes as pycocotools wants them, in the images' order in `x`."""

    coco: dict[str, Any]  # images, annotations (with area, iscrowd, id), categories
    image_ids: list[int]  # image_ids[j] is the image at x_val[j]
    sizes: np.ndarray  # [N, 2] original (height, width) in pixels
    category_ids: list[int]  # sorted; class index i of a model is category_ids[i]
    category_names: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)


@dataclass(frozen=True)
class CocoImages:
    """What a COCO JSON holds, ready for a Dataset (edgeprune.data wraps it: this module
    imports no other part, so data -> coco stays one way): images and their boxes."""

    name: str
    x: np.ndarray  # [N, h, w, 3] float32 in [0, 1], in the JSON's image order
    class_names: list[str]  # by category id, ascending
    ground_truth: CocoGroundTruth


def load_coco(path: str | Path, image_size: tuple[int, int] | None = None) -> CocoImages:
    """The images of a COCO JSON (every one validation data and calibration input) and boxes."""
    path = Path(path).expanduser()
    label = str(path)
    document = _read_json(path)
    images = _check_images(document["images"], label)
    categories = _check_categories(document["categories"], label)
    annotations = _check_annotations(document["annotations"], images, categories, label)
    files = [_image_file(path.parent, str(image["file_name"])) for image in images]
    missing = [
        str(image["file_name"]) for image, file in zip(images, files, strict=True) if file is None
    ]
    if missing:
        raise UserError(
            f"dataset {label!r}: {len(missing)} of {len(images)} image files are missing "
            f"(first: {missing[0]!r}; looked beside the JSON and in its images/ folder)"
        )
    pixels, sizes = _read_images([f for f in files if f is not None], images, image_size, label)
    if any("width" not in image or "height" not in image for image in document["images"]):
        # sizes now read from the files: boxes of images the JSON gave no size are checked too
        annotations = _check_annotations(document["annotations"], images, categories, label)
    category_ids = sorted(categories)
    truth = CocoGroundTruth(
        coco={
            "images": images,
            "annotations": annotations,
            "categories": list(categories.values()),
        },
        image_ids=[int(image["id"]) for image in images],
        sizes=sizes,
        category_ids=category_ids,
        category_names=[str(categories[c]["name"]) for c in category_ids],
    )
    return CocoImages(path.stem, pixels, list(truth.category_names), truth)


def _read_json(path: Path) -> dict[str, Any]:
    label = str(path)
    if not path.is_file():
        raise UserError(f"dataset {label!r} does not exist")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"dataset {label!r} is not readable JSON ({type(exc).__name__})") from None
    if not isinstance(document, dict) or not all(
        isinstance(document.get(key), list) for key in ("images", "annotations", "categories")
    ):
        raise UserError(
            f"dataset {label!r} is not COCO detection JSON: it needs lists 'images', "
            "'annotations' and 'categories'"
        )
    return document


def _check_images(entries: list[Any], label: str) -> list[dict[str, Any]]:
    if not entries:
        raise UserError(f"dataset {label!r} lists no images")
    seen: set[int] = set()
    images = []
    for n, entry in enumerate(entries):
        if (
            not isinstance(entry, dict)
            or not _is_int(entry.get("id"))
            or not entry.get("file_name")
        ):
            raise UserError(
                f"dataset {label!r}: images[{n}] needs an integer 'id' and a 'file_name'"
            )
        image_id = int(entry["id"])
        if image_id in seen:
            raise UserError(f"dataset {label!r}: image id {image_id} appears twice in 'images'")
        seen.add(image_id)
        for key in ("width", "height"):
            if key in entry and not (_is_int(entry[key]) and entry[key] > 0):
                raise UserError(
                    f"dataset {label!r}: image {image_id} has {key} {entry[key]!r}; give a positive integer"
                )
        images.append(dict(entry))
    return images


def _check_categories(entries: list[Any], label: str) -> dict[int, dict[str, Any]]:
    if not entries:
        raise UserError(f"dataset {label!r} lists no categories")
    categories: dict[int, dict[str, Any]] = {}
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or not _is_int(entry.get("id")):
            raise UserError(f"dataset {label!r}: categories[{n}] needs an integer 'id'")
        category_id = int(entry["id"])
        if category_id in categories:
            raise UserError(f"dataset {label!r}: category id {category_id} appears twice")
        categories[category_id] = {
            "id": category_id,
            "name": str(entry.get("name", category_id)),
            "supercategory": str(entry.get("supercategory", "")),
        }
    return categories


def _check_annotations(
    entries: list[Any],
    images: list[dict[str, Any]],
    categories: dict[int, dict[str, Any]],
    label: str,
) -> list[dict[str, Any]]:
    if not entries:
        raise UserError(f"dataset {label!r} has no annotations; detection needs ground-truth boxes")
    by_id = {int(image["id"]): image for image in images}
    annotations = []
    for n, entry in enumerate(entries):
        where = f"dataset {label!r}: annotations[{n}]"
        if not isinstance(entry, dict):
            raise UserError(f"{where} is not an object")
        image_id: Any = entry.get("image_id")
        category_id: Any = entry.get("category_id")
        if not _is_int(image_id) or int(image_id) not in by_id:
            raise UserError(f"{where} names image {image_id!r}, which 'images' does not list")
        if not _is_int(category_id) or int(category_id) not in categories:
            known = ", ".join(str(c) for c in sorted(categories))
            raise UserError(
                f"{where} has category {category_id!r}, not one of the categories ({known})"
            )
        bbox = entry.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            raise UserError(f"{where}: bbox must be [x, y, width, height] in pixels, got {bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise UserError(
                f"{where}: bbox {bbox} has a negative corner or an empty size; COCO boxes are "
                "[x, y, width, height] with width, height > 0"
            )
        image = by_id[int(image_id)]
        width, height = image.get("width"), image.get("height")
        if (width is not None and x + w > width + BOX_TOLERANCE) or (
            height is not None and y + h > height + BOX_TOLERANCE
        ):
            raise UserError(
                f"{where}: bbox {bbox} reaches outside image {image_id} ({width}x{height}); "
                "boxes are [x, y, width, height] in the image's pixels"
            )
        annotation = dict(entry)
        annotation["id"] = int(entry["id"]) if _is_int(entry.get("id")) else n + 1
        annotation["image_id"], annotation["category_id"] = int(image_id), int(category_id)
        annotation["bbox"] = [x, y, w, h]
        annotation.setdefault("area", w * h)
        annotation.setdefault("iscrowd", 0)
        annotations.append(annotation)
    if len({a["id"] for a in annotations}) != len(annotations):
        for n, annotation in enumerate(annotations):
            annotation["id"] = n + 1  # pycocotools needs unique ids; files with clashes exist
    return annotations


def _image_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / "images" / name):
        if candidate.is_file():
            return candidate
    return None


def _read_images(
    files: list[Path],
    images: list[dict[str, Any]],
    image_size: tuple[int, int] | None,
    label: str,
) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    pixels, sizes = [], []
    for file, image in zip(files, images, strict=True):
        try:
            with Image.open(file) as opened:
                rgb = opened.convert("RGB")
        except (UnidentifiedImageError, OSError):
            raise UserError(f"dataset image {str(file)!r} cannot be read") from None
        width, height = rgb.size
        if image.get("width", width) != width or image.get("height", height) != height:
            raise UserError(
                f"dataset {label!r}: image {image['id']} is {width}x{height} but the JSON says "
                f"{image.get('width')}x{image.get('height')}"
            )
        image["width"], image["height"] = width, height
        if image_size is not None and (height, width) != tuple(image_size):
            rgb = rgb.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
        pixels.append(np.asarray(rgb, dtype=np.float32) / 255.0)
        sizes.append((height, width))
    if len({p.shape for p in pixels}) > 1:
        raise UserError(
            f"dataset {label!r} has images of different sizes; the model's input size is needed"
        )
    return np.stack(pixels), np.asarray(sizes, dtype=np.int64)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
