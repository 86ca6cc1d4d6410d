"""`ep.quant_report`: which layers int8 hurts, and what keeping them float is worth."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from edgeprune.api._params import with_options


def quant_report(
    model: str | os.PathLike[str],
    data: Any = None,
    *,
    devices: str | Sequence[Any] | None = None,
    options: object = None,
    store: Any = None,
    work_dir: str | os.PathLike[str] | None = None,
    **given: Any,
) -> Any:
    """The `edgeprune quant-report` document as an object (`.to_dict()` is its `--json`).

    `data` is what `--data` takes, or a loaded `Dataset`; keywords are the fields of
    `ep.QuantReportOptions` (top, keep, calibration_samples, samples, runs); `devices` as
    `ep.bench` (default `local`); `store` a results DB path (default: kept in memory).
    """
    from edgeprune.data import Dataset
    from edgeprune.workflows.quant_report import quant_report as report_of

    values = with_options(options, given)
    dataset = data if isinstance(data, Dataset) else None
    if data is not None and dataset is None:
        values["data"] = str(data)
    named = [devices] if isinstance(devices, str) else devices
    return report_of(
        model, devices=named, store=store, work_dir=work_dir, dataset=dataset, **values
    )
