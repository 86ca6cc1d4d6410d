"""The bench stage of a recipe: the variants' .tflite files measured on every device.

Through the fleet API (`bench_on_session`): deploy what the device lacks (by sha256),
queue the models (one interleaved group job, or one job per model with
`bench.interleave: false`), bring the results home into the results store (`store_results`),
then write one record per (model, device, options) under `bench/` so a re-run knows it is
done. Devices
run in parallel; a device that fails is recorded against that device and the others
finish. Only ok results are recorded, so a re-run measures failures again.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device_agents.integrity import atomic_write_text, sha256_file
from edgeprune.fleet.artifacts import LocalModel, load_model
from edgeprune.fleet.cancel import interrupt_cancels
from edgeprune.fleet.fanout import GroupResult
from edgeprune.fleet.inventory import Device
from edgeprune.fleet.remote_bench import BenchInputs, bench_on_session
from edgeprune.fleet.session import ConnectOptions, DeviceSession, each_session
from edgeprune.manifest import read_manifest, write_manifest
from edgeprune.recipes.plan import Plan, VariantPlan, bench_record_path
from edgeprune.workflows.bench import store_results

BenchStep = Callable[[str, str, int, int], None]


@dataclass
class DeviceRun:
    """What one device did in this run."""

    device: str
    measured: list[str] = field(default_factory=list)  # variant names
    failed: dict[str, str] = field(default_factory=dict)  # variant name -> error


def publish_variant(plan: Plan, variant_plan: VariantPlan) -> Path:
    """`models/<variant>.tflite` (+ manifest naming the recipe and variant) from the stage cache."""
    record = variant_plan.converted
    assert record is not None
    source = record.output(plan.cache, "tflite")
    target = plan.workdir / "models" / f"{variant_plan.name}.tflite"
    target.parent.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(source)
    if target.is_file() and sha256_file(target) == record.metrics["sha256"]:
        return target
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, temp)
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    if manifest is not None:
        manifest.file = target.name
        manifest.recipe = {
            "name": plan.recipe.name,
            "path": str(plan.recipe.path),
            "variant": variant_plan.name,
            "steps": variant_plan.variant.describe(),
        }
        write_manifest(target, manifest)
    return target


def write_inputs(plan: Plan, x: np.ndarray, y: Any) -> Path:
    """The validation samples as `inputs/validation-<data key>.npz` (x float32, y class ids;
    x alone when the labels are not class ids: the device then measures no top-1)."""
    assert plan.inputs_path is not None
    if plan.inputs_path.is_file():
        return plan.inputs_path
    plan.inputs_path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".inputs.", suffix=".npz", dir=plan.inputs_path.parent)
    os.close(fd)
    try:
        arrays = {"x": np.asarray(x, dtype=np.float32)}
        if isinstance(y, np.ndarray) and np.issubdtype(y.dtype, np.integer):
            arrays["y"] = np.asarray(y, dtype=np.int64)
        np.savez(temp, **arrays)  # type: ignore[arg-type]
        os.replace(temp, plan.inputs_path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return plan.inputs_path


def bench_missing(
    plan: Plan,
    store: Any,
    run_id: int,
    *,
    connect: ConnectOptions | None = None,
    step: BenchStep | None = None,
    parallel: int | None = None,
) -> GroupResult[DeviceRun]:
    """Measure every converted variant that has no valid bench record, on every device."""
    todo: dict[str, list[VariantPlan]] = {}
    for variant_plan in plan.variants:
        for device in plan.devices:
            bench = variant_plan.bench[device.name]
            if bench.key is not None and not bench.cached:
                todo.setdefault(device.name, []).append(variant_plan)
    devices = [d for d in plan.devices if d.name in todo]
    inputs = BenchInputs.load(str(plan.inputs_path)) if plan.inputs_path else None

    def work(session: DeviceSession) -> DeviceRun:
        device = session.device
        outcome = DeviceRun(device.name)
        for ships in (True, False):
            group = [v for v in todo[device.name] if v.bench[device.name].inputs == ships]
            if group:
                _bench_group(
                    plan,
                    session,
                    device,
                    group,
                    inputs if ships else None,
                    store,
                    run_id,
                    step,
                    outcome,
                )
        return outcome

    with interrupt_cancels():  # Ctrl-C: the devices' jobs are cancelled, not left to run
        return each_session(devices, work, connect=connect, parallel=parallel)


def _bench_group(
    plan: Plan,
    session: DeviceSession,
    device: Device,
    group: list[VariantPlan],
    inputs: BenchInputs | None,
    store: Any,
    run_id: int,
    step: BenchStep | None,
    outcome: DeviceRun,
) -> None:
    by_sha: dict[str, list[VariantPlan]] = {}
    models: list[LocalModel] = []
    for variant_plan in group:
        model = load_model(plan.workdir / "models" / f"{variant_plan.name}.tflite")
        if model.sha256 not in by_sha:
            models.append(model)
        by_sha.setdefault(model.sha256, []).append(variant_plan)
    bench_spec: Any = plan.recipe.spec.bench  # built from BenchOptions' fields (host-only too)
    result = bench_on_session(
        session,
        models,
        plan.bench_options,
        on_result=store_results(store, run_id, inputs),
        inputs=inputs,
        step=step,
        interleave=bench_spec.interleave,
    )
    db = str(Path(store.path).resolve())
    for model, measured in result.results:
        for variant_plan in by_sha.get(model.sha256, []):
            bench = variant_plan.bench[device.name]
            if measured.status != "ok":
                outcome.failed[variant_plan.name] = measured.error or "error"
                continue
            record = {
                "key": bench.key,
                "device": device.name,
                "variant": variant_plan.name,
                "model_sha256": model.sha256,
                "run_id": run_id,
                "job_id": measured.job_id,
                "db": db,
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            assert bench.key is not None
            path = bench_record_path(plan, bench.key)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(record, indent=2) + "\n", 0o644)
            bench.record = record
            outcome.measured.append(variant_plan.name)
