"""Stored measurements into MLflow: one MLflow run per model × device, as teams already track.

Each MLflow run holds the bench options and what the store knows of the model as params,
the latencies (p50, p90 and their 95 % intervals, per thread count), size and accuracy as
metrics, and the `.tflite` (and the report, when there is one) as artifacts. It is written
with `MlflowClient` against any tracking URI (a local `sqlite:///` store, a server over
http(s)); MLflow is an optional extra (`pip install 'edgeprune[mlflow]'`), imported only here.
A local SQLite store gets its artifacts beside the DB (`<db dir>/mlartifacts`), never in
the working directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from edgeprune.errors import UserError

SCHEMES = ("sqlite", "http", "https", "file", "databricks")
EXPERIMENT = "edgeprune"
_LATENCY_METRICS = (
    ("p50_ms", "p50_ms"),
    ("p50_lo_ms", "p50_lo_ms"),
    ("p50_hi_ms", "p50_hi_ms"),
    ("p90_ms", "p90_ms"),
    ("p90_lo_ms", "p90_lo_ms"),
    ("p90_hi_ms", "p90_hi_ms"),
    ("p99_ms", "p99_ms"),
    ("mean_ms", "mean_ms"),
    ("peak_rss_kb", "peak_rss_kb"),
    ("init_ms", "init_ms"),
)


@dataclass
class MlflowLog:
    """What was written: the experiment and one MLflow run id per (model, device)."""

    uri: str
    experiment_id: str
    runs: dict[str, str] = field(default_factory=dict)  # "model@device" -> MLflow run id

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "experiment_id": self.experiment_id, "runs": dict(self.runs)}


def check_tracking_uri(uri: str) -> str:
    """A tracking URI MLflow can write to, checked before any work (a local SQLite file's
    directory must exist); the one line names `mlflow`."""
    text = str(uri).strip()
    if not text:
        raise UserError(
            "mlflow is empty; give a tracking URI, e.g. sqlite:///mlflow.db", params=("mlflow",)
        )
    parsed = urlparse(text)
    if parsed.scheme not in SCHEMES:
        raise UserError(
            f"mlflow {text!r} is not a tracking URI this tool writes to; use sqlite:///PATH.db "
            "(a local store), http(s)://SERVER or file:///DIR",
            params=("mlflow",),
        )
    local = _local_path(text)
    if parsed.scheme == "sqlite" and (local is None or not text[len("sqlite:///") :].strip()):
        raise UserError(
            f"mlflow {text!r}: give a database file, sqlite:///PATH.db (four slashes for an "
            "absolute path)",
            params=("mlflow",),
        )
    if local is not None:
        parent = local.parent if parsed.scheme == "sqlite" else local
        while parsed.scheme == "file" and not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise UserError(
                f"mlflow {text!r}: directory {str(parent)!r} does not exist; create it first",
                params=("mlflow",),
            )
        if parsed.scheme == "sqlite" and local.exists() and local.is_dir():
            raise UserError(
                f"mlflow {text!r} names a directory; give a .db file", params=("mlflow",)
            )
    _mlflow()
    return text


def log_runs(
    uri: str,
    rows: Iterable[Mapping[str, Any]],
    *,
    params: Mapping[str, Any] | None = None,
    model_files: Mapping[str, str | os.PathLike[str]] | None = None,
    report: str | os.PathLike[str] | None = None,
    experiment: str = EXPERIMENT,
    tags: Mapping[str, str] | None = None,
) -> MlflowLog:
    """Write `rows` (results-store measurement rows of one bench or recipe run) to MLflow.

    `params` are the run's options (bench options, recipe step options); `model_files` maps a
    model's sha256 to its `.tflite` to attach; `report` is attached to every MLflow run.
    """
    mlflow = _mlflow()
    client = mlflow.tracking.MlflowClient(tracking_uri=check_tracking_uri(uri))
    experiment_id = _experiment(client, uri, experiment)
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        grouped.setdefault((row["model_sha256"], row["device"]), []).append(row)
    log = MlflowLog(uri=uri, experiment_id=experiment_id)
    for (sha, device), measured in grouped.items():
        first = measured[0]
        name = f"{first['model_name']}@{device}"
        run = client.create_run(
            experiment_id,
            run_name=name,
            tags={
                "edgeprune.device": device,
                "edgeprune.model": str(first["model_name"]),
                "edgeprune.model_sha256": sha,
                "edgeprune.store_run_id": str(first.get("run_id")),
                **dict(tags or {}),
            },
        )
        run_id = run.info.run_id
        status = "FINISHED"
        try:
            client.log_batch(
                run_id,
                params=_params(mlflow, first, params or {}),
                metrics=_metrics(mlflow, measured),
            )
            model_file = (model_files or {}).get(sha)
            if model_file is not None and Path(model_file).is_file():
                client.log_artifact(run_id, str(model_file), artifact_path="model")
            if report is not None and Path(report).is_file():
                client.log_artifact(run_id, str(report), artifact_path="report")
            if any(r.get("status") != "ok" for r in measured):
                status = "FAILED"
        except BaseException:
            client.set_terminated(run_id, status="KILLED")
            raise
        client.set_terminated(run_id, status=status)
        log.runs[name] = run_id
    return log


def _params(mlflow: Any, row: Mapping[str, Any], options: Mapping[str, Any]) -> list[Any]:
    values: dict[str, Any] = {
        "model": row.get("model_name"),
        "device": row.get("device"),
        "runtime": row.get("runtime"),
        "runtime_version": row.get("runtime_version"),
        "quantization": row.get("quantization"),
        "sparsity": row.get("sparsity"),
        "xnnpack": row.get("xnnpack"),
        "device_model": row.get("device_model"),
    }
    values.update({f"options.{k}": v for k, v in options.items()})
    Param = mlflow.entities.Param
    return [Param(k, _text(v)[:6000]) for k, v in values.items() if v is not None]


def _metrics(mlflow: Any, rows: list[Mapping[str, Any]]) -> list[Any]:
    import time

    Metric = mlflow.entities.Metric
    now = int(time.time() * 1000)
    out: dict[str, float] = {}
    for row in rows:
        if row.get("status") != "ok" or not row.get("threads"):
            continue
        suffix = f"threads_{row['threads']}" + ("" if row.get("xnnpack", True) else "_no_xnnpack")
        for column, metric in _LATENCY_METRICS:
            value = row.get(column)
            if isinstance(value, (int, float)):
                out[f"{metric}/{suffix}"] = float(value)
        if isinstance(row.get("runs"), int):
            out[f"runs/{suffix}"] = float(row["runs"])
    first = rows[0]
    for column in ("size_bytes", "gzip_bytes", "accuracy"):
        value = first.get(column)
        if isinstance(value, (int, float)):
            out[column] = float(value)
    return [Metric(k, v, now, 0) for k, v in sorted(out.items())]


def _experiment(client: Any, uri: str, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    local = _local_path(uri)
    location = None
    if local is not None and urlparse(uri).scheme == "sqlite":
        location = (local.parent / "mlartifacts").resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def _local_path(uri: str) -> Path | None:
    """The file a sqlite:/// or file: URI names (None for servers)."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":  # sqlite:///relative.db, sqlite:////absolute.db
        return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None
    if parsed.scheme == "file":
        return Path(parsed.path)
    return None


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _mlflow() -> Any:
    try:
        import mlflow
        import mlflow.entities
        import mlflow.tracking
    except ImportError:
        raise UserError(
            "mlflow needs MLflow installed: pip install 'edgeprune[mlflow]' (or pip install mlflow)",
            params=("mlflow",),
        ) from None
    return mlflow
