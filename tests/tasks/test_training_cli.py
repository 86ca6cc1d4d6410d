"""`edgeprune prune` / `channels` on a regression MLP from the CLI: RMSE named, losses chosen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.task_models import regression_data, regression_mlp


@pytest.fixture(scope="module")
def regression_files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("regression")
    x, y = regression_data(320)
    data = folder / "reg_data.npz"
    np.savez(data, x=x[:240], y=y[:240], x_val=x[240:], y_val=y[240:])
    model = regression_mlp()  # compiled with MSE
    model.fit(x[:240], y[:240], epochs=20, batch_size=32, verbose=0)
    path = folder / "reg.keras"
    model.save(path)
    return path, data


def test_prune_a_regression_mlp_reports_rmse_with_its_compiled_mse(
    run_cli, regression_files, tmp_path
):
    model, data = regression_files
    out = tmp_path / "pruned.keras"
    common = ["--sparsity", "0.5", "--data", data, "--epochs", "4", "--min-params", "16"]
    outcome = run_cli("prune", model, "-o", out, *common)
    assert outcome.code == 0, outcome.err
    line = next(s for s in outcome.out.splitlines() if s.startswith("RMSE "))
    dense, pruned = (
        float(part.split()[-1]) for part in line.split(" pruned")[0].split(" dense -> ")
    )
    assert 0 < dense < 0.5 and 0 < pruned < 0.5, line  # targets have std ~1.5
    manifest = json.loads(Path(f"{out}.json").read_text())
    assert manifest["accuracy"]["task"] == "regression"
    assert manifest["accuracy"]["metric"] == "rmse"

    outcome = run_cli(
        "prune", model, "-o", tmp_path / "huber.keras", *common, "--loss", "huber", "--json"
    )
    assert outcome.code == 0, outcome.err
    document = json.loads(outcome.out)
    assert document["training"]["loss"] == {"name": "huber", "source": "option"}
    assert document["accuracy"]["metrics"]["rmse"] == document["accuracy"]["value"]


def test_a_bad_loss_is_one_line_before_any_work(run_cli, regression_files, tmp_path):
    model, data = regression_files
    out = tmp_path / "never.keras"
    outcome = run_cli(
        "prune", model, "-o", out, "--sparsity", "0.5", "--data", data, "--loss", "nope"
    )
    assert outcome.code == 2
    assert outcome.err.strip().splitlines() == [
        "error: --loss 'nope' is not a Keras loss; give a name such as mse, mae, huber, "
        "sparse_categorical_crossentropy, or FILE.py:fn"
    ]
    assert not out.exists()


def test_channels_fine_tune_of_a_regression_mlp_names_rmse(run_cli, regression_files, tmp_path):
    model, data = regression_files
    out = tmp_path / "narrow.keras"
    outcome = run_cli(
        "channels",
        model,
        "-o",
        out,
        "--ratio",
        "0.25",
        "--granularity",
        "1",
        "--min-filters",
        "2",
        "--data",
        data,
        "--epochs",
        "2",
        "--loss",
        "mae",
    )
    assert outcome.code == 0, outcome.err
    assert "RMSE on reg_data: " in outcome.out and " after 2 epoch(s)" in outcome.out
    accuracy = json.loads(Path(f"{out}.json").read_text())["accuracy"]
    assert accuracy["task"] == "regression" and accuracy["loss"] == {
        "name": "mae",
        "source": "option",
    }


def test_adapt_refuses_a_regression_model_in_one_line(run_cli, regression_files, tmp_path):
    model, data = regression_files
    outcome = run_cli(
        "adapt", model, "-o", tmp_path / "a.keras", "--data", data, "--target-speedup", "2"
    )
    assert outcome.code == 2
    assert outcome.err.strip().splitlines() == [
        "error: adapt ranks its proposals by top-1, so it needs a classifier, not --task "
        "regression (prune it with channels --data and --ratio instead)"
    ]
