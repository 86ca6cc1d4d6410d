"""Decoders and mAP checked against pycocotools on hand-made detections with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.detection_data import write_shapes

from edgeprune.data import Dataset, load_dataset
from edgeprune.errors import UserError
from edgeprune.tasks.base import OutputInfo
from edgeprune.tasks.decoders import decode_yolo
from edgeprune.tasks.detection import DetectionTask, coco_map


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return load_dataset(write_shapes(tmp_path_factory.mktemp("dec"), 8, seed=11), (64, 64))


ONE = {"map": 1.0, "map50": 1.0, "map50/box": 1.0, "map50/disc": 1.0}
PP_ONE = {"map": 1.0, "map50": 1.0, "map50/a": 1.0, "map50/b": 1.0}


def _truth_boxes(data: Dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per image: its ground-truth boxes as x1 y1 x2 y2 pixels and class indices."""
    truth = data.ground_truth
    out = []
    for image_id in truth.image_ids:
        anns = [a for a in truth.coco["annotations"] if a["image_id"] == image_id]
        xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)])
        labels = np.array([truth.category_ids.index(a["category_id"]) for a in anns])
        out.append((xyxy.reshape(-1, 4), labels))
    return out


def test_perfect_detections_score_one(shapes: Dataset) -> None:
    dets = [(b, np.ones(len(b)), c) for b, c in _truth_boxes(shapes)]
    assert coco_map(shapes.ground_truth, dets) == {
        "map": 1.0,
        "map50": 1.0,
        "map50/box": 1.0,
        "map50/disc": 1.0,
    }


def test_one_missed_of_two_is_coco_interpolated_half(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "a.png")
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 60, "height": 40}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [2, 2, 20, 20]},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [30, 10, 25, 25]},
        ],
        "categories": [{"id": 3, "name": "thing"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    data = load_dataset(tmp_path / "ann.json", (40, 60))
    found = coco_map(data.ground_truth, [(np.array([[2.0, 2, 22, 22]]), np.ones(1), np.zeros(1))])
    # 101-point interpolation: precision 1 at recalls 0, .01, ..., .5 and 0 beyond.
    assert found == pytest.approx({"map": 51 / 101, "map50": 51 / 101, "map50/thing": 51 / 101})
    nothing = (np.zeros((0, 4)), np.zeros(0), np.zeros(0))
    assert coco_map(data.ground_truth, [nothing]) == {"map": 0.0, "map50": 0.0}


def _yolo_head(data: Dataset, channels_first: bool, pixels: bool, logits: bool) -> np.ndarray:
    """A raw head [N, 4+C, K] holding each true box, a shifted duplicate and empty slots."""
    k, classes = 12, data.ground_truth.num_classes
    head = np.zeros((len(data.x_val), k, 4 + classes), np.float32)
    head[..., 4:] = 0.0001  # below the score threshold: dropped
    for n, (boxes, labels) in enumerate(_truth_boxes(data)):
        for i, ((x1, y1, x2, y2), label) in enumerate(zip(boxes, labels, strict=True)):
            cxcywh = np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]) / 64.0
            head[n, 2 * i, :4] = cxcywh
            head[n, 2 * i, 4 + label] = 0.9
            head[n, 2 * i + 1, :4] = cxcywh + np.array([0.5 / 64, 0, 0, 0])  # IoU ~0.95: suppressed
            head[n, 2 * i + 1, 4 + label] = 0.5
    if pixels:
        head[..., :4] *= 64.0
    if logits:
        head[..., 4:] = np.log(head[..., 4:] / (1 - head[..., 4:]))
    return head.transpose(0, 2, 1) if channels_first else head


@pytest.mark.parametrize(
    "channels_first,pixels,logits", [(True, False, False), (False, True, False), (True, True, True)]
)
def test_yolo_head_with_nms_scores_one(shapes: Dataset, channels_first, pixels, logits) -> None:
    head = _yolo_head(shapes, channels_first, pixels, logits)
    dets = decode_yolo([head], shapes.ground_truth.sizes, (64, 64), 2)
    assert [len(d[0]) for d in dets] == [len(b) for b, _ in _truth_boxes(shapes)]  # NMS + threshold
    task = DetectionTask()  # the format follows from the shape
    task.check(shapes, [OutputInfo("head", (None, *head.shape[1:]))], "m")
    assert task.score(shapes, [head]) == pytest.approx(ONE)


def _postprocess_model(data: Dataset):
    """A Keras model emulating DetectionPostProcess: the same boxes for every image."""
    import keras

    k = 5
    boxes = np.zeros((k, 4), np.float32)
    boxes[:2] = [[0.1, 0.2, 0.5, 0.6], [0.55, 0.5, 0.95, 0.9]]  # ymin xmin ymax xmax
    classes = np.array([0, 1, 0, 0, 0], np.float32)
    scores = np.array([0.9, 0.8, 0.3, 0.0, 0.0], np.float32)
    image = keras.Input(data.x_val.shape[1:])
    pooled = keras.layers.GlobalAveragePooling2D()(image)

    def constant(values: np.ndarray, name: str):
        flat = values.reshape(-1)
        dense = keras.layers.Dense(
            len(flat),
            kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant(flat),
        )
        return keras.layers.Reshape(values.shape, name=name)(dense(pooled))

    count = keras.layers.Reshape((), name="count")(constant(np.array([2.0], np.float32), "c1"))
    outs = [
        count,
        constant(scores, "scores"),
        constant(boxes, "boxes"),
        constant(classes, "classes"),
    ]
    return keras.Model(image, outs), boxes, classes


