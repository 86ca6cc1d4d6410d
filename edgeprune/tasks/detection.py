"""Detection: COCO mAP of a detector's decoded outputs, by pycocotools' COCOeval.

The primary metric is `map` (mAP@[.5:.95], COCO's own headline number: it rewards tight
boxes, which is what pruning and int8 erode first); `map50` (mAP@.5, the VOC-style number
people quote for small detectors) follows. Both are FRACTIONs, higher is better. The
ground truth is the data's `CocoGroundTruth` (edgeprune.coco); the outputs are decoded by
`edgeprune.tasks.decoders` (named format or the user's FILE.py:fn).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from edgeprune.coco import CocoGroundTruth
from edgeprune.errors import UserError
from edgeprune.tasks import decoders
from edgeprune.tasks.base import FRACTION, Metric, OutputInfo, Task
from edgeprune.tasks.options import DECODERS

if TYPE_CHECKING:
    from edgeprune.data import Dataset

MAP = Metric("map", "mAP@[.5:.95]", higher_is_better=True, unit=FRACTION)
MAP50 = Metric("map50", "mAP@.5", higher_is_better=True, unit=FRACTION)


class DetectionTask(Task):
    """Boxes scored against COCO ground truth; `decode` names the output format."""

    name: ClassVar[str] = "detection"
    metrics = (MAP, MAP50)

    def __init__(self, decode: str | None = None) -> None:
        if decode is not None and decode not in DECODERS and ":" not in decode:
            raise UserError(
                f"decode {decode!r} is not one of {', '.join(DECODERS)} or FILE.py:fn",
                params=("decode",),
            )
        self.decode = decode
        self._fn = None
        if decode is not None and decode not in DECODERS:
            from edgeprune.user_code import load_callable

            self._fn = load_callable(decode, "decode")

    def check(self, data: Dataset, outputs: Sequence[OutputInfo], model_name: str) -> None:
        truth = ground_truth(data)
        shapes = [tuple(o.shape) for o in outputs]
        shown = ", ".join(str(list(s)) for s in shapes)
        fmt = self.format_of(shapes, truth.num_classes, model_name)
        if fmt == "yolo":
            if (
                len(shapes) != 1
                or decoders.yolo_channels_first(shapes[0], truth.num_classes) is None
            ):
                channels = _yolo_channels(shapes)
                what = (
                    f"{channels - 4} class scores"
                    if channels is not None
                    else "no [N, 4+C, K] head"
                )
                raise UserError(
                    f"{model_name} outputs {shown} ({what}) but dataset {data.name!r} has "
                    f"{truth.num_classes} categories; decode yolo needs [N, {4 + truth.num_classes}, K]",
                    params=("decode",),
                )
        elif fmt == "postprocess" and decoders.postprocess_layout(shapes) is None:
            raise UserError(
                f"{model_name} outputs {shown}; decode postprocess needs boxes [N, K, 4], "
                "classes [N, K], scores [N, K], count [N]",
                params=("decode",),
            )

    def format_of(
        self, shapes: Sequence[tuple[int | None, ...]], num_classes: int, model_name: str
    ) -> str:
        """The decode format: as named, else the one the output shapes admit."""
        if self.decode is not None:
            return self.decode if self.decode in DECODERS else "user"
        if decoders.postprocess_layout(shapes) is not None:
            return "postprocess"
        if len(shapes) == 1 and decoders.yolo_channels_first(shapes[0], num_classes) is not None:
            return "yolo"
        shown = ", ".join(str(list(s)) for s in shapes)
        raise UserError(
            f"{model_name} outputs {shown}: not DetectionPostProcess (4 outputs) nor a "
            f"[N, 4+{num_classes}, K] head; give decode postprocess, yolo or FILE.py:fn",
            params=("decode",),
        )

    def detections(self, data: Dataset, outputs: Sequence[np.ndarray]) -> list[decoders.Detections]:
        """Per validation image, its detections in original pixels (outputs[i][j] is image j)."""
        truth = ground_truth(data)
        arrays = [np.asarray(o) for o in outputs]
        for array in arrays:
            if len(array) != len(truth.image_ids):
                raise UserError(
                    f"the model gave {len(array)} results for {len(truth.image_ids)} images "
                    f"of dataset {data.name!r}",
                    params=("data",),
                )
        fmt = self.format_of([a.shape for a in arrays], truth.num_classes, "the model")
        sizes = [(int(h), int(w)) for h, w in truth.sizes]
        if fmt == "postprocess":
            return decoders.decode_postprocess(arrays, sizes)
        if fmt == "yolo":
            size = (int(data.x_val.shape[1]), int(data.x_val.shape[2]))
            return decoders.decode_yolo(arrays, sizes, size, truth.num_classes)
        assert self._fn is not None and self.decode is not None
        return decoders.decode_user(self._fn, self.decode, arrays, sizes, truth.num_classes)

    def score(self, data: Dataset, outputs: Sequence[np.ndarray]) -> dict[str, float]:
        truth = ground_truth(data)
        return coco_map(truth, self.detections(data, outputs))

    def default_loss(self, model: Any) -> Any:
        raise UserError(
            "a detector has no generic training loss; compile the model with its own loss "
            "or give loss FILE.py:fn",
            params=("loss",),
        )


def ground_truth(data: Dataset) -> CocoGroundTruth:
    truth = data.ground_truth
    if not isinstance(truth, CocoGroundTruth):
        raise UserError(
            f"task detection needs COCO JSON data (images + boxes); dataset {data.name!r} has none",
            params=("data",),
        )
    return truth


def coco_map(truth: CocoGroundTruth, detections: Sequence[decoders.Detections]) -> dict[str, float]:
    """mAP@[.5:.95] and mAP@.5 by pycocotools (its printout silenced), then AP@.5 per
    category with ground truth ("map50/<name>")."""
    from pycocotools.coco import COCO  # type: ignore[import-untyped]
    from pycocotools.cocoeval import COCOeval  # type: ignore[import-untyped]

    results: list[dict[str, Any]] = []
    for image_id, (boxes, scores, labels) in zip(truth.image_ids, detections, strict=True):
        if len(labels) and (labels.min() < 0 or labels.max() >= truth.num_classes):
            raise UserError(
                f"the model's class index {int(labels.max())} is outside the data's "
                f"{truth.num_classes} categories (0..{truth.num_classes - 1}); if the model "
                "counts a background class, give decode FILE.py:fn that shifts it",
                params=("decode",),
            )
        for (x1, y1, x2, y2), score, label in zip(boxes, scores, labels, strict=True):
            results.append(
                {
                    "image_id": image_id,
                    "category_id": truth.category_ids[int(label)],
                    "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                    "score": float(score),
                }
            )
    if not results:
        return {MAP.name: 0.0, MAP50.name: 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = truth.coco
        gt.createIndex()
        dt = gt.loadRes(results)
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.params.imgIds = list(truth.image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    found = {MAP.name: max(float(stats[0]), 0.0), MAP50.name: max(float(stats[1]), 0.0)}
    # per category: AP@.5 from precision[IoU .5, recall, category, all areas, 100 dets]
    precision = evaluator.eval["precision"]
    for k, name in enumerate(truth.category_names):
        curve = precision[0, :, k, 0, -1]
        if np.any(curve > -1):
            found[f"{MAP50.name}/{name}"] = float(np.mean(curve[curve > -1]))
    return found


def _yolo_channels(shapes: Sequence[tuple[int | None, ...]]) -> int | None:
    if len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][1] is not None:
        return int(min(v for v in shapes[0][1:] if v is not None))
    return None
