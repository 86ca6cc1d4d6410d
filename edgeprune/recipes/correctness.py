"""Which validation samples a model got right, kept as packed bits beside its top-1.

An accuracy drop is judged on the same samples (paired), which needs per-sample
correctness of the baseline and of each variant, not just two fractions. 360 samples are
60 characters of base64, so the bits travel in stage records and the run's record in the
results store, and a later `results report` judges the same way.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np


def pack(correct: Any) -> dict[str, Any]:
    """{"n": samples, "bits": base64 of np.packbits} of a boolean array."""
    flags = np.asarray(correct, dtype=bool).reshape(-1)
    return {
        "n": int(flags.size),
        "bits": base64.b64encode(np.packbits(flags).tobytes()).decode("ascii"),
    }


def unpack(packed: Any) -> np.ndarray | None:
    """The boolean array back (None for anything that is not a packed record)."""
    if not isinstance(packed, dict) or "bits" not in packed or "n" not in packed:
        return None
    try:
        raw = np.frombuffer(base64.b64decode(str(packed["bits"])), dtype=np.uint8)
        flags = np.unpackbits(raw)[: int(packed["n"])].astype(bool)
    except (ValueError, TypeError):
        return None
    return flags if flags.size == int(packed["n"]) else None


def correct_labels(scores: Any, labels: Any) -> np.ndarray:
    """Per-sample top-1 correctness from class scores (samples × classes) and class ids."""
    outputs = np.asarray(scores)
    return outputs.reshape(len(outputs), -1).argmax(axis=1) == np.asarray(labels).reshape(-1)
