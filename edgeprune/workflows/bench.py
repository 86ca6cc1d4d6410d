"""Measure models on devices and record the numbers: the fleet's bench loop into a results store.

`fleet.remote_bench` only measures and hands each result over; this module opens a run in
the store, stores each result before the agent is told to drop it, and turns the stored
rows into the summary people read. `bench_models` is what `edgeprune bench` and `ep.bench`
call; `BenchRun` also decides what counts as a failure, so every caller agrees.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_agents.protocol import Result
from edgeprune.errors import DeviceError
from edgeprune.fleet.artifacts import LocalModel, as_local_models
from edgeprune.fleet.deploy import DeployProgress, require_success
from edgeprune.fleet.fanout import GroupResult
from edgeprune.fleet.inventory import Device, load_inventory, local_device
from edgeprune.fleet.options import BenchOptions, DeployOptions
from edgeprune.fleet.remote_bench import (
    BenchInputs,
    DeviceBench,
    ResultSink,
    StepProgress,
    device_accuracy,
    run_bench,
)
from edgeprune.results.mlflow_log import MlflowLog, check_tracking_uri, log_runs
from edgeprune.results.recording import bench_outcome, ended_early_recorded
from edgeprune.results.rows import ModelInfo
from edgeprune.results.store import ResultsStore
from edgeprune.results.tables import summary_rows

DEFAULT_STORE: Any = object()
"""`store=` when not given: the default results DB ($EDGEPRUNE_RESULTS_DB or the data dir)."""

ModelRef = str | os.PathLike[str] | LocalModel
DeviceRef = str | Device


@dataclass
class BenchRun:
    """One bench run: its id in the store, the summary rows and what each device did."""

    run_id: int
    store: ResultsStore
    baseline: LocalModel
    rows: list[dict[str, Any]]
    group: GroupResult[DeviceBench]
    mlflow: MlflowLog | None = None

    @property
    def db(self) -> Path | None:
        """The results DB's file (None when the results were kept in memory only)."""
        return self.store.path if self.store.persistent else None

    @property
    def failed_devices(self) -> list[str]:
        """Devices that failed as a whole (unreachable, refused, no agent)."""
        return [o.device.name for o in self.group.failed]

    @property
    def failures(self) -> list[dict[str, Any]]:
        """Summary rows of measurements that failed on a device that was reached."""
        return [r for r in self.rows if r["status"] != "ok"]

    @property
    def ok(self) -> bool:
        return not self.failed_devices and not self.failures

    def raise_for_failures(self) -> None:
        """A `DeviceError` when a device or a measurement failed; nothing when all went well."""
        require_success(self.group, "bench")
        if self.failures:
            first = self.failures[0]
            raise DeviceError(
                f"{len(self.failures)} of {len(self.rows)} measurement(s) failed on the "
                f"device(s); first: {first['model']} on {first['device']}: {first['error']}"
            )

    def to_dict(self) -> dict[str, Any]:
        """What `edgeprune bench --json` prints."""
        return {
            "run_id": self.run_id,
            "db": None if self.db is None else str(self.db),
            "rows": self.rows,
            "mlflow": None if self.mlflow is None else self.mlflow.to_dict(),
            "devices": [
                {
                    "device": o.device.name,
                    "ok": o.ok,
                    "error": None if o.ok else o.message,
                    "daemon_running": o.value.daemon_running if o.value else None,
                    "deployed": [f.to_dict() for f in o.value.deployed] if o.value else [],
                }
                for o in self.group
            ],
        }


def model_info(model: LocalModel, result: Result, inputs: BenchInputs | None) -> ModelInfo:
    """What the store keeps about the model beside its numbers (accuracy: device, else manifest)."""
    manifest = model.manifest
    sparsity = None
    if manifest and manifest.sparsity:
        value = manifest.sparsity.get("overall")
        sparsity = float(value) if isinstance(value, (int, float)) else None
    accuracy = device_accuracy(result, inputs.labels if inputs else None)
    source = (
        "device" if accuracy is not None else ("manifest" if model.accuracy is not None else None)
    )
    return ModelInfo(
        name=model.name,
        sha256=model.sha256,
        size_bytes=model.size_bytes,
        gzip_bytes=manifest.gzip_bytes if manifest else None,
        quantization=manifest.quantization if manifest else None,
        sparsity=sparsity,
        accuracy=accuracy if accuracy is not None else model.accuracy,
        accuracy_source=source,
    )


def store_results(store: ResultsStore, run_id: int, inputs: BenchInputs | None) -> ResultSink:
    """The `on_result` that stores each result under `run_id`."""

    def keep(device: str, model: LocalModel, result: Result) -> None:
        store.add_result(run_id, device, result, model_info(model, result, inputs))

    return keep


