"""Models on boards: `deploy`, `bench` (into a results store, or memory only) and `compare`.

`devices` is a device name (`"local"`, this machine through the same agent as a board), a
comma-separated list of names, a `Device`, or a list of those; names other than `local`
come from the inventory (`load_inventory()`: `$EDGEPRUNE_INVENTORY` or
~/.config/edgeprune/devices.yaml).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from edgeprune.api._params import take, with_options
from edgeprune.api.results import BenchResult, Comparison, DeployResult
from edgeprune.errors import DeviceError, UserError
from edgeprune.fleet.artifacts import LocalModel, load_models
from edgeprune.fleet.inventory import Device, load_inventory
from edgeprune.results.store import ResultsStore

if TYPE_CHECKING:
    from edgeprune.fleet.options import DeployOptions

__all__ = ["DEFAULT_STORE", "Device", "bench", "compare", "deploy", "load_inventory"]


class _DefaultStore:
    """Stands for the store `edgeprune results` reads (`$EDGEPRUNE_RESULTS_DB` or the default)."""

    def __repr__(self) -> str:
        return "DEFAULT_STORE"


DEFAULT_STORE: Final = _DefaultStore()

StoreLike = str | os.PathLike[str] | ResultsStore | _DefaultStore | None
DevicesLike = str | Device | Sequence[str | Device]
ModelsLike = Any
"""A .tflite path or a ConvertResult, or a list of those (the first is the baseline)."""


def _deploy_options(
    parallel: int | None, concurrency: int | None, accept_new_host_key: bool
) -> DeployOptions:
    """`DeployOptions` from the verbs' keywords; the deprecated `concurrency` goes in by its
    old name, so DeployOptions' own check warns (or refuses it beside `parallel`)."""
    from edgeprune.fleet.options import DeployOptions

    values: dict[str, Any] = {"accept_new_host_key": accept_new_host_key}
    if concurrency is not None:
        values["concurrency"] = concurrency
    if parallel is not None or concurrency is None:
        values["parallel"] = parallel
    return DeployOptions.create(**values)


def deploy(
    models: ModelsLike,
    devices: DevicesLike = "local",
    *,
    inventory: str | os.PathLike[str] | None = None,
    accept_new_host_key: bool = False,
    parallel: int | None = None,
    concurrency: int | None = None,
    check: bool = True,
) -> DeployResult:
    """Upload the models each device lacks, verified by sha256 on the device.

    `parallel`: devices worked on at once (default all of them, at most 32; `concurrency` is
    its deprecated name). With `check`, a device that failed raises `DeviceError` (after
    every other device ran).
    """
    from edgeprune.fleet.deploy import deploy_models

    run = deploy_models(
        _models(models),
        _devices(devices, inventory),
        _deploy_options(parallel, concurrency, accept_new_host_key),
    )
    result = DeployResult(run.to_dict()["devices"])
    if check and result.failures:
        raise DeviceError(f"deploy failed: {'; '.join(result.failures)}")
    return result


def bench(
    models: ModelsLike,
    devices: DevicesLike = "local",
    *,
    store: StoreLike = DEFAULT_STORE,
    inputs: str | os.PathLike[str] | None = None,
    inventory: str | os.PathLike[str] | None = None,
    accept_new_host_key: bool = False,
    parallel: int | None = None,
    concurrency: int | None = None,
    check: bool = True,
    mlflow: str | None = None,
    options: object = None,
    **given: Any,
) -> BenchResult:
    """Deploy what is missing, measure every model on every device, keep the numbers.

    Keywords are the agent's bench options (runs=50, warmup=5, threads=1 or [1, 4],
    xnnpack, min_seconds, timeout_s, seed, ...); `options` (an `ep.BenchOptions`) gives
    them all at once. `store` is where the results go: the
    default store, a path, a ResultsStore, or None to keep them in memory only (then
    `run_id` is None). `inputs` is an .npz (x[, y]) or .npy run instead of random data.
    `mlflow` (a tracking URI such as sqlite:///mlflow.db) also logs one MLflow run per model ×
    device. `parallel` is as for `deploy`. With `check`, any failed device or measurement
    raises `DeviceError`.
    """
    from edgeprune.fleet.options import BenchOptions
    from edgeprune.workflows.bench import DEFAULT_STORE as DEFAULT_DB
    from edgeprune.workflows.bench import bench_models

    values = with_options(options, given)
    inputs = take(values, "inputs", inputs)
    if isinstance(values.get("threads"), int) and not isinstance(values["threads"], bool):
        values["threads"] = [values["threads"]]
    elif isinstance(values.get("threads"), tuple):
        values["threads"] = list(values["threads"])
    bench_options = BenchOptions.create(**values)
    loaded = _models(models)
    where = DEFAULT_DB if isinstance(store, _DefaultStore) else store
    run = bench_models(
        loaded,
        _devices(devices, inventory),
        bench_options,
        store=where,
        inputs=None if inputs is None else str(inputs),
        deploy=_deploy_options(parallel, concurrency, accept_new_host_key),
        mlflow=mlflow,
    )
    document = run.to_dict()
    kept = run.db is not None
    if not kept:
        for row in document["rows"]:
            row["run_id"] = None
    result = BenchResult(
        run.run_id if kept else None,
        run.db,
        document["rows"],
        document["devices"],
        [m.name for m in loaded],
        source=(run.store, run.run_id),
        mlflow=document["mlflow"],
    )
    if check and result.failures:
        first = result.failures[0]
        raise DeviceError(
            f"{len(result.failures)} failure(s) in the bench run; first: {first} "
            "(pass check=False to get the result anyway)"
        )
    return result


