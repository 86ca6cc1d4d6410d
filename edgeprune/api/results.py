"""What the verbs return: typed objects with `to_dict()` (the CLI's `--json` document),
a few readable lines as `repr()` and a small table in a notebook (`_repr_html_`).

Only the standard library is imported here, so the classes can be named (and checked with
`isinstance`) without loading TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeprune.api._display import html_table, ms, percent, text_block, text_table
from edgeprune.text import percent as accuracy_percent


class _Shown:
    """Shared display: subclasses give a title, summary lines and table rows."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def _title(self) -> str:
        raise NotImplementedError

    def _lines(self) -> list[str]:
        header, rows = self._table()
        if header is None:
            return [f"{key}: {value}" for key, value in rows]
        return text_table(header, [[str(cell) for cell in row] for row in rows])

    def _fields(self) -> list[tuple[str, object]]:
        return []

    def _table(self) -> tuple[list[str] | None, list[list[object]]]:
        return None, [[key, value] for key, value in self._fields()]

    def __repr__(self) -> str:
        return text_block(self._title(), self._lines())

    def _repr_html_(self) -> str:
        header, rows = self._table()
        return html_table(self._title(), header, rows)


@dataclass(repr=False)
class PruneResult(_Shown):
    """`ep.prune`: the pruned copy (`.model`) and what was done (`.report`, a PruneReport)."""

    model: Any
    report: Any
    options: dict[str, Any]
    training: dict[str, Any] | None = None
    accuracy: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": None,
            "manifest": None,
            "source": None,
            "mode": self.options.get("mode", "one-shot"),
            "options": self.options,
            "sparsity": self.report.manifest_sparsity(),
            "report": self.report.to_dict(),
            "accuracy": self.accuracy,
            "training": self.training,
        }

    def _title(self) -> str:
        return f"PruneResult: {getattr(self.model, 'name', 'model')} ({self.options.get('mode')})"

    def _fields(self) -> list[tuple[str, object]]:
        report = self.report
        fields: list[tuple[str, object]] = [
            ("sparsity", f"{percent(report.overall)} (target {percent(report.sparsity)})"),
            ("scope", report.scope),
            ("pruned weights", f"{report.pruned_size:,} in {len(report.kernels)} kernel(s)"),
            ("left dense", f"{len(report.skipped)} kernel(s)"),
        ]
        if report.pattern:
            fields.append(("pattern", f"{report.pattern} ({'ok' if report.pattern_ok else 'bad'})"))
        if self.accuracy:
            from edgeprune.prune.task_training import metric_change_text

            fields.append(("accuracy", metric_change_text(self.accuracy, "dense", "pruned")))
        return fields


@dataclass(repr=False)
class ChannelResult(_Shown):
    """`ep.prune_channels`: the smaller copy (`.model`) and a ChannelReport (`.report`)."""

    model: Any
    report: Any

    def to_dict(self) -> dict[str, Any]:
        return {"output": None, "manifest": None, **self.report.to_dict()}

    def _title(self) -> str:
        return f"ChannelResult: {getattr(self.model, 'name', 'model')}"

    def _fields(self) -> list[tuple[str, object]]:
        r = self.report
        return [
            ("params", f"{r.params_before:,} -> {r.params_after:,}"),
            ("MACs", f"{r.macs_before:,} -> {r.macs_after:,}"),
            ("channels removed", percent(r.removed_fraction)),
            ("groups", len(r.groups)),
        ]


@dataclass(repr=False)
class FixResult(_Shown):
    """`ep.xnnpack_fix`: the rewritten copy (`.model`) and what changed."""

    model: Any
    rewrites: list[dict[str, str]]
    cluster_ready: bool
    remaining: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": None,
            "manifest": None,
            "rewrites": self.rewrites,
            "cluster_ready": self.cluster_ready,
            "remaining": self.remaining,
            "notes": self.notes,
        }

    def _title(self) -> str:
        return f"FixResult: {getattr(self.model, 'name', 'model')}"

    def _fields(self) -> list[tuple[str, object]]:
        fields: list[tuple[str, object]] = [
            ("rewrites", len(self.rewrites)),
            ("sparse clusters form", "yes" if self.cluster_ready else "no"),
        ]
        fields += [("still in the way", problem) for problem in self.remaining[:3]]
        return fields


