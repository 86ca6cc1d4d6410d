"""How far a new `.tflite` moved from its source: max |diff| of the outputs on a few inputs.

Reported by `convert` (result and manifest) so a broken conversion shows at once, also where
there are no labels to score (a SavedModel from elsewhere, a regression head). The inputs
are the validation samples when a dataset was given, else seeded uniform noise in [0, 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.errors import UserError
from edgeprune.tflite.runner import TFLiteRunner
from edgeprune.tflite.sources import ConversionSource

PARITY_SAMPLES = 8
PARITY_SEED = 0


def source_parity(
    path: Path,
    label: str,
    source: ConversionSource,
    x: np.ndarray | None = None,
    samples: int = PARITY_SAMPLES,
    seed: int = PARITY_SEED,
) -> dict[str, Any]:
    """{"inputs", "samples", "max_abs_diff", "mean_abs_diff", "output_range"}, or a "note"."""
    try:
        runner = TFLiteRunner(path, label=label, use_xnnpack=False)
        if len(runner.inputs) != 1 or len(runner.outputs) != 1:
            return {"note": "parity is measured for one-input, one-output models"}
        if x is not None and len(x):
            inputs, described = np.asarray(x[:samples], dtype=np.float32), "validation samples"
        else:
            shape = tuple(int(d) for d in runner.inputs[0].shape[1:])
            rng = np.random.default_rng(seed)
            inputs = rng.uniform(0.0, 1.0, size=(samples, *shape)).astype(np.float32)
            described = f"uniform noise in [0, 1), seed {seed}"
        converted = runner.predict(inputs, batch_size=samples)
        original = source.predict(inputs)
    except UserError as exc:
        return {"note": f"parity not measured: {exc}"}
    except Exception as exc:  # parity informs; a source that cannot run here must not stop convert
        return {"note": f"parity not measured: {type(exc).__name__}: {_first_line(exc)}"}
    if converted.shape != original.shape:
        return {"note": f"outputs {converted.shape[1:]} vs the source's {original.shape[1:]}"}
    diff = np.abs(converted.astype(np.float64) - original.astype(np.float64))
    return {
        "inputs": described,
        "samples": len(inputs),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "output_range": float(np.ptp(original)),
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200].rsplit(" ", 1)[0] if len(text) > 200 else text.split("\n")[0]
