"""edgeprune: Keras 3 model → pruned, quantized TFLite → measured on real edge boards.

The public verbs are few and symmetric: `prune_model`, `prune_channels`, `convert`,
`inspect_model`, `evaluate`, `deploy_model`, `bench`. They are imported lazily so that
`import edgeprune` does not pull in TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    # name: module that defines it (filled in as the modules land)
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeprune' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
