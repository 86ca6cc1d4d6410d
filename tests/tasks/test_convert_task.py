"""`convert --task`: a named task scores the .tflite in its metrics, and a task that does not
fit the data is one line before any conversion, with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.task_models import regression_data, regression_mlp


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    x, y = regression_data(300, seed=2)
    model = regression_mlp()
    model.fit(x[:240], y[:240], epochs=5, batch_size=32, verbose=0)
    folder = tmp_path_factory.mktemp("convert-task")
    model.save(folder / "mlp.keras")
    np.savez(folder / "reg.npz", x=x[:240], y=y[:240], x_val=x[240:], y_val=y[240:])
    np.savez(folder / "x.npz", x=x[:240])
    return folder


def test_a_named_task_scores_the_tflite_in_its_metrics(run_cli, files: Path, tmp_path: Path):
    out = tmp_path / "m.tflite"
    outcome = run_cli(
        "convert", files / "mlp.keras", "-o", out, "--data", files / "reg.npz",
        "--task", "regression", "--json",
    )  # fmt: skip
    assert outcome.code == 0, outcome.err
    accuracy = json.loads(outcome.out)["accuracy"]
    assert accuracy["task"] == "regression"
    assert accuracy["metrics"]["rmse"] > 0 and "r2" in accuracy["metrics"]
    assert "top1" not in accuracy


@pytest.mark.parametrize(
    ("data", "task", "says"),
    [
        ("reg.npz", "segmentation", "segmentation"),
        ("reg.npz", "classification", "class"),
        ("x.npz", "regression", "task regression needs labels"),
    ],
)
def test_a_named_task_that_does_not_fit_is_one_line_and_nothing_is_written(
    run_cli, files: Path, tmp_path: Path, data: str, task: str, says: str
):
    out = tmp_path / "m.tflite"
    outcome = run_cli(
        "convert", files / "mlp.keras", "-o", out, "--data", files / data, "--task", task
    )
    assert outcome.code == 2
    lines = outcome.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], lines
    assert not out.exists() and not list(tmp_path.iterdir())


def test_an_unnamed_task_on_x_only_data_calibrates_with_a_note(run_cli, files, tmp_path):
    out = tmp_path / "m.tflite"
    outcome = run_cli(
        "convert", files / "mlp.keras", "-o", out, "--data", files / "x.npz", "-q", "int8",
        "--json",
    )  # fmt: skip
    assert outcome.code == 0, outcome.err
    assert "no labels" in json.loads(outcome.out)["accuracy"]["note"]
