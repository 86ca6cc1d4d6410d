"""The plan: every variant's stages with their content keys, and which are already done.

Stages of one variant: `base` (train, load or build the model) → its steps in order
(`prune`, `channels`, `finetune`) → `convert` → one `bench` per device. Keys chain (each
includes its parent's), so variants that share a prefix share its stages: the dense and
int8 variants train the base model once, the pruned fp32 and int8 variants prune once.
Planning needs no TensorFlow and no device: `--dry-run` is instant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_agents.protocol import BenchOptions, ProtocolError
from edgeprune.errors import UserError
from edgeprune.fleet.inventory import Device
from edgeprune.fleet.options import HOST_ONLY
from edgeprune.recipes.cache import (
    StageCache,
    StageRecord,
    code_fingerprint,
    content_key,
    data_fingerprint,
    tool_versions,
)
from edgeprune.recipes.fit_check import check_data_fits
from edgeprune.recipes.loader import Recipe
from edgeprune.recipes.sweep import Variant

DATA_STAGES = ("base", "xnnpack_fix", "finetune", "qat", "adapt", "convert")


@dataclass
class PlannedStage:
    kind: str
    key: str
    options: dict[str, Any]
    record: StageRecord | None = None

    @property
    def cached(self) -> bool:
        return self.record is not None


@dataclass
class PlannedBench:
    """One (variant, device) measurement; `key` is None until the model's sha256 is known."""

    device: str
    key: str | None = None
    record: dict[str, Any] | None = None
    inputs: bool = False

    @property
    def cached(self) -> bool:
        return self.record is not None


@dataclass
class VariantPlan:
    variant: Variant
    stages: list[PlannedStage]
    bench: dict[str, PlannedBench] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.variant.name

    @property
    def converted(self) -> StageRecord | None:
        return self.stages[-1].record

    @property
    def ships_inputs(self) -> bool:
        """Validation samples go to the device only for float-input models."""
        return self.variant.convert.options["io"] == "float"


@dataclass
class Plan:
    recipe: Recipe
    workdir: Path
    cache: StageCache
    devices: list[Device]
    bench_options: BenchOptions
    data_key: str | None
    variants: list[VariantPlan]
    inputs_path: Path | None = None
    constraints: dict[str, Any] = field(default_factory=dict)  # device -> ConstraintOptions

    def stage_counts(self) -> tuple[int, int]:
        """(stages cached, stages in total), shared stages counted once, bench included."""
        seen: dict[tuple[str, str], bool] = {}
        for plan in self.variants:
            for stage in plan.stages:
                seen[(stage.kind, stage.key)] = stage.cached
            for device, bench in plan.bench.items():
                seen[("bench", f"{device}/{bench.key or plan.name}")] = bench.cached
        return sum(seen.values()), len(seen)

    def to_dict(self) -> dict[str, Any]:
        cached, total = self.stage_counts()
        return {
            "recipe": str(self.recipe.path),
            "name": self.recipe.name,
            "workdir": str(self.workdir),
            "devices": [d.name for d in self.devices],
            "bench_options": self.bench_options.__dict__,
            "constraints": {name: c.model_dump() for name, c in self.constraints.items()},
            "stages_cached": cached,
            "stages_total": total,
            "variants": [
                {
                    "name": p.name,
                    "pipeline": p.variant.pipeline,
                    "steps": p.variant.describe(),
                    "axes": p.variant.axes,
                    "stages": [
                        {"stage": s.kind, "key": s.key, "cached": s.cached} for s in p.stages
                    ]
                    + [
                        {"stage": f"bench@{d}", "key": b.key, "cached": b.cached}
                        for d, b in p.bench.items()
                    ],
                }
                for p in self.variants
            ],
        }


def bench_options_of(recipe: Recipe) -> BenchOptions:
    spec: Any = recipe.spec.bench  # a model built from BenchOptions' fields
    values = spec.model_dump(exclude={"inputs", *HOST_ONLY})  # interleave: benching reads it
    try:
        return BenchOptions(**values).validate("bench")
    except ProtocolError as exc:
        raise recipe.lines.error(("bench",), str(exc).removeprefix("bench: ")) from None


def data_key_of(recipe: Recipe) -> str | None:
    """One key for the recipe's data section (what every data-reading stage depends on)."""
    data = recipe.spec.data
    if data is None:
        return None
    prints: dict[str, Any] = {}
    for part in ("train", "validation", "calibration"):
        value = getattr(data, part)
        if value is None:
            continue
        try:
            prints[part] = data_fingerprint(recipe.dataset_spec(value))
        except UserError as exc:
            raise recipe.lines.error(("data", part), str(exc)) from None
    prints["calibration_samples"] = data.calibration_samples
    prints["image_size"] = data.image_size
    return content_key(prints)


