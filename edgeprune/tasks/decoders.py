"""Detection output formats: from a model's raw outputs to boxes in original image pixels.

Every decoder returns, per image j (outputs[i][j] belongs to image j of the data), one
`Detections`: boxes [k, 4] as x1, y1, x2, y2 in the original image's pixels, scores [k] and
class indices [k] (0-based, in the order of the data's categories by ascending id).

- "postprocess": the four outputs of TFLite's DetectionPostProcess (boxes [N, K, 4]
  normalized ymin, xmin, ymax, xmax; classes [N, K]; scores [N, K]; count [N]), in any order:
  boxes are the 3-D output, count the 1-D one, and of the two [N, K] outputs the one whose
  values are all whole numbers is the classes (both whole: the TFLite order, classes first).
- "yolo": one raw head [N, 4+C, K] (or [N, K, 4+C]: the axis of size 4+C, C = the data's
  category count, holds the channels; both: [N, 4+C, K] as Ultralytics exports) with boxes
  cx, cy, w, h and C class scores (logits are passed through a sigmoid when any score lies
  outside [0, 1]). Boxes are normalized to [0, 1] when every box value is <= 1.5, else in
  the model's input pixels. Per-class NMS by TensorFlow's maintained
  `tf.image.combined_non_max_suppression`, with COCO evaluation's settings (score >= 0.001,
  at most 100 detections per image).
- FILE.py:fn / pkg.module:fn: `fn(outputs: list[np.ndarray], image_sizes: list[(h, w)])`
  returns a list of per-image (boxes xyxy pixels, scores, class indices), checked here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgeprune.errors import UserError

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]
"""One image's boxes [k, 4] (x1, y1, x2, y2 in original pixels), scores [k], class indices [k]."""

SCORE_THRESHOLD = 0.001
MAX_DETECTIONS = 100
NMS_IOU = 0.6
NORMALIZED_LIMIT = 1.5
NMS_CHUNK = 64


def postprocess_layout(shapes: Sequence[tuple[int | None, ...]]) -> tuple[int, int, int] | None:
    """Indices of (boxes, the two [N, K] outputs' first, count) when `shapes` are
    DetectionPostProcess outputs, else None."""
    if len(shapes) != 4:
        return None
    boxes = [i for i, s in enumerate(shapes) if len(s) == 3 and s[-1] == 4]
    pairs = [i for i, s in enumerate(shapes) if len(s) == 2]
    counts = [i for i, s in enumerate(shapes) if len(s) == 1]
    if len(boxes) != 1 or len(pairs) != 2 or len(counts) != 1:
        return None
    return boxes[0], pairs[0], counts[0]


def yolo_channels_first(shape: tuple[int | None, ...], num_classes: int) -> bool | None:
    """True for [N, 4+C, K], False for [N, K, 4+C], None when neither axis is 4+C."""
    if len(shape) != 3:
        return None
    if shape[1] == 4 + num_classes:
        return True
    if shape[2] == 4 + num_classes:
        return False
    return None


def decode_postprocess(
    outputs: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]]
) -> list[Detections]:
    layout = postprocess_layout([tuple(np.shape(o)) for o in outputs])
    if layout is None:
        raise UserError(
            "decode postprocess needs 4 outputs (boxes [N, K, 4], classes [N, K], scores [N, K], "
            f"count [N]); the model gives {_shapes(outputs)}",
            params=("decode",),
        )
    ib, first, ic = layout
    second = next(i for i in range(4) if i not in (ib, first, ic))
    a, b = np.asarray(outputs[first]), np.asarray(outputs[second])
    classes, scores = (b, a) if _whole(b) and not _whole(a) else (a, b)
    boxes = np.asarray(outputs[ib], dtype=np.float64)
    count = np.asarray(outputs[ic]).reshape(-1)
    out: list[Detections] = []
    for j, (h, w) in enumerate(sizes):
        k = int(min(count[j], boxes.shape[1]))
        ymin, xmin, ymax, xmax = (boxes[j, :k, c] for c in range(4))
        xyxy = np.stack([xmin * w, ymin * h, xmax * w, ymax * h], axis=1)
        out.append((xyxy, scores[j, :k].astype(np.float64), classes[j, :k].astype(np.int64)))
    return out