@dataclass(repr=False)
class ConvertResult(_Shown):
    """`ep.convert`: the written `.tflite` (`.path`), its `.sha256`, `.manifest` and sizes."""

    path: Path
    sha256: str
    manifest: Any
    report: Any

    @property
    def size_bytes(self) -> int:
        return int(self.report.size_bytes)

    @property
    def gzip_bytes(self) -> int:
        return int(self.report.gzip_bytes)

    @property
    def quantize(self) -> str:
        return str(self.report.quantize)

    @property
    def sparse_weights(self) -> bool:
        return bool(self.report.sparse_weights)

    @property
    def accuracy(self) -> dict[str, Any] | None:
        value = self.report.accuracy
        return dict(value) if value else None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.report.to_dict())

    def _title(self) -> str:
        return f"ConvertResult: {self.path}"

    def _fields(self) -> list[tuple[str, object]]:
        r = self.report
        fields: list[tuple[str, object]] = [
            ("quantize", f"{r.quantize}, io {r.io}"),
            ("weights", f"{'sparse' if r.sparse_weights else 'dense'} ({r.sparse_weights_reason})"),
            ("size", f"{r.size_bytes:,} bytes ({r.gzip_bytes:,} gzipped)"),
            ("sha256", self.sha256),
        ]
        acc = self.accuracy
        if acc and "top1" in acc:
            fields.append(("top-1", f"{accuracy_percent(acc['top1'])} on {acc['dataset']}"))
        elif acc and acc.get("metric_info"):
            primary = acc["metric_info"][0]
            value = acc["metrics"].get(primary["name"])
            if value is not None:
                shown = accuracy_percent(value) if primary["unit"] == "fraction" else f"{value:.4g}"
                fields.append((primary["label"], f"{shown} on {acc['dataset']}"))
        return fields


@dataclass(repr=False)
class InspectResult(_Shown):
    """`ep.inspect`: the `edgeprune inspect --json` document, with its main facts as properties."""

    report: dict[str, Any]

    @property
    def path(self) -> str:
        return str(self.report.get("path") or "")

    @property
    def format(self) -> str:
        return str(self.report.get("format", ""))

    @property
    def size_bytes(self) -> int | None:
        value = self.report.get("size_bytes")
        return int(value) if value is not None else None

    @property
    def sparsity(self) -> float | None:
        """Zero fraction of the prunable kernels."""
        value = (self.report.get("totals") or {}).get("kernel_sparsity")
        if value is None:
            value = self.report.get("kernel_sparsity")
        return float(value) if value is not None else None

    @property
    def xnnpack(self) -> dict[str, Any] | None:
        value = self.report.get("xnnpack")
        return value if isinstance(value, dict) else None

    def __getitem__(self, key: str) -> Any:
        return self.report[key]

    def to_dict(self) -> dict[str, Any]:
        return self.report

    def _title(self) -> str:
        where = self.report.get("path") or self.report.get("name") or "Keras model"
        return f"InspectResult: {where} ({self.format})"

    def _fields(self) -> list[tuple[str, object]]:
        r = self.report
        fields: list[tuple[str, object]] = []
        if r.get("size_bytes") is not None:
            fields.append(
                ("size", f"{r['size_bytes']:,} bytes ({r.get('gzip_bytes', 0):,} gzipped)")
            )
        if self.format == "tflite":
            fields.append(("quantization", r.get("quantization")))
            fields.append(("ops", r.get("op_count")))
            fields.append(
                ("weights stored", "sparse" if r.get("sparse_weights_stored") else "dense")
            )
        elif "params" in r:
            fields.append(("params", f"{r['params']:,}"))
        fields.append(("kernel sparsity", percent(self.sparsity)))
        xnn = self.xnnpack
        if xnn and "verdict" in xnn:
            fields.append(("XNNPACK sparse path", xnn["verdict"]))
        elif xnn:
            fields.append(
                (
                    "XNNPACK sparse clusters",
                    f"{xnn.get('formed')} of {xnn.get('clusters')} would form",
                )
            )
        return fields


