"""Deprecated home of the sparse A/B; it is `edgeprune.workflows.sparse_ab` now.

The A/B measures on devices, which this analysis package does not do itself, so the names
are only forwarded (on first use, with a `DeprecationWarning`).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    warnings.warn(
        "edgeprune.xnnpack.sparse_ab is deprecated; use edgeprune.workflows.sparse_ab",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module("edgeprune.workflows.sparse_ab"), name)