def decode_yolo(
    outputs: Sequence[np.ndarray],
    sizes: Sequence[tuple[int, int]],
    input_size: tuple[int, int],
    num_classes: int,
) -> list[Detections]:
    from edgeprune import _tf

    head = np.asarray(outputs[0], dtype=np.float32)
    first = yolo_channels_first(tuple(head.shape), num_classes)
    if len(outputs) != 1 or first is None:
        raise UserError(
            f"decode yolo needs one output [N, 4+C, K] or [N, K, 4+C] with C = {num_classes} "
            f"categories; the model gives {_shapes(outputs)}",
            params=("decode",),
        )
    if first:
        head = head.transpose(0, 2, 1)  # [N, K, 4+C]
    cx, cy, bw, bh = (head[..., c] for c in range(4))
    scores: np.ndarray = head[..., 4:]
    if scores.size and (scores.min() < 0.0 or scores.max() > 1.0):
        scores = 1.0 / (1.0 + np.exp(-scores))
    normalized = head.size == 0 or float(np.abs(head[..., :4]).max()) <= NORMALIZED_LIMIT
    scale_h, scale_w = (1.0, 1.0) if normalized else (float(input_size[0]), float(input_size[1]))
    # NMS on normalized y1, x1, y2, x2 so one IoU threshold fits every input size.
    corners = np.stack(
        [
            (cy - bh / 2) / scale_h,
            (cx - bw / 2) / scale_w,
            (cy + bh / 2) / scale_h,
            (cx + bw / 2) / scale_w,
        ],
        axis=-1,
    )
    tf = _tf.tf()
    out: list[Detections] = []
    for start in range(0, len(head), NMS_CHUNK):
        stop = start + NMS_CHUNK
        boxes, best, labels, valid = tf.image.combined_non_max_suppression(
            corners[start:stop, :, np.newaxis, :],
            scores[start:stop],
            max_output_size_per_class=MAX_DETECTIONS,
            max_total_size=MAX_DETECTIONS,
            iou_threshold=NMS_IOU,
            score_threshold=SCORE_THRESHOLD,
            clip_boxes=False,
        )
        boxes, best, labels, valid = (t.numpy() for t in (boxes, best, labels, valid))
        for row in range(len(valid)):
            h, w = sizes[start + row]
            k = int(valid[row])
            y1, x1, y2, x2 = (boxes[row, :k, c].astype(np.float64) for c in range(4))
            xyxy = np.stack([x1 * w, y1 * h, x2 * w, y2 * h], axis=1)
            out.append((xyxy, best[row, :k].astype(np.float64), labels[row, :k].astype(np.int64)))
    return out


def decode_user(
    fn: Callable[..., Any],
    spec: str,
    outputs: Sequence[np.ndarray],
    sizes: Sequence[tuple[int, int]],
    num_classes: int,
) -> list[Detections]:
    """Call the user's decode function and check what it returns (one line if wrong)."""
    try:
        result = fn([np.asarray(o) for o in outputs], [tuple(s) for s in sizes])
    except Exception as exc:
        raise UserError(
            f"decode {spec} failed: {type(exc).__name__}: {str(exc).strip()[:200]}",
            params=("decode",),
        ) from None
    wanted = "a list of (boxes [k, 4] x1 y1 x2 y2 pixels, scores [k], class indices [k]) per image"
    if not isinstance(result, list | tuple) or len(result) != len(sizes):
        got = f"{len(result)} items" if isinstance(result, list | tuple) else type(result).__name__
        raise UserError(
            f"decode {spec} must return {wanted} for {len(sizes)} images, not {got}",
            params=("decode",),
        )
    out: list[Detections] = []
    for j, item in enumerate(result):
        if not isinstance(item, list | tuple) or len(item) != 3:
            raise UserError(f"decode {spec}: image {j} is not {wanted}", params=("decode",))
        boxes, scores, labels = (np.asarray(v, dtype=np.float64) for v in item)
        boxes = boxes.reshape(-1, 4) if boxes.size == 0 else boxes
        k = len(scores.reshape(-1))
        if boxes.ndim != 2 or boxes.shape != (k, 4) or labels.reshape(-1).shape != (k,):
            raise UserError(
                f"decode {spec}: image {j} gives boxes {boxes.shape}, scores {scores.shape}, "
                f"classes {labels.shape}; expected [k, 4], [k], [k]",
                params=("decode",),
            )
        labels = labels.reshape(-1)
        if k and (not _whole(labels) or labels.min() < 0 or labels.max() >= num_classes):
            raise UserError(
                f"decode {spec}: image {j} has class indices outside 0..{num_classes - 1} "
                "(indices into the data's categories by ascending id)",
                params=("decode",),
            )
        if not np.all(np.isfinite(boxes)) or not np.all(np.isfinite(scores)):
            raise UserError(
                f"decode {spec}: image {j} has non-finite boxes or scores", params=("decode",)
            )
        out.append((boxes, scores.reshape(-1), labels.astype(np.int64)))
    return out


def _whole(values: np.ndarray) -> bool:
    return bool(np.all(np.mod(values, 1) == 0))


def _shapes(outputs: Sequence[np.ndarray]) -> str:
    return ", ".join(str(list(np.shape(o))) for o in outputs) or "no outputs"