@dataclass(repr=False)
class EvaluateResult(_Shown):
    """`ep.evaluate`: the task's metrics on the validation split, and parity with a reference."""

    report: Any

    @property
    def top1(self) -> float | None:
        value = self.report.top1
        return float(value) if value is not None else None

    @property
    def top5(self) -> float | None:
        value = self.report.top5
        return float(value) if value is not None else None

    @property
    def task(self) -> str | None:
        value = self.report.task
        return str(value) if value is not None else None

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.report.metrics)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.report.to_dict())

    def _title(self) -> str:
        return f"EvaluateResult: {self.report.model}"

    def _fields(self) -> list[tuple[str, object]]:
        r = self.report
        fields: list[tuple[str, object]] = []
        for info in r.metric_info:
            if info["name"] in r.metrics:
                value = r.metrics[info["name"]]
                shown = accuracy_percent(value) if info["unit"] == "fraction" else f"{value:.4g}"
                fields.append((info["label"], shown))
        what = f"{r.classes} classes" if r.classes is not None else (r.task or "no labels")
        fields.append(("data", f"{r.dataset} ({r.samples} {r.split} samples, {what})"))
        if r.reference is not None:
            p = r.reference
            text = f"max |diff| {p.max_abs_diff:.3g}"
            if p.top1_agreement is not None:
                text += f", top-1 agreement {accuracy_percent(p.top1_agreement)}"
            fields.append((f"vs {p.reference}", text))
        return fields


@dataclass(repr=False)
class DeployResult(_Shown):
    """`ep.deploy`: per device, the files sent or already there (`edgeprune deploy --json`)."""

    devices: list[dict[str, Any]]

    @property
    def failures(self) -> list[str]:
        return [f"{d['device']}: {d['error']}" for d in self.devices if not d["ok"]]

    def to_dict(self) -> dict[str, Any]:
        return {"devices": self.devices}

    def _title(self) -> str:
        return f"DeployResult: {len(self.devices)} device(s)"

    def _table(self) -> tuple[list[str] | None, list[list[object]]]:
        rows: list[list[object]] = []
        for d in self.devices:
            if not d["ok"]:
                rows.append([d["device"], "–", f"failed: {d['error']}"])
            for f in d["files"]:
                rows.append(
                    [
                        d["device"],
                        f["name"],
                        "already there" if f["status"] == "present" else "sent",
                    ]
                )
        return ["device", "model", "status"], rows


_BENCH_HEADER = ["model", "device", "threads", "p50", "p90", "speed-up", "verdict"]


def _threads(row: dict[str, Any]) -> str:
    return str(row["threads"]) + ("" if row["xnnpack"] else " no-xnn")


def _legend_lines(rows: list[dict[str, Any]]) -> list[str]:
    """How the speed-ups were judged and each warning code shown, with its fix."""
    from edgeprune.results import wording
    from edgeprune.warning_codes import legend

    lines = []
    note = wording.method_note(rows)
    if note:
        lines.append(note)
    codes = (c for r in rows for c in r.get("warnings") or [])
    lines += [f"warning {entry.line()}" for entry in legend(codes)]
    return lines


def _measured_row(row: dict[str, Any]) -> list[object]:
    from edgeprune.results import wording

    ok = row["status"] == "ok"
    return [
        row["model"],  # the verdict column names the baseline
        row["device"],
        _threads(row),
        wording.latency(row["p50_ms"], row.get("p50_ci_ms")) if ok else f"error: {row['error']}",
        wording.latency(row.get("p90_ms"), None),
        wording.speedup(row) if ok else "–",
        wording.verdict(row) if ok else "–",
    ]


@dataclass(repr=False)
class BenchResult(_Shown):
    """`ep.bench`: one row per model × device × thread count, as `edgeprune bench --json`.

    Each row carries `p50_ci_ms`, `runs`, and against the first model `speedup`,
    `speedup_ci`, `verdict` ("baseline" on the first model's rows), `method` and
    `runs_to_decide`. `run_id` and `db` are None when the results were kept in memory only
    (`store=None`).
    """

    run_id: int | None
    db: Path | None
    rows: list[dict[str, Any]]
    devices: list[dict[str, Any]]
    models: list[str] = field(default_factory=list)
    source: Any = field(default=None, compare=False)
    """(results store, run id) the rows came from, so `ep.compare` can judge another baseline."""
    mlflow: dict[str, Any] | None = None
    """The MLflow runs written (`mlflow=URI`): uri, experiment_id, runs by "model@device"."""

    @property
    def failures(self) -> list[str]:
        """One line per failed device or measurement (empty when everything was measured)."""
        out = [f"{d['device']}: {d['error']}" for d in self.devices if not d["ok"]]
        out += [
            f"{r['model']} on {r['device']}: {r['error']}" for r in self.rows if r["status"] != "ok"
        ]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "db": None if self.db is None else str(self.db),
            "rows": self.rows,
            "mlflow": self.mlflow,
            "devices": self.devices,
        }

    def _title(self) -> str:
        where = f"run {self.run_id} in {self.db}" if self.run_id is not None else "kept in memory"
        return f"BenchResult: {len(self.rows)} measurement(s), {where}"

    def _table(self) -> tuple[list[str] | None, list[list[object]]]:
        return _BENCH_HEADER, [_measured_row(r) for r in self.rows]

    def _lines(self) -> list[str]:
        return (
            super()._lines()
            + [f"failed: {line}" for line in self.failures]
            + _legend_lines(self.rows)
        )


