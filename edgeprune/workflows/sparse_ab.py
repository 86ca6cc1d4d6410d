"""The sparse A/B (`edgeprune bench --sparse-ab`): one set of pruned weights, stored dense and stored sparse.

For each model the pair is made first (a Keras model is converted twice, with
--dense-weights and --sparse-weights; a `.tflite` gets its twin from `storage_twins`),
then both files are deployed and measured side by side on every device through the
ordinary bench path, so they land in the results store like any bench run. The speed-up
is dense p50 / sparse p50 on the same device and thread count, with its 95 % interval and
a verdict (see `results.tables.comparison`). It proves the sparse path
only where the board takes it: on x86 with AVX XNNPACK never does (expect about 1.0), and
the agent reports per board whether its runtime can (`sparse_path` in each result).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device_agents.integrity import sha256_file
from edgeprune.errors import DeviceError, UserError
from edgeprune.fleet.artifacts import LocalModel, load_model
from edgeprune.fleet.deploy import DeployProgress, require_success
from edgeprune.fleet.fanout import GroupResult
from edgeprune.fleet.options import BenchOptions, DeployOptions
from edgeprune.fleet.remote_bench import BenchInputs, DeviceBench, StepProgress
from edgeprune.manifest import build_manifest, manifest_path, write_manifest
from edgeprune.models import model_format
from edgeprune.paths import cache_dir
from edgeprune.results.store import ResultsStore
from edgeprune.results.tables import COMPARISON_FIELDS, comparison, p50_interval
from edgeprune.workflows.bench import (
    DEFAULT_STORE,
    DeviceRef,
    load_inputs,
    open_store,
    record_bench,
    resolve_devices,
)
from edgeprune.xnnpack.verifier import check_sparse_path

X86_NOTE = (
    "≈1.0 is expected here: XNNPACK disables its sparse path on x86 CPUs with AVX (dense is "
    "faster there); the speed-up shows on ARM boards"
)


@dataclass
class StoragePair:
    """One model's weights stored dense (A) and sparse (B)."""

    source: str
    dense: LocalModel
    sparse: LocalModel
    verdict: str
    eligible: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dense": str(self.dense.path),
            "sparse": str(self.sparse.path),
            "dense_sha256": self.dense.sha256,
            "sparse_sha256": self.sparse.sha256,
            "eligible": self.eligible,
            "verdict": self.verdict,
        }


@dataclass
class ABRow:
    source: str
    device: str
    threads: int
    dense_p50_ms: float | None
    sparse_p50_ms: float | None
    speedup: float | None
    runtime: str | None
    sparse_path_capable: bool | None
    note: str | None
    error: str | None = None
    dense_p50_ci_ms: list[float] | None = None
    sparse_p50_ci_ms: list[float] | None = None
    runs: list[int | None] = field(default_factory=list)  # [dense, sparse]
    speedup_ci: list[float] | None = None
    verdict: str | None = None  # faster | slower | indistinguishable (sparse against dense)
    method: str | None = None
    runs_to_decide: int | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ABReport:
    """The A/B run: its pairs, one row per (pair, device, threads), and what each device did."""

    run_id: int
    pairs: list[StoragePair]
    rows: list[ABRow] = field(default_factory=list)
    group: GroupResult[DeviceBench] | None = None
    store: ResultsStore | None = None

    @property
    def db(self) -> Path | None:
        """The results DB's file (None when the results were kept in memory only)."""
        return self.store.path if self.store is not None and self.store.persistent else None

    @property
    def failures(self) -> list[ABRow]:
        """Rows where a measurement of either file failed."""
        return [r for r in self.rows if r.error]

    def raise_for_failures(self) -> None:
        """A `DeviceError` when a device or an A/B measurement failed."""
        if self.group is not None:
            require_success(self.group, "bench")
        failed = self.failures
        if failed:
            raise DeviceError(
                f"{len(failed)} of {len(self.rows)} A/B measurement(s) failed; first: "
                f"{failed[0].source} on {failed[0].device}: {failed[0].error}"
            )

    def to_dict(self) -> dict[str, Any]:
        """What `edgeprune bench --sparse-ab --json` prints."""
        document: dict[str, Any] = {
            "run_id": self.run_id,
            "pairs": [p.to_dict() for p in self.pairs],
            "rows": [r.to_dict() for r in self.rows],
        }
        if self.store is not None:
            document["db"] = None if self.db is None else str(self.db)
        return document


def default_pair_dir() -> Path:
    """Where the dense and sparse files are kept, by the source's sha256 (made once)."""
    return cache_dir() / "sparse-ab"