def open_store(store: ResultsStore | str | os.PathLike[str] | None) -> ResultsStore:
    """A store from what a caller gave: a store, a DB path, None (memory) or `DEFAULT_STORE`."""
    if store is DEFAULT_STORE:
        return ResultsStore(None)
    if store is None:
        return ResultsStore.in_memory()
    if isinstance(store, ResultsStore):
        return store
    return ResultsStore(store)


def resolve_devices(devices: Sequence[DeviceRef] | None) -> list[Device]:
    """Devices from names (`"pi4"`, `"pi4,jetson"`: the default inventory) or `Device`s.

    Default: the built-in `local`, so no inventory is needed. Each device once, in order.
    """
    if not devices:
        return [local_device()]
    inventory = load_inventory(None) if any(isinstance(d, str) for d in devices) else None
    chosen: dict[str, Device] = {}
    for given in devices:
        found = inventory.select([given]) if isinstance(given, str) and inventory else [given]
        for device in found:
            assert isinstance(device, Device)
            chosen.setdefault(device.name, device)
    return list(chosen.values())


def record_bench(
    models: list[LocalModel],
    devices: list[Device],
    options: BenchOptions,
    store: ResultsStore,
    *,
    deploy: DeployOptions | None = None,
    inputs: BenchInputs | None = None,
    command: str = "bench",
    progress: StepProgress | None = None,
    deploy_progress: DeployProgress | None = None,
) -> tuple[int, GroupResult[DeviceBench]]:
    """Open a run in `store`, bench every model on every device into it: (run id, outcomes).

    The run ends `ok`, or `failed` with the first failure, or `interrupted` on Ctrl-C."""
    wire = options.to_protocol()
    deploy = deploy or DeployOptions()
    run_id = store.begin_run(
        command,
        {
            "options": wire.__dict__ | {"interleave": options.interleave},
            "models": [m.name for m in models],
            "devices": [d.name for d in devices],
            "inputs": str(inputs.path) if inputs else None,
        },
        kind="bench",
    )
    with ended_early_recorded(store, run_id):  # Ctrl-C or a crash: stored as such
        group = run_bench(
            devices,
            models,
            wire,
            on_result=store_results(store, run_id, inputs),
            inputs=inputs,
            parallel=deploy.parallel,
            connect=deploy.connect(),
            deploy_progress=deploy_progress,
            step=progress,
            interleave=options.interleave,
        )
    failed = {o.device.name: o.message for o in group.failed}
    store.finish_run(run_id, *bench_outcome(failed, store.measurements([run_id])))
    return run_id, group


def load_inputs(inputs: str | os.PathLike[str] | BenchInputs | None) -> BenchInputs | None:
    """The inputs file to run instead of random data (None: random data)."""
    if inputs is None or isinstance(inputs, BenchInputs):
        return inputs
    return BenchInputs.load(str(inputs))


def bench_models(
    models: Sequence[ModelRef],
    devices: Sequence[DeviceRef] | None = None,
    options: BenchOptions | None = None,
    *,
    store: ResultsStore | str | os.PathLike[str] | None = DEFAULT_STORE,
    inputs: str | os.PathLike[str] | BenchInputs | None = None,
    deploy: DeployOptions | None = None,
    progress: StepProgress | None = None,
    deploy_progress: DeployProgress | None = None,
    mlflow: str | None = None,
) -> BenchRun:
    """Deploy what is missing, measure each model on each device, record it: one `BenchRun`.

    The first model is the baseline of the speed-ups. `store`: a `ResultsStore` or a DB path;
    None keeps the results in memory only; not given, the default results DB. Devices
    default to `local` (no inventory needed); `deploy` says how many at once and whether to
    trust new host keys. `mlflow` (a tracking URI, checked first) also gets one MLflow run per
    model × device. Failures do not raise here: see `BenchRun.failures` and
    `raise_for_failures()`.
    """
    if mlflow is not None:
        check_tracking_uri(mlflow)
    loaded = as_local_models(models)
    bench_inputs = load_inputs(inputs)
    chosen = resolve_devices(devices)
    results = open_store(store)
    run_id, group = record_bench(
        loaded,
        chosen,
        options or BenchOptions(),
        results,
        deploy=deploy,
        inputs=bench_inputs,
        progress=progress,
        deploy_progress=deploy_progress,
    )
    stored = results.measurements([run_id], with_json=True)
    rows = summary_rows(stored, baseline_sha256=loaded[0].sha256)
    logged = None
    if mlflow is not None:
        logged = log_runs(
            mlflow,
            stored,
            params=(options or BenchOptions()).to_dict(),
            model_files={m.sha256: m.path for m in loaded},
        )
    return BenchRun(run_id, results, loaded[0], rows, group, logged)
