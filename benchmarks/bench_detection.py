"""Issue 15's detection acceptance: a small detector's mAP@.5 survives conversion, pruned or not.

The shapes detector of `tests/support/detection_data.py` (an 8x8-grid, YOLO-style raw head
[N, 4+C, 64], trained here on generated images) is scored on 200 fresh generated images
(COCO JSON + PNGs, loaded through `load_dataset` as the CLI's `--data ann.json` is) in
three variants:

- dense: the trained model;
- pruned: `ep.prune(model, 0.5)` (one-shot magnitude pruning, no fine-tune);
- channels: `ep.prune_channels(model, ratio=0.3)` (no fine-tune).

Each is converted by `ep.convert` to fp32 and to int8 (calibrated from the same images:
detection data holds no labels int8 needs) and all nine models are scored by
`DetectionTask(decode="yolo")` (pycocotools' COCOeval). Goal per variant and precision:
|mAP@.5 of the Keras model - mAP@.5 of the .tflite| <= 1 point. A variant that cannot be
built (e.g. channel pruning refusing the head's graph) is printed with its one-line reason
and measured as nothing.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Ratio

REPO = Path(__file__).resolve().parents[1]
VAL_IMAGES = 200
GOAL_POINTS = 1.0


def _support() -> Any:
    """tests/support/detection_data.py, imported as the tests import it (`support.*`)."""
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from support import detection_data

    return detection_data


def _variants(model: Any) -> dict[str, Any]:
    import edgeprune as ep

    built: dict[str, Any] = {"dense": model}
    makers = {
        "pruned 50%": lambda: ep.prune(model, 0.5).model,
        "channels 0.3": lambda: ep.prune_channels(model, ratio=0.3).model,
    }
    for name, make in makers.items():
        try:
            built[name] = make()
        except Exception as exc:  # report what fails on this graph, keep measuring the rest
            print(f"  {name}: not built: {type(exc).__name__}: {exc}", flush=True)
    return built


def _keras_outputs(model: Any, x: np.ndarray) -> np.ndarray:
    from edgeprune._tf import quiet_native_output

    with quiet_native_output():
        return np.asarray(model.predict(x, batch_size=64, verbose=0), dtype=np.float32)


def _tflite_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    from edgeprune.tflite.predictors import TFLitePredictor

    return TFLitePredictor(path, str(path)).predict(x)


def run() -> list[Ratio]:
    import edgeprune as ep
    from edgeprune.data import load_dataset
    from edgeprune.tasks.detection import DetectionTask

    support = _support()
    start = time.perf_counter()
    model = support.train_detector()
    trained_s = time.perf_counter() - start
    task = DetectionTask(decode="yolo")
    rows: list[Ratio] = []
    with tempfile.TemporaryDirectory(prefix="bench-detection-") as tmp:
        folder = Path(tmp)
        spec = support.write_shapes(folder / "val", VAL_IMAGES, seed=7)
        data = load_dataset(spec, image_size=tuple(model.inputs[0].shape[1:3]))
        print(
            f"  detector trained in {trained_s:.0f} s; {len(data.x_val)} validation images",
            flush=True,
        )
        for name, variant in _variants(model).items():
            keras_scores = task.score(data, [_keras_outputs(variant, data.x_val)])
            for quantize in ("none", "int8"):
                out = folder / f"{name.split()[0]}-{quantize}.tflite"
                ep.convert(variant, out, quantize=quantize, data=data)
                scores = task.score(data, [_tflite_outputs(out, data.x_val)])
                gap = abs(keras_scores["map50"] - scores["map50"]) * 100.0
                rows.append(
                    Ratio(
                        f"detection {name} {'fp32' if quantize == 'none' else quantize}: "
                        "|mAP@.5 Keras - TFLite| (points)",
                        gap,
                        goal=GOAL_POINTS,
                        detail={
                            "keras_map50": round(keras_scores["map50"], 4),
                            "tflite_map50": round(scores["map50"], 4),
                            "keras_map": round(keras_scores["map"], 4),
                            "tflite_map": round(scores["map"], 4),
                            "tflite_bytes": out.stat().st_size,
                        },
                    )
                )
    return rows
