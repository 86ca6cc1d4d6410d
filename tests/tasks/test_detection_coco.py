"""COCO JSON + images: what loads, and every mismatch as one line before any work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.detection_data import write_shapes

from edgeprune.coco import CocoGroundTruth, load_coco
from edgeprune.data import load_dataset
from edgeprune.errors import UserError


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes(tmp_path_factory.mktemp("coco"), 6, seed=3)


def test_a_json_spec_is_a_detection_dataset(shapes: Path) -> None:
    data = load_dataset(shapes, (32, 48))
    truth = data.ground_truth
    assert isinstance(truth, CocoGroundTruth)
    assert data.x_val.shape == (6, 32, 48, 3) and data.x_val.dtype == np.float32
    assert data.x_val.min() >= 0.0 and data.x_val.max() <= 1.0
    assert data.x_train is data.x_val and data.y_val is None and data.has_labels
    assert truth.image_ids == [100 + n for n in range(6)]
    assert [tuple(s) for s in truth.sizes] == [(64, 64)] * 6  # original pixels, not resized
    assert truth.category_ids == [1, 2] and data.class_names == ["box", "disc"]
    doc = json.loads(shapes.read_text())
    assert len(truth.coco["annotations"]) == len(doc["annotations"]) > 0


def test_images_next_to_the_json_are_found_too(shapes: Path, tmp_path: Path) -> None:
    doc = json.loads(shapes.read_text())
    for image in doc["images"]:
        (tmp_path / image["file_name"]).write_bytes(
            (shapes.parent / "images" / image["file_name"]).read_bytes()
        )
    (tmp_path / "flat.json").write_text(json.dumps(doc))
    assert load_coco(tmp_path / "flat.json", (64, 64)).x.shape == (6, 64, 64, 3)


def _broken(shapes: Path, tmp_path: Path, change) -> Path:
    doc = json.loads(shapes.read_text())
    change(doc)
    path = shapes.parent / f"broken-{tmp_path.name}.json"
    path.write_text(json.dumps(doc))
    return path


def _set_box(box):
    def change(doc):
        doc["annotations"][0]["bbox"] = box

    return change


CASES = {
    "not coco": (lambda doc: doc.pop("annotations"), "is not COCO detection JSON"),
    "duplicate image id": (
        lambda doc: doc["images"][1].update(id=doc["images"][0]["id"]),
        "appears twice",
    ),
    "missing image": (
        lambda doc: doc["images"][2].update(file_name="gone.png"),
        "'gone.png'",
    ),
    "negative box": (_set_box([-3, 4, 10, 10]), "negative corner"),
    "short box": (_set_box([3, 4, 10]), "bbox must be [x, y, width, height]"),
    "box outside": (_set_box([50, 4, 30, 10]), "reaches outside image"),
    "box outside, size from the file": (
        lambda doc: (
            [doc["images"][0].pop(k) for k in ("width", "height")],
            doc["annotations"][0].update(bbox=[50, 4, 30, 10]),
        ),
        "reaches outside image 100 (64x64)",
    ),
    "unknown category": (
        lambda doc: doc["annotations"][0].update(category_id=9),
        "category 9, not one of the categories (1, 2)",
    ),
    "no annotations": (lambda doc: doc.update(annotations=[]), "has no annotations"),
    "unknown image": (
        lambda doc: doc["annotations"][0].update(image_id=77),
        "names image 77",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_mismatch_is_one_line(case: str, shapes: Path, tmp_path: Path) -> None:
    change, expected = CASES[case]
    path = _broken(shapes, tmp_path, change)
    with pytest.raises(UserError) as caught:
        load_dataset(path, (64, 64))
    message = str(caught.value)
    assert expected in message and "\n" not in message, message


def test_unreadable_json_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ann.json"
    path.write_text("{not json")
    with pytest.raises(UserError, match="is not readable JSON"):
        load_dataset(path)
