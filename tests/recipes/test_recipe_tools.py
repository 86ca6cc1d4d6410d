"""A recipe run shows epoch progress, writes TensorBoard logs per stage and logs every
variant × device to a real local MLflow store (read back with their own libraries)."""

from __future__ import annotations

from pathlib import Path

import pytest

RECIPE = """
name: tools
model: {demo: true, width: 8, train: {epochs: 1}}
data: digits
pipelines:
  dense: {}
  pruned:
    prune: {method: gradual, sparsity: 0.5, epochs: 1, tensorboard: tb}
devices: [local]
bench: {runs: 20, warmup: 1}
mlflow: MLFLOW
"""


def test_recipe_progress_tensorboard_and_mlflow(run_cli, write_recipe, tmp_path: Path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    recipe = write_recipe(RECIPE.replace("MLFLOW", uri))
    outcome = run_cli("run", recipe, "--workdir", tmp_path / "work", "--db", tmp_path / "r.db")
    assert outcome.code == 0, outcome.err
    assert "train: epoch 1/1" in outcome.err  # the base model's training
    assert "gradual prune: epoch 1/1" in outcome.err
    assert "logged to MLflow at" in outcome.out

    (stage_dir,) = (tmp_path / "tb").iterdir()  # one directory per stage, beside the recipe
    assert list(stage_dir.rglob("events.out.tfevents.*"))

    client = MlflowClient(tracking_uri=uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "edgeprune"]
    runs = client.search_runs([experiment.experiment_id])
    names = sorted(r.info.run_name for r in runs)
    assert len(names) == 2 and all(n.endswith("@local") for n in names)
    for run in runs:
        assert run.data.tags["edgeprune.recipe"] == "tools"
        assert run.data.metrics["p50_ms/threads_1"] > 0
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
        assert len(artifacts) == 1 and artifacts.pop().endswith(".tflite")
        assert client.list_artifacts(run.info.run_id, "report")

    quiet = run_cli(
        "run", recipe, "--workdir", tmp_path / "work", "--db", tmp_path / "r.db", "--quiet"
    )
    assert quiet.code == 0, quiet.err
    assert "epoch" not in quiet.err  # cached, and quiet
