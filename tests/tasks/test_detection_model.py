"""The trained shapes detector scored end to end: Keras outputs -> yolo decode -> COCOeval."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from support.detection_data import shapes_detector_path, shapes_val_json  # noqa: F401

from edgeprune.data import load_dataset
from edgeprune.tasks.base import OutputInfo
from edgeprune.tasks.detection import DetectionTask


def test_the_trained_detector_finds_the_shapes(shapes_detector_path, shapes_val_json) -> None:  # noqa: F811
    import keras

    model = keras.saving.load_model(shapes_detector_path)
    data = load_dataset(shapes_val_json, (64, 64))
    task = DetectionTask()  # yolo, from the [N, 6, 64] head and the 2 categories
    task.check(data, [OutputInfo("head", tuple(model.outputs[0].shape))], "detector")
    outputs = model.predict(data.x_val, verbose=0)
    scores = task.score(data, [outputs])
    assert scores["map50"] >= 0.6 and 0.3 <= scores["map"] <= scores["map50"], scores
    # outputs[j] belongs to image j: scoring them against shuffled images loses most of it
    shuffled = np.roll(outputs, 1, axis=0)
    assert task.score(data, [shuffled])["map50"] < 0.2


def test_images_are_resized_to_the_input_and_boxes_scaled_back(
    shapes_detector_path: Path,  # noqa: F811
    shapes_val_json: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The same images stored at 128x128: boxes scored in the original pixels, same mAP."""
    import json

    import keras
    from PIL import Image

    doc = json.loads(shapes_val_json.read_text())
    (tmp_path / "images").mkdir()
    for image in doc["images"]:
        source = shapes_val_json.parent / "images" / image["file_name"]
        Image.open(source).resize((128, 128), Image.Resampling.NEAREST).save(
            tmp_path / "images" / image["file_name"]
        )
        image.update(width=128, height=128)
    for ann in doc["annotations"]:
        ann["bbox"] = [v * 2 for v in ann["bbox"]]
        ann["area"] *= 4
    (tmp_path / "big.json").write_text(json.dumps(doc))
    model = keras.saving.load_model(shapes_detector_path)
    small = load_dataset(shapes_val_json, (64, 64))
    big = load_dataset(tmp_path / "big.json", (64, 64))
    task = DetectionTask("yolo")
    at_64 = task.score(small, [model.predict(small.x_val, verbose=0)])
    at_128 = task.score(big, [model.predict(big.x_val, verbose=0)])
    assert abs(at_64["map50"] - at_128["map50"]) < 0.05, (at_64, at_128)