@dataclass(repr=False)
class Comparison(_Shown):
    """`ep.compare`: each model's p50 next to the baseline's, per device and thread count.

    Rows are `edgeprune results show --json` rows judged against `baseline` (`speedup` =
    baseline p50 / p50 with `speedup_ci` and `verdict`), plus `baseline_p50_ms` and `ratio`
    (this model's p50 / the baseline's: below 1 is faster).
    """

    baseline: str
    rows: list[dict[str, Any]]
    run_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "baseline": self.baseline, "rows": self.rows}

    def _title(self) -> str:
        run = f"run {self.run_id}, " if self.run_id is not None else ""
        return f"Comparison ({run}vs {self.baseline})"

    def _table(self) -> tuple[list[str] | None, list[list[object]]]:
        header = [*_BENCH_HEADER[:4], "base p50", *_BENCH_HEADER[5:]]
        rows: list[list[object]] = []
        for r in self.rows:
            cells = _measured_row(r)
            rows.append([*cells[:4], ms(r["baseline_p50_ms"]), *cells[5:]])
        return header, rows

    def _lines(self) -> list[str]:
        return super()._lines() + _legend_lines(self.rows)


@dataclass(repr=False)
class RecipeResult(_Shown):
    """`ep.run_recipe`: the variants built and measured, and the recommendation per device."""

    outcome: Any

    @property
    def run_id(self) -> int | None:
        value = self.outcome.run_id
        return int(value) if value is not None else None

    @property
    def recommendations(self) -> dict[str, Any]:
        report = self.outcome.report
        return dict(report.recommendations()) if report is not None else {}

    def to_dict(self) -> dict[str, Any]:
        return dict(self.outcome.to_dict())

    def _title(self) -> str:
        return f"RecipeResult: {self.outcome.plan.recipe.name} (run {self.run_id})"

    def _fields(self) -> list[tuple[str, object]]:
        fields: list[tuple[str, object]] = [
            ("variants", len(self.outcome.grid)),
            ("failures", len(self.outcome.failures)),
        ]
        fields += [(f"best on {d}", v) for d, v in self.recommendations.items()]
        return fields


@dataclass(repr=False)
class AdaptResult(_Shown):
    """`ep.adapt`: the adapted model's file (`.path`) and the AdaptReport (`.report`)."""

    path: Path
    report: Any

    def to_dict(self) -> dict[str, Any]:
        return dict(self.report.to_dict())

    def _title(self) -> str:
        return f"AdaptResult: {self.path.name}"

    def _fields(self) -> list[tuple[str, object]]:
        r = self.report
        return [
            ("target", ms(r.target["latency_ms"]) + (" (met)" if r.target_met else " (not met)")),
            ("latency", f"{ms(r.baseline['median_ms'])} -> {ms(r.final['median_ms'])}"),
            ("top-1", f"{r.accuracy['top1_before']:.4f} -> {r.accuracy['top1_after']:.4f}"),
            ("iterations", len(r.iterations)),
            ("stopped", r.stop_reason),
        ]


@dataclass(repr=False)
class QatResult(_Shown):
    """`ep.qat`: the new QAT model (`.model`) and a QatReport (`.report`)."""

    model: Any
    report: Any

    def to_dict(self) -> dict[str, Any]:
        return {"output": None, "manifest": None, **self.report.to_dict()}

    def _title(self) -> str:
        return f"QatResult: {getattr(self.model, 'name', 'model')}"

    def _fields(self) -> list[tuple[str, object]]:
        r = self.report
        accuracy = r.accuracy or {}
        return [
            ("quantized layers", len(r.plan["quantized"])),
            ("folded BatchNormalization", len(r.plan["folded"])),
            ("kernel zeros", percent(r.sparsity["overall"])),
            (
                "score before -> after",
                f"{accuracy.get('value_before_qat')} -> {accuracy.get('value')}",
            ),
        ]