def make_pairs(
    paths: list[str], work_dir: str | os.PathLike[str] | None = None
) -> list[StoragePair]:
    """Check every model, then make (or reuse, keyed by the source's sha256) its two files."""
    if not paths:
        raise UserError("give at least one pruned model (.keras, .h5 or .tflite)")
    kinds = [(path, model_format(path)) for path in paths]  # every file checked first
    for path, kind in kinds:
        if kind == "savedmodel":
            raise UserError(f"{path!r}: --sparse-ab takes .keras/.h5 or .tflite; convert it first")
    root = Path(work_dir) if work_dir else default_pair_dir()
    return [_pair(path, kind, root) for path, kind in kinds]


def _pair(path: str, kind: str, root: Path) -> StoragePair:
    source = Path(path)
    digest = sha256_file(source)
    folder = root / digest[:16]
    folder.mkdir(parents=True, exist_ok=True)
    dense_path = folder / f"{source.stem}.dense.tflite"
    sparse_path = folder / f"{source.stem}.sparse.tflite"
    if not (_complete(dense_path) and _complete(sparse_path)):
        if kind == "tflite":
            _twins_of_tflite(source, dense_path, sparse_path)
        else:
            _convert_both(source, dense_path, sparse_path)
    report = check_sparse_path(sparse_path)
    if not report.sparse_weights_stored:
        raise UserError(
            f"{path!r}: no weight is zero enough to be stored sparse, so there is nothing to "
            "compare; prune it first (edgeprune prune --policy xnnpack --sparsity 0.85)"
        )
    return StoragePair(
        str(source),
        load_model(dense_path),
        load_model(sparse_path),
        report.verdict,
        report.eligible,
    )


def _complete(path: Path) -> bool:
    return path.exists() and manifest_path(path).exists()


def _convert_both(source: Path, dense_path: Path, sparse_path: Path) -> None:
    from edgeprune.models import load_keras_model
    from edgeprune.prune.policy import prunable_kernels
    from edgeprune.tflite.conversion import convert

    kernels = [np.asarray(t.variable.numpy()) for t in prunable_kernels(load_keras_model(source))]
    if not any(k.size and np.count_nonzero(k) <= k.size / 2 for k in kernels):
        raise UserError(
            f"{str(source)!r}: no kernel is even half zeros, so storing it sparse changes "
            "nothing; prune it first (edgeprune prune --policy xnnpack --sparsity 0.85)"
        )
    convert(source, dense_path, sparse_weights=False)
    convert(source, sparse_path, sparse_weights=True)


def _twins_of_tflite(source: Path, dense_path: Path, sparse_path: Path) -> None:
    from edgeprune.files import atomic_output
    from edgeprune.tflite.flatbuffer import read_model
    from edgeprune.tflite.inspection import quantization_kind
    from edgeprune.xnnpack.storage_twins import check_same_outputs, dense_twin, sparse_twin

    content = source.read_bytes()
    parsed = read_model(content, name=str(source))
    quantization = quantization_kind(parsed)
    if quantization in ("int8", "int16x8", "dynamic"):
        raise UserError(
            f"{str(source)!r} is {quantization}-quantized; XNNPACK's sparse path is fp32/fp16 "
            "only, so --sparse-ab compares float models (convert with --quantize none or float16)"
        )
    stored_sparse = parsed.op_counts().get("DENSIFY", 0) > 0
    if stored_sparse:
        dense, sparse = dense_twin(content), content
    else:
        dense, sparse = content, sparse_twin(content)
    check_same_outputs(dense, sparse, str(source))
    for target, payload, how in ((dense_path, dense, "dense"), (sparse_path, sparse, "sparse")):
        with atomic_output(target) as tmp:
            tmp.write_bytes(payload)
        manifest = build_manifest(
            target,
            step="sparse-ab",
            options={"weights": how},
            source=source,
            quantization=quantization,
            extra={"made_by": "rewrite" if (how == "sparse") != stored_sparse else "copy"},
        )
        write_manifest(target, manifest)


def ab_rows(pairs: list[StoragePair], measurements: list[dict[str, Any]]) -> list[ABRow]:
    """Dense vs sparse p50 per (pair, device, threads), with what each board says it can do."""
    by_key: dict[tuple[str, str, int], dict[str, Any]] = {}
    for row in measurements:
        by_key[(row["model_sha256"], row["device"], row["threads"])] = row
    devices = sorted({r["device"] for r in measurements})
    threads = sorted({r["threads"] for r in measurements if r["threads"]})
    rows = []
    for pair in pairs:
        for device in devices:
            for count in threads:
                dense = by_key.get((pair.dense.sha256, device, count))
                sparse = by_key.get((pair.sparse.sha256, device, count))
                if dense is None and sparse is None:
                    continue
                rows.append(_ab_row(pair, device, count, dense, sparse))
    return rows


