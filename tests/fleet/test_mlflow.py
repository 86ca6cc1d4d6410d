"""Stored runs into a real local MLflow store (SQLite backend), read back with MlflowClient."""

from __future__ import annotations

import pytest

from device_agents.protocol import LatencySummary, Measurement, Result
from edgeprune.errors import UserError
from edgeprune.results.rows import ModelInfo
from edgeprune.results.store import ResultsStore

mlflow = pytest.importorskip("mlflow")


def _result(job: str, sha: str, latencies: list[float], status: str = "ok") -> Result:
    measurement = Measurement(
        threads=1,
        xnnpack=True,
        status=status,
        error=None if status == "ok" else "boom",
        latencies_ms=latencies,
        summary=LatencySummary.of(latencies) if status == "ok" else None,
        peak_rss_kb=2048,
    )
    return Result(
        job_id=job,
        model_sha256=sha,
        status=status,
        error=None if status == "ok" else "boom",
        runtime={"name": "ai_edge_litert", "version": "2.0"},
        measurements=[measurement],
    )


def test_one_mlflow_run_per_model_and_device_with_params_metrics_artifacts(tmp_path):
    from mlflow.tracking import MlflowClient

    from edgeprune.results.mlflow_log import log_runs

    store = ResultsStore(tmp_path / "results.db")
    run_id = store.begin_run("bench")
    shas = ("a" * 64, "b" * 64)
    tflite = tmp_path / "dense.tflite"
    tflite.write_bytes(b"TFL3" * 10)
    report = tmp_path / "report.html"
    report.write_text("<html></html>")
    for index, (sha, name) in enumerate(zip(shas, ("dense", "pruned"), strict=True)):
        latencies = [1.0 + index + 0.01 * i for i in range(60)]
        info = ModelInfo(name=name, sha256=sha, size_bytes=1000 * (index + 1), accuracy=0.9)
        store.add_result(run_id, "local", _result(f"j{index}", sha, latencies), info)
    rows = store.measurements([run_id])
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    log = log_runs(
        uri,
        rows,
        params={"runs": 60, "threads": [1]},
        model_files={shas[0]: tflite},
        report=report,
    )
    assert sorted(log.runs) == ["dense@local", "pruned@local"]
    client = MlflowClient(tracking_uri=uri)
    dense = client.get_run(log.runs["dense@local"])
    assert dense.info.status == "FINISHED"
    assert dense.data.params["options.runs"] == "60"
    assert dense.data.params["runtime"] == "ai_edge_litert"
    metrics = dense.data.metrics
    assert metrics["p50_ms/threads_1"] == pytest.approx(rows[0]["p50_ms"])
    assert metrics["size_bytes"] == 1000 and metrics["accuracy"] == pytest.approx(0.9)
    assert metrics["runs/threads_1"] == 60
    artifacts = {a.path for a in client.list_artifacts(dense.info.run_id, "model")}
    assert artifacts == {"model/dense.tflite"}
    assert {a.path for a in client.list_artifacts(dense.info.run_id, "report")} == {
        "report/report.html"
    }
    assert (tmp_path / "mlartifacts").is_dir()  # beside the DB, not in the working directory
    pruned = client.get_run(log.runs["pruned@local"])
    assert pruned.data.metrics["p50_ms/threads_1"] > metrics["p50_ms/threads_1"]
    assert pruned.data.tags["edgeprune.store_run_id"] == str(run_id)
    again = log_runs(uri, rows)  # the same experiment, new MLflow runs
    assert again.experiment_id == log.experiment_id


@pytest.mark.parametrize(
    "uri, message",
    [
        ("", "mlflow is empty"),
        ("ftp://x/y", "not a tracking URI"),
        ("sqlite:///", "give a database file"),
        ("sqlite:////no/such/dir/m.db", "does not exist; create it first"),
    ],
)
def test_bad_tracking_uris_are_one_line_naming_mlflow(uri, message):
    from edgeprune.results.mlflow_log import check_tracking_uri

    with pytest.raises(UserError, match=message) as caught:
        check_tracking_uri(uri)
    assert caught.value.in_flags().startswith("--mlflow")


def test_bench_with_mlflow_logs_each_model_and_a_bad_uri_fails_before_any_work(
    run_cli, tiny_tflite, tiny_tflite_b, tmp_path
):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    db = tmp_path / "results.db"
    outcome = run_cli(
        "bench", tiny_tflite, tiny_tflite_b, "--runs", "20", "--db", db, "--mlflow", uri, "--json"
    )
    assert outcome.code == 0, outcome.err
    import json

    document = json.loads(outcome.out)
    runs = document["mlflow"]["runs"]
    assert sorted(runs) == sorted(f"{p.name}@local" for p in (tiny_tflite, tiny_tflite_b))
    client = MlflowClient(tracking_uri=uri)
    for name, run_id in runs.items():
        run = client.get_run(run_id)
        assert run.data.metrics["p50_ms/threads_1"] > 0
        assert run.data.params["options.runs"] == "20"
        assert [a.path for a in client.list_artifacts(run_id, "model")] == [
            "model/" + name.split("@")[0]
        ]
    bad = run_cli(
        "bench", tiny_tflite, "--db", tmp_path / "other.db", "--mlflow", "sqlite:////no/dir/m.db"
    )
    assert bad.code == 2
    assert bad.err.strip().splitlines()[-1].startswith("error: --mlflow 'sqlite:////no/dir/m.db'")
    assert not (tmp_path / "other.db").exists()