def base_payload(recipe: Recipe, data_key: str | None) -> dict[str, Any]:
    model = recipe.spec.model.model_dump()
    if model["file"]:
        path = recipe.resolve(model["file"])
        if not path.exists():
            raise recipe.lines.error(("model", "file"), f"model file {str(path)!r} does not exist")
        from device_agents.integrity import sha256_file

        model["file"] = sha256_file(path) if path.is_file() else _tree_print(path)
    if model["weights"] not in (None, "imagenet"):
        from device_agents.integrity import sha256_file

        weights = recipe.resolve(model["weights"])
        if not weights.is_file():
            raise recipe.lines.error(
                ("model", "weights"), f"weights file {str(weights)!r} does not exist"
            )
        model["weights"] = sha256_file(weights)
    payload = {
        "stage": "base",
        "model": model,
        "data": data_key,
        "code": code_fingerprint("base"),
        "tools": tool_versions(),
    }
    custom = recipe.custom_objects()
    if custom is not None:  # only when given, so the keys of other recipes stay as they were
        from device_agents.integrity import sha256_file

        given = Path(custom)
        payload["custom_objects"] = sha256_file(given) if given.is_file() else custom
    return payload


def _tree_print(path: Path) -> str:
    return data_fingerprint(str(path))


def make_plan(
    recipe: Recipe,
    workdir: Path,
    devices: list[Device],
    cache: StageCache | None = None,
) -> Plan:
    """Keys and cache status of every host stage; bench stages are filled by `plan_bench`."""
    cache = cache or StageCache(workdir)
    data_key = data_key_of(recipe)
    check_data_fits(recipe)
    base_key = content_key(base_payload(recipe, data_key))
    base = PlannedStage("base", base_key, {}, cache.load("base", base_key))
    plans = []
    memo: dict[tuple[str, str], PlannedStage] = {("base", base_key): base}
    for variant in recipe.variants:
        stages = [base]
        parent = base_key
        for step in variant.steps:
            options = dict(step.options)
            if step.kind == "convert" and options["calibration_samples"] is None:
                data = recipe.spec.data
                options["calibration_samples"] = data.calibration_samples if data else None
            uses_data = step.kind in DATA_STAGES or (
                step.kind == "prune" and options["method"] == "gradual"
            )
            payload = {
                "stage": step.kind,
                "parent": parent,
                "options": options,
                "data": data_key if uses_data else None,
                "code": code_fingerprint(step.kind),
                "tools": tool_versions(),
            }
            key = content_key(payload)
            stage = memo.get((step.kind, key))
            if stage is None:
                stage = PlannedStage(step.kind, key, options, cache.load(step.kind, key))
                memo[(step.kind, key)] = stage
            stages.append(stage)
            parent = key
        plans.append(VariantPlan(variant, stages))
    plan = Plan(
        recipe=recipe,
        workdir=workdir,
        cache=cache,
        devices=devices,
        bench_options=bench_options_of(recipe),
        data_key=data_key,
        variants=plans,
    )
    if recipe.spec.data is not None and getattr(recipe.spec.bench, "inputs", True):
        plan.inputs_path = workdir / "inputs" / f"validation-{data_key}.npz"
    for variant_plan in plans:
        for device in devices:
            variant_plan.bench[device.name] = PlannedBench(device.name)
    return plan


def bench_key(plan: Plan, device: Device, sha256: str, inputs_sha256: str | None) -> str:
    return content_key(
        {
            "stage": "bench",
            "model_sha256": sha256,
            "device": {
                "name": device.name,
                "kind": device.kind,
                "hostname": device.hostname,
                "port": device.port,
                "user": device.user,
                "spool": device.spool if not device.is_local else "local",
            },
            "options": plan.bench_options.__dict__,
            "inputs_sha256": inputs_sha256,
        }
    )


def bench_record_path(plan: Plan, key: str) -> Path:
    return plan.workdir / "bench" / f"{key}.json"


def plan_bench(plan: Plan, store: Any | None) -> None:
    """Fill in bench keys for converted variants and find the measurements already stored.

    A record counts only when the results DB it names is this one and still holds ok rows
    for that job: measurements that failed, or live in another DB, are measured again.
    """
    from device_agents.integrity import sha256_file

    inputs_sha = (
        sha256_file(plan.inputs_path) if plan.inputs_path and plan.inputs_path.is_file() else None
    )
    records: list[tuple[PlannedBench, dict[str, Any]]] = []
    for variant_plan in plan.variants:
        converted = variant_plan.converted
        for device in plan.devices:
            bench = variant_plan.bench[device.name]
            bench.inputs = plan.inputs_path is not None and variant_plan.ships_inputs
            bench.key = bench.record = None
            if converted is None or (bench.inputs and inputs_sha is None):
                continue
            sha = str(converted.metrics["sha256"])
            bench.key = bench_key(plan, device, sha, inputs_sha if bench.inputs else None)
            path = bench_record_path(plan, bench.key)
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            records.append((bench, record))
    if store is None or not records:
        return
    run_ids = sorted({int(r.get("run_id", 0)) for _, r in records})
    ok = {
        (row["device"], row["job_id"])
        for row in store.measurements(run_ids=run_ids)
        if row["status"] == "ok"
    }
    same_db = str(Path(store.path).resolve())
    for bench, record in records:
        if record.get("db") == same_db and (record.get("device"), record.get("job_id")) in ok:
            bench.record = record
