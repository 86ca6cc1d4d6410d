"""A custom task calls the user's named function, validates its answer and learns its metrics."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.data import Dataset
from edgeprune.errors import UserError
from edgeprune.tasks.base import OutputInfo
from edgeprune.tasks.custom import CustomTask

METRICS = """
import numpy as np

def hit_rate(y_true, y_pred):
    return {"hits": float(np.mean(np.abs(y_true - y_pred[:, 0]) < 0.5)), "count": len(y_true)}

def per_output(y_true, y_pred):
    return {"outputs": float(len(y_pred)), "first": float(np.mean(y_pred["a"]))}

def not_a_dict(y_true, y_pred):
    return 0.5

def not_finite(y_true, y_pred):
    return {"x": float("nan")}

def broken(y_true, y_pred):
    raise ValueError("shapes differ")
"""


@pytest.fixture
def metrics_file(tmp_path):
    path = tmp_path / "my_metrics.py"
    path.write_text(METRICS)
    return path


def _data() -> Dataset:
    x = np.zeros((4, 3), np.float32)
    y = np.array([0.0, 1.0, 2.0, 3.0], np.float32)
    return Dataset("d", x, y, x, y, [])


def test_scores_and_learned_metrics(metrics_file):
    task = CustomTask(f"{metrics_file}:hit_rate", decides="hits", higher_is_better=True)
    assert task.primary.name == "hits"
    data = _data()
    task.check(data, [OutputInfo("o", (None, 1))], "m")
    predicted = np.array([[0.1], [1.9], [2.2], [3.0]], np.float32)
    assert task.score(data, [predicted]) == {"hits": 0.75, "count": 4.0}
    assert [m.name for m in task.metrics] == ["hits", "count"]
    assert task.scorer(data, [predicted]) is None  # a user function is not cheap to resample


def test_undeclared_primary_is_the_first_key_and_lower_is_better_when_declared(metrics_file):
    task = CustomTask(f"{metrics_file}:hit_rate")
    with pytest.raises(UserError, match="deciding metric is unknown"):
        task.primary  # noqa: B018
    task.score(_data(), [np.zeros((4, 1), np.float32)])
    assert task.primary.name == "hits"
    lower = CustomTask(f"{metrics_file}:hit_rate", decides="count", higher_is_better=False)
    lower.score(_data(), [np.zeros((4, 1), np.float32)])
    assert lower.primary.name == "count" and lower.primary.better(1.0, 2.0)


def test_several_outputs_arrive_by_name(metrics_file):
    task = CustomTask(f"{metrics_file}:per_output")
    data = _data()
    task.check(data, [OutputInfo("a", (None, 1)), OutputInfo("b", (None, 2))], "m")
    scores = task.score(data, [np.ones((4, 1)), np.zeros((4, 2))])
    assert scores == {"outputs": 2.0, "first": 1.0}


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("not_a_dict", r"returned float; it must return a non-empty dict"),
        ("not_finite", r"returned 'x': nan; it must return a dict of name -> finite number"),
        ("broken", r"failed: ValueError: shapes differ"),
    ],
)
def test_bad_answers_are_one_line_naming_the_function(metrics_file, function, message):
    task = CustomTask(f"{metrics_file}:{function}")
    with pytest.raises(UserError, match=message) as err:
        task.score(_data(), [np.zeros((4, 1), np.float32)])
    assert f"my_metrics.py:{function}" in str(err.value)
    assert err.value.params == ("metric",)


def test_declared_metric_missing_from_the_answer(metrics_file):
    task = CustomTask(f"{metrics_file}:hit_rate", decides="f1")
    with pytest.raises(UserError, match="returned hits, count but the deciding metric is 'f1'"):
        task.score(_data(), [np.zeros((4, 1), np.float32)])


def test_missing_function_no_labels_and_no_default_loss(metrics_file, tmp_path):
    with pytest.raises(UserError, match="has no 'nope'"):
        CustomTask(f"{metrics_file}:nope")
    task = CustomTask(f"{metrics_file}:hit_rate")
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(UserError, match="no labels"):
        task.check(Dataset("xonly", x, None, x, None, []), [OutputInfo("o", (None, 1))], "m")
    with pytest.raises(UserError, match="has no default loss; give loss") as err:
        task.default_loss(None)
    assert err.value.params == ("loss",)


def test_cli_evaluate_with_a_custom_metric_file(metrics_file, tmp_path, run_cli):
    from edgeprune import _tf

    keras = _tf.keras()
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="o")(inputs))
    model.save(tmp_path / "m.keras")
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    y = model.predict(x, verbose=0)[:, 0] + np.where(np.arange(20) % 4 == 0, 2.0, 0.1)
    np.savez(tmp_path / "d.npz", x=x[:10], y=y[:10], x_val=x[10:], y_val=y[10:])
    outcome = run_cli(
        "evaluate",
        tmp_path / "m.keras",
        "--data",
        tmp_path / "d.npz",
        "--task",
        "custom",
        "--metric",
        f"{metrics_file}:hit_rate",
        "--json",
    )
    assert outcome.code == 0, outcome.err
    import json

    report = json.loads(outcome.out)
    assert report["task"] == "custom"
    # samples 12 and 16 are 2.0 off (misses), the other 8 are 0.1 off
    assert report["metrics"] == {"hits": pytest.approx(0.8), "count": 10.0}
    bad = run_cli(
        "evaluate",
        tmp_path / "m.keras",
        "--data",
        tmp_path / "d.npz",
        "--metric",
        f"{metrics_file}:broken",
    )
    assert bad.code == 2 and bad.err.count("\n") == 1
    assert "--metric" in bad.err and "failed: ValueError: shapes differ" in bad.err
