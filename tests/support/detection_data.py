"""Generated detection data and a small trained detector, for the detection tests and bench.

`write_shapes(folder, count, seed)` draws 64x64 RGB images with 1-3 filled rectangles
(category 1, "box") and discs (category 2, "disc") and writes COCO JSON + PNGs
(`folder/ann.json`, `folder/images/*.png`). `train_detector(...)` fits a CenterNet-like
model: an 8x8 grid (stride 8), each cell predicting sigmoid offsets of its box centre,
box width/height (normalized) and 2 class scores; the head adds the cell's grid position
in-graph and ends as a YOLO-style raw head [N, 4+C, 64], so `decode yolo` reads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SIZE = 64
GRID = 8
CATEGORIES = ({"id": 1, "name": "box"}, {"id": 2, "name": "disc"})
NUM_CLASSES = len(CATEGORIES)


def draw_shapes(count: int, seed: int) -> tuple[np.ndarray, list[list[tuple[int, list[float]]]]]:
    """Images [count, 64, 64, 3] uint8 and per image its (class index, [x, y, w, h]) boxes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    images = np.zeros((count, SIZE, SIZE, 3), np.uint8)
    boxes: list[list[tuple[int, list[float]]]] = []
    for n in range(count):
        image = rng.integers(0, 40, (SIZE, SIZE, 3)).astype(np.uint8)
        placed: list[tuple[int, list[float]]] = []
        for _ in range(int(rng.integers(1, 4))):
            for _attempt in range(20):
                w, h = (int(v) for v in rng.integers(12, 29, 2))
                x, y = int(rng.integers(0, SIZE - w + 1)), int(rng.integers(0, SIZE - h + 1))
                if all(_iou([x, y, w, h], b) < 0.1 for _, b in placed):
                    break
            else:
                continue
            label = int(rng.integers(0, NUM_CLASSES))
            color = rng.integers(120, 256, 3).astype(np.uint8)
            if label == 0:
                image[y : y + h, x : x + w] = color
            else:
                inside = ((xx - (x + w / 2 - 0.5)) / (w / 2)) ** 2 + (
                    (yy - (y + h / 2 - 0.5)) / (h / 2)
                ) ** 2 <= 1.0
                image[inside] = color
            placed.append((label, [float(x), float(y), float(w), float(h)]))
        images[n] = image
        boxes.append(placed)
    return images, boxes


def write_shapes(folder: Path, count: int, seed: int) -> Path:
    """COCO JSON + PNG images of generated shapes; returns the JSON's path."""
    from PIL import Image

    images, boxes = draw_shapes(count, seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"images": [], "annotations": [], "categories": list(CATEGORIES)}
    for n, (image, placed) in enumerate(zip(images, boxes, strict=True)):
        name = f"img{n:04d}.png"
        Image.fromarray(image).save(folder / "images" / name)
        doc["images"].append({"id": 100 + n, "file_name": name, "width": SIZE, "height": SIZE})
        for label, box in placed:
            doc["annotations"].append(
                {
                    "id": len(doc["annotations"]) + 1,
                    "image_id": 100 + n,
                    "category_id": CATEGORIES[label]["id"],
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    path = folder / "ann.json"
    path.write_text(json.dumps(doc))
    return path


def grid_targets(boxes: list[list[tuple[int, list[float]]]]) -> np.ndarray:
    """[N, 8, 8, 4+C]: the cell holding a box's centre gets its offsets, size and class."""
    cell = SIZE / GRID
    target = np.zeros((len(boxes), GRID, GRID, 4 + NUM_CLASSES), np.float32)
    for n, placed in enumerate(boxes):
        for label, (x, y, w, h) in placed:
            cx, cy = (x + w / 2) / cell, (y + h / 2) / cell
            col, row = min(int(cx), GRID - 1), min(int(cy), GRID - 1)
            target[n, row, col, :4] = [cx - col, cy - row, w / SIZE, h / SIZE]
            target[n, row, col, 4 + label] = 1.0
    return target


def build_detector(width: int = 32) -> tuple[Any, Any]:
    """(training model -> [N, 8, 8, 4+C], inference model -> [N, 4+C, 64]) sharing layers."""
    import keras

    grid = np.stack(np.meshgrid(np.arange(GRID), np.arange(GRID), indexing="xy"), axis=-1)
    grid = grid.reshape(1, GRID, GRID, 2).astype(np.float32)
    image = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(image)
    x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu")(x)
    cells = keras.layers.Conv2D(4 + NUM_CLASSES, 1, activation="sigmoid", name="cells")(x)
    offsets, rest = keras.ops.split(cells, [2], axis=-1)
    centres = (offsets + grid) / float(GRID)
    boxes = keras.layers.Concatenate(name="boxes")([centres, rest])
    flat = keras.layers.Reshape((GRID * GRID, 4 + NUM_CLASSES))(boxes)
    head = keras.layers.Permute((2, 1), name="head")(flat)
    return keras.Model(image, cells), keras.Model(image, head, name="shapes_detector")


def detector_loss(y_true: Any, y_pred: Any) -> Any:
    import keras

    ops = keras.ops
    classes_true, classes_pred = y_true[..., 4:], y_pred[..., 4:]
    has_object = ops.max(classes_true, axis=-1, keepdims=True)
    bce = keras.losses.binary_crossentropy(classes_true[..., None], classes_pred[..., None])
    weight = 1.0 + 4.0 * classes_true
    class_loss = ops.sum(bce * weight) / ops.cast(ops.size(bce), "float32")
    box_loss = ops.sum(ops.abs(y_true[..., :4] - y_pred[..., :4]) * has_object) / (
        ops.sum(has_object) + 1.0
    )
    return class_loss * 8.0 + box_loss * 4.0


def train_detector(count: int = 600, epochs: int = 25, seed: int = 0) -> Any:
    """The inference model (uncompiled), trained on `count` generated images."""
    import keras

    keras.utils.set_random_seed(seed)
    images, boxes = draw_shapes(count, seed=seed + 1000)
    train, infer = build_detector()
    train.compile(optimizer=keras.optimizers.Adam(3e-3), loss=detector_loss)
    train.fit(
        images.astype(np.float32) / 255.0,
        grid_targets(boxes),
        batch_size=32,
        epochs=epochs,
        verbose=0,
    )
    return infer


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture(scope="session")
def shapes_detector_path(cached_artifact: Any) -> Path:
    """The trained shapes detector (.keras, uncompiled), cached across runs in tests/.cache."""
    from support.cache_keys import source_key

    def build(path: Path) -> None:
        train_detector().save(path)

    key = source_key("tests/support/detection_data.py")
    return cached_artifact("shapes-detector.keras", key, build)


@pytest.fixture(scope="session")
def shapes_val_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 fresh validation images (seed 7) as COCO JSON + PNGs (at 100, sampling alone moves
    an int8 mAP@.5 by about a point)."""
    return write_shapes(tmp_path_factory.mktemp("shapes-val"), 200, seed=7)
