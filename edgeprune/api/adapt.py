"""`ep.adapt`: prune a model file to a latency target measured on a device (NetAdapt)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgeprune.api._params import with_options
from edgeprune.api.results import AdaptResult


def adapt(
    model: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    options: object = None,
    store: Any = None,
    table: str | os.PathLike[str] | None = None,
    **given: Any,
) -> AdaptResult:
    """Measure `device`, then remove filters until `model` meets the target; writes `output`.

    Keywords are the fields of `ep.AdaptOptions` (target_latency or target_speedup, data,
    device, quantize, threads, granularity, short_epochs, long_epochs, cluster, ...);
    `options` gives them all at once, keywords winning. `store`: a results DB path for the
    measurements (None: the default results DB); `table`: the lookup-table file.
    """
    from edgeprune.adapt.options import AdaptOptions
    from edgeprune.workflows.adapt import adapt_model_file
    from edgeprune.workflows.bench import DEFAULT_STORE

    checked = AdaptOptions.create(**with_options(options, given))
    report = adapt_model_file(
        model,
        output,
        options=checked,
        store=DEFAULT_STORE if store is None else store,
        table=table,
    )
    return AdaptResult(Path(report.output), report)