def _ab_row(
    pair: StoragePair, device: str, threads: int, dense: dict | None, sparse: dict | None
) -> ABRow:
    errors = [r.get("error") or "error" for r in (dense, sparse) if r and r["status"] != "ok"]
    if dense is None or sparse is None:
        errors.append("one of the two models has no measurement")
    dense_p50 = dense["p50_ms"] if dense and dense["status"] == "ok" else None
    sparse_p50 = sparse["p50_ms"] if sparse and sparse["status"] == "ok" else None
    compared: dict[str, Any] = {"speedup": None} | {k: None for k in COMPARISON_FIELDS}
    if dense is not None and sparse is not None and dense_p50 and sparse_p50:
        compared = comparison(dense, sparse)
    support = ((sparse or {}).get("result") or {}).get("sparse_path") or {}
    capable = support.get("capable")
    note = None
    if capable is False:
        reason = support.get("reason") or "this board's runtime will not take the sparse path"
        fix = support.get("fix")
        note = X86_NOTE if "x86" in reason else reason + (f"; fix: {fix}" if fix else "")
    elif not pair.eligible:
        note = f"the sparse file is {pair.verdict}"
    runtime = (sparse or dense or {}).get("runtime")
    version = (sparse or dense or {}).get("runtime_version")
    return ABRow(
        source=pair.source,
        device=device,
        threads=threads,
        dense_p50_ms=dense_p50,
        sparse_p50_ms=sparse_p50,
        speedup=compared["speedup"],
        runtime=f"{runtime} {version}" if runtime else None,
        sparse_path_capable=capable,
        note=note,
        error="; ".join(errors) if errors else None,
        dense_p50_ci_ms=p50_interval(dense) if dense_p50 and dense else None,
        sparse_p50_ci_ms=p50_interval(sparse) if sparse_p50 and sparse else None,
        runs=[(r or {}).get("runs") for r in (dense, sparse)],
        speedup_ci=compared["speedup_ci"],
        verdict=compared["verdict"],
        method=compared["method"],
        runs_to_decide=compared["runs_to_decide"],
        warnings=list(
            dict.fromkeys(c for r in (dense, sparse) if r for c in r.get("warnings") or [])
        ),
    )


def run_sparse_ab(
    pairs: list[StoragePair],
    devices: list[Any],
    options: BenchOptions,
    store: ResultsStore,
    **bench: Any,
) -> ABReport:
    """Deploy and bench both files of every pair on every device, into `store`."""
    models: list[LocalModel] = []
    for pair in pairs:
        for model in (pair.dense, pair.sparse):
            if model.sha256 not in {m.sha256 for m in models}:
                models.append(model)
    run_id, group = record_bench(
        models, devices, options, store, command="bench --sparse-ab", **bench
    )
    report = ABReport(run_id, pairs, group=group, store=store)
    report.rows = ab_rows(pairs, store.measurements([run_id], with_json=True))
    return report


def sparse_ab(
    models: Sequence[str | os.PathLike[str]],
    devices: Sequence[DeviceRef] | None = None,
    options: BenchOptions | None = None,
    *,
    store: ResultsStore | str | os.PathLike[str] | None = DEFAULT_STORE,
    inputs: str | os.PathLike[str] | BenchInputs | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    progress: StepProgress | None = None,
    deploy_progress: DeployProgress | None = None,
    deploy: DeployOptions | None = None,
    on_note: Callable[[str], None] | None = None,
) -> ABReport:
    """Per pruned model, the same weights stored dense and sparse, measured side by side.

    `store`, `devices`, `inputs` and `deploy` as `workflows.bench.bench_models`; `on_note` hears what
    is being done before the devices are touched. Failures do not raise here: see
    `ABReport.failures` and `raise_for_failures()`.
    """
    bench_inputs = load_inputs(inputs)
    results = open_store(store)
    if on_note:
        on_note("making the dense- and sparse-stored files ...")
    pairs = make_pairs([str(m) for m in models], work_dir)
    return run_sparse_ab(
        pairs,
        resolve_devices(devices),
        options or BenchOptions(),
        results,
        deploy=deploy,
        inputs=bench_inputs,
        progress=progress,
        deploy_progress=deploy_progress,
    )