def _same_boxes_data(tmp_path: Path) -> Dataset:
    """Three 100x80 images, each with the two boxes `_postprocess_model` always gives."""
    from PIL import Image

    doc: dict = {
        "images": [],
        "annotations": [],
        "categories": [{"id": 5, "name": "a"}, {"id": 7, "name": "b"}],
    }
    for n in range(3):
        Image.fromarray(np.full((80, 100, 3), 30 * n, np.uint8)).save(tmp_path / f"{n}.png")
        doc["images"].append({"id": n, "file_name": f"{n}.png"})
        doc["annotations"] += [
            {"id": 2 * n + 1, "image_id": n, "category_id": 5, "bbox": [20, 8, 40, 32]},
            {"id": 2 * n + 2, "image_id": n, "category_id": 7, "bbox": [50, 44, 40, 32]},
        ]
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    return load_dataset(tmp_path / "ann.json", (32, 32))


def test_postprocess_outputs_in_any_order(tmp_path: Path) -> None:
    data = _same_boxes_data(tmp_path)
    model, _, _ = _postprocess_model(data)
    outputs = model.predict(data.x_val, verbose=0)
    task = DetectionTask("postprocess")
    task.check(data, [OutputInfo(o.name, tuple(o.shape)) for o in model.outputs], "m")
    assert task.score(data, outputs) == pytest.approx(PP_ONE)
    assert DetectionTask().score(data, outputs[::-1]) == pytest.approx(PP_ONE)
    outputs[3] = outputs[3] + 2  # classes 2, 3: past the data's 2 categories
    with pytest.raises(UserError, match="class index 3 is outside the data's 2 categories"):
        task.score(data, outputs)


def test_user_decode_function(shapes: Dataset, tmp_path: Path) -> None:
    truth = _truth_boxes(shapes)
    code = tmp_path / "dec.py"
    code.write_text(
        "import numpy as np\n"
        "def good(outputs, sizes):\n"
        f"    truth = np.load({str(tmp_path / 'truth.npy')!r}, allow_pickle=True)\n"
        "    return [(b, np.ones(len(b)), c) for b, c in truth]\n"
        "def bad(outputs, sizes):\n"
        "    return [(np.zeros((2, 3)), np.ones(2), np.zeros(2))] * len(sizes)\n"
        "def wrong_class(outputs, sizes):\n"
        "    return [(np.zeros((1, 4)), np.ones(1), np.array([9]))] * len(sizes)\n"
    )
    saved = np.empty(len(truth), dtype=object)
    saved[:] = truth
    np.save(tmp_path / "truth.npy", saved, allow_pickle=True)
    outputs = [np.zeros((len(shapes.x_val), 3))]
    assert DetectionTask(f"{code}:good").score(shapes, outputs) == pytest.approx(ONE)
    with pytest.raises(UserError, match=r"expected \[k, 4\], \[k\], \[k\]"):
        DetectionTask(f"{code}:bad").score(shapes, outputs)
    with pytest.raises(UserError, match="class indices outside 0..1"):
        DetectionTask(f"{code}:wrong_class").score(shapes, outputs)


def test_mismatches_are_one_line(shapes: Dataset, digits) -> None:
    task = DetectionTask("yolo")
    with pytest.raises(UserError, match=r"\(3 class scores\) but dataset .* has 2 categories"):
        task.check(shapes, [OutputInfo("head", (None, 7, 64))], "m")
    with pytest.raises(UserError, match="not DetectionPostProcess"):
        DetectionTask().check(shapes, [OutputInfo("x", (None, 10))], "m")
    with pytest.raises(UserError, match="needs COCO JSON data"):
        task.check(digits, [OutputInfo("head", (None, 6, 64))], "m")
    with pytest.raises(UserError, match="decode 'ssd' is not one of"):
        DetectionTask("ssd")
    with pytest.raises(UserError, match="no generic training loss") as caught:
        task.default_loss(None)
    assert caught.value.params == ("loss",)


def test_postprocess_outputs_of_a_tflite_model(tmp_path: Path) -> None:
    """The real runtime reorders outputs by its own names: decoding still finds each one."""
    from edgeprune import _tf
    from edgeprune.tflite.runner import TFLiteRunner

    data = _same_boxes_data(tmp_path)
    model, _, _ = _postprocess_model(data)
    converter = _tf.tf().lite.TFLiteConverter.from_keras_model(model)
    path = tmp_path / "pp.tflite"
    path.write_bytes(converter.convert())
    runner = TFLiteRunner(path, label="pp.tflite")
    per_image = [runner.run(data.x_val[j : j + 1]) for j in range(len(data.x_val))]
    outputs = [np.concatenate([r[i] for r in per_image]) for i in range(len(per_image[0]))]
    shapes = [tuple(o.shape) for o in outputs]
    assert sorted(len(s) for s in shapes) == [1, 2, 2, 3]
    assert DetectionTask().score(data, outputs) == pytest.approx(PP_ONE)
