"""Build one host stage into the stage cache: the step itself, then its record.

Shared by the in-process builder (`executor._HostStages`) and the cluster's workers
(`cluster_build`), so a stage built on a worker lands in the same cache, under the same
name, with the same record as one built here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from edgeprune.recipes.cache import StageCache, StageRecord
from edgeprune.recipes.context import StageContext


def build_stage(
    ctx: StageContext,
    cache: StageCache,
    kind: str,
    key: str,
    options: dict[str, Any],
    parent: Path | None,
) -> StageRecord:
    """Run stage `kind` on `parent`'s output into a fresh folder; saved only if it succeeds."""
    from edgeprune.recipes.stages import STAGE_RUNNERS, run_base

    began = time.perf_counter()
    with cache.building(kind, key) as folder:
        if kind == "base":
            metrics = run_base(ctx, folder)
        else:
            assert parent is not None
            metrics = STAGE_RUNNERS[kind](ctx, parent, folder, options)
        record = StageRecord(
            kind,
            key,
            {output_name(kind): file_name(kind)},
            plain(metrics),
            round(time.perf_counter() - began, 3),
        )
        cache.save(folder, record)
    return record


def output_name(kind: str) -> str:
    return "tflite" if kind == "convert" else "model"


def file_name(kind: str) -> str:
    from edgeprune.recipes.stages import MODEL_FILE, TFLITE_FILE

    return TFLITE_FILE if kind == "convert" else MODEL_FILE


def plain(value: Any) -> Any:
    """JSON-ready (numpy scalars as Python numbers)."""
    return json.loads(
        json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    )


def one_line(exc: BaseException) -> str:
    """A failed stage's reason: a UserError's own line, else the exception's type and line."""
    from edgeprune.errors import UserError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, UserError):
        return text
    return f"unexpected {type(exc).__name__}: {text}"[:300]