def compare(
    run: BenchResult | int | str = "latest",
    *,
    baseline: str | None = None,
    store: StoreLike = DEFAULT_STORE,
) -> Comparison:
    """Each model's p50 next to the baseline's (the first model unless `baseline` names one),
    per device and thread count, with the speed-up's 95 % interval and a verdict (faster,
    slower, indistinguishable) from the stored runs.

    `run` is a BenchResult, or a run id / reference (`latest`, `latest~1`) in `store`.
    `baseline` is a model's file name or a sha256 prefix.
    """
    from edgeprune.results.tables import summary_rows

    measured: list[dict[str, Any]] | None = None
    if isinstance(run, BenchResult):
        rows, run_id = run.rows, run.run_id
        if run.source is not None:
            kept, stored_id = run.source
            measured = kept.measurements([stored_id], with_json=True)
    else:
        kept = _store(store, create=False)
        run_id = kept.resolve_run(str(run))
        measured = kept.measurements([run_id], with_json=True)
        rows = [{"model": r["model_name"], "model_sha256": r["model_sha256"]} for r in measured]
    if not rows:
        raise UserError("the run has no measurements to compare", params=("run",))
    base_sha = _baseline_sha(rows, baseline)
    if isinstance(run, BenchResult) and any(
        r["baseline"] and r["model_sha256"] == base_sha for r in rows
    ):
        judged = rows  # the bench's own baseline: its rows are already judged against it
    elif measured is not None:
        judged = summary_rows(measured, baseline_sha256=base_sha)
        if run_id is None:
            judged = [r | {"run_id": None} for r in judged]
    else:
        judged = _judged_by_p50(rows, base_sha)
    base_name = next(r["model"] for r in judged if r["model_sha256"] == base_sha)
    base_p50 = {
        (r["device"], r["threads"], r["xnnpack"]): r["p50_ms"]
        for r in judged
        if r["model_sha256"] == base_sha and r["status"] == "ok" and r["p50_ms"]
    }
    out = []
    for row in judged:
        reference = base_p50.get((row["device"], row["threads"], row["xnnpack"]))
        p50 = row["p50_ms"] if row["status"] == "ok" else None
        out.append(
            dict(row)
            | {
                "p50_ms": p50,
                "baseline_p50_ms": reference,
                "ratio": p50 / reference if p50 and reference else None,
            }
        )
    return Comparison(baseline=base_name, rows=out, run_id=run_id)


def _judged_by_p50(rows: list[dict[str, Any]], base_sha: str) -> list[dict[str, Any]]:
    """Rows of a BenchResult made by hand (no store to read runs from): p50 ratios only."""
    base = {
        (r["device"], r["threads"], r["xnnpack"]): r["p50_ms"]
        for r in rows
        if r["model_sha256"] == base_sha and r["status"] == "ok" and r["p50_ms"]
    }
    out = []
    for row in rows:
        reference = base.get((row["device"], row["threads"], row["xnnpack"]))
        is_base = row["model_sha256"] == base_sha
        speedup = reference / row["p50_ms"] if reference and row.get("p50_ms") else None
        out.append(
            dict(row)
            | {
                "baseline": is_base,
                "speedup": 1.0 if is_base and speedup else speedup,
                "speedup_ci": None,
                "verdict": "baseline" if is_base and speedup else None,
                "method": None,
                "runs_to_decide": None,
            }
        )
    return out


def _models(models: ModelsLike) -> list[LocalModel]:
    items = models if isinstance(models, (list, tuple)) else [models]
    paths = []
    for item in items:
        path = getattr(item, "path", item)
        if not isinstance(path, (str, os.PathLike)):
            raise UserError(
                f"models: a {type(item).__name__} is not a model file; give .tflite paths "
                "or the results of ep.convert",
                params=("models",),
            )
        paths.append(str(path))
    return load_models(paths)


def _devices(devices: DevicesLike, inventory: str | os.PathLike[str] | None) -> list[Device]:
    items: list[str | Device] = [devices] if isinstance(devices, (str, Device)) else list(devices)
    if not items:
        raise UserError(
            "devices: give at least one device (e.g. devices='local')", params=("devices",)
        )
    loaded = None
    chosen: dict[str, Device] = {}
    for item in items:
        if isinstance(item, Device):
            chosen.setdefault(item.name, item)
            continue
        if loaded is None:
            loaded = load_inventory(inventory)
        for device in loaded.select(names=[item]):
            chosen.setdefault(device.name, device)
    return list(chosen.values())


def _store(store: StoreLike, *, create: bool) -> ResultsStore:
    if isinstance(store, ResultsStore):
        return store
    if store is None:
        raise UserError("store=None keeps no results to read; pass a store", params=("store",))
    path = None if isinstance(store, _DefaultStore) else store
    return ResultsStore(path, create=create)


def _baseline_sha(rows: list[dict[str, Any]], baseline: str | None) -> str:
    if baseline is None:
        marked = [r["model_sha256"] for r in rows if r.get("baseline")]
        return str(marked[0] if marked else rows[0]["model_sha256"])
    for row in rows:
        if row["model"] == baseline or row["model_sha256"].startswith(baseline):
            return str(row["model_sha256"])
    names = ", ".join(dict.fromkeys(r["model"] for r in rows))
    raise UserError(
        f"baseline {baseline!r} is not a model of the run; its models: {names}",
        params=("baseline",),
    )
