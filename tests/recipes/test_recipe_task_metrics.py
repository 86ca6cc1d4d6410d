"""Recipes decide in the task's metric: `metric:`, `direction:`, `budget:` in units or percent.

Loader checks are one line with file:line; the rule is tested on plain candidates whose
metric order differs from their latency order (a wrong direction picks another variant);
whole runs (a regression MLP by RMSE, a custom metric function) use the real `local`
device, real conversion and SQLite.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgeprune.errors import UserError
from edgeprune.recipes.loader import parse_recipe
from edgeprune.recipes.metric import Decision
from edgeprune.recipes.recommend import Baseline, Candidate, pareto_front, recommend
from edgeprune.tasks.base import VALUE, Metric

BASE = "model: {file: m.keras}\ndata: {train: d.npz}\nsteps: {convert: {quantize: none}}\n"
RMSE = Metric("rmse", "RMSE", higher_is_better=False, unit=VALUE)


def load_error(extra: str) -> str:
    with pytest.raises(UserError) as caught:
        parse_recipe(BASE + extra)
    return str(caught.value)


# ---------------------------------------------------------------- the loader


def test_metric_budget_and_direction_are_read_in_the_metrics_units():
    recipe = parse_recipe(BASE + "task: regression\nmetric: rmse\nbudget: 2%\n")
    decision = recipe.decision
    assert decision.metric == RMSE
    assert decision.budget is None and decision.percent == 2.0
    assert decision.budget_for(0.5) == pytest.approx(0.01)  # 2 % of an RMSE of 0.5
    points = parse_recipe(BASE + "task: segmentation\nmetric: miou\nbudget: 1.5\n").decision
    assert points.metric.name == "miou" and points.budget == 1.5
    assert points.budget_for(0.8) == 1.5  # absolute: 1.5 points whatever the baseline
    share = parse_recipe(BASE + "task: segmentation\nbudget: 10%\n").decision
    assert share.metric.name == "miou"  # the task's first metric decides by default
    assert share.budget_for(0.8) == pytest.approx(8.0)  # 10 % of 80 % = 8 points
    legacy = parse_recipe(BASE).decision
    assert legacy.is_top1 and legacy.budget == 1.0 and legacy.task is None
    assert parse_recipe(BASE + "accuracy_budget: 3\n").decision.budget == 3


@pytest.mark.parametrize(
    ("extra", "line", "words"),
    [
        ("task: regression\nmetric: miou\n", 5, "metric 'miou' is not one of task regression's"),
        ("metric: accuracy\n", 4, "metric 'accuracy' is not one of any task's metrics"),
        ("task: regression\nmetric: rmse\ndirection: higher\n", 6, "contradicts metric rmse"),
        ("metric: miou\ndirection: lower\n", 5, "contradicts metric miou: higher is better"),
        ("budget: abc\n", 4, "budget 'abc' should be a number in points of top-1"),
        ("task: regression\nbudget: abc\n", 5, "should be a number in RMSE's units"),
        ("budget: -1\n", 4, "budget -1 must be >= 0"),
        ("budget: 200%\n", 4, "budget '200%' must be a percent in 0-100 %"),
        ("budget: 150\n", 4, "budget 150 is in points of top-1 and must be <= 100"),
        ("budget: 1\naccuracy_budget: 1\n", 4, "give budget: or accuracy_budget:, not both"),
        ("task: custom\nmetric_fn: m.py:f\nmetric: err\n", 6, "needs direction: higher or lower"),
        ("task: custom\nmetric: err\ndirection: lower\n", 4, "task custom needs metric_fn:"),
        ("task: regression\nmetric_fn: m.py:f\n", 5, "metric_fn is the custom task's function"),
        ("metric_fn: m.py\nmetric: e\ndirection: lower\n", 4, "should be FILE.py:fn"),
        ("task: detect\n", 4, "should be 'classification', 'regression'"),
        ("direction: up\n", 4, "should be 'higher' or 'lower'"),
    ],
)
def test_every_bad_task_metric_or_budget_is_one_line_at_its_key(extra, line, words):
    message = load_error(extra)
    assert message.startswith(f"recipe.yaml:{line}:"), message
    assert words in message
    assert "\n" not in message


# ---------------------------------------------------------------- the rule


def candidate(name: str, p50: float, value: float, gzip: int = 1000) -> Candidate:
    return Candidate(name, p50, 1, value, gzip_bytes=gzip)


def test_rmse_decides_lower_is_better_not_the_latency_order():
    # fastest first: the fastest is far worse, the next two are tied on latency (within
    # the 2 % noise floor) and differ in RMSE: the lower one must be picked.
    candidates = [
        candidate("sp0.9", 1.000, 0.90),
        candidate("sp0.5", 1.300, 0.3040),
        candidate("dense", 1.310, 0.3010, gzip=4000),
    ]
    decision = Decision("regression", RMSE, None, 2.0)
    budget = decision.budget_for(0.30)  # 2 % of 0.30 = 0.006
    rec = recommend("local", candidates, Baseline(0.30, metric=RMSE), budget)
    assert rec.choice is not None and rec.choice.variant == "dense"
    assert [e.variant for e in rec.excluded] == ["sp0.9"]
    assert (
        "RMSE 0.9 is 0.6 above the baseline, over the 0.006 RMSE budget" in rec.excluded[0].text()
    )
    assert set(rec.tied) == {"dense", "sp0.5"}
    assert "better in RMSE" in rec.reason and "RMSE 0.301" in rec.reason
    assert rec.accuracy["sp0.5"]["verdict"] == "within_budget"  # 0.004 above: within 0.006
    # the same numbers read as higher-is-better would pick the fastest (0.9 "beats" 0.3)
    wrong = recommend("local", candidates, Baseline(0.30), 1.0)
    assert wrong.choice is not None and wrong.choice.variant == "sp0.9"


def test_pareto_front_follows_the_metrics_direction():
    candidates = [
        candidate("fast", 1.0, 0.50),
        candidate("mid", 2.0, 0.40),
        candidate("slow-worse", 3.0, 0.45),
        candidate("slow", 4.0, 0.30),
    ]
    assert [c.variant for c in pareto_front(candidates, RMSE)] == ["fast", "mid", "slow"]


def test_nothing_within_an_rmse_budget_says_the_best_and_by_how_much():
    rec = recommend(
        "local",
        [candidate("a", 1.0, 0.40), candidate("b", 2.0, 0.35)],
        Baseline(0.30, metric=RMSE),
        0.01,
    )
    assert rec.choice is None
    assert rec.reason.startswith(
        "no variant is within the 0.01 RMSE budget of the baseline's RMSE 0.3"
    )
    assert "the best is b (0.35, 0.05 above)" in rec.reason


# ---------------------------------------------------------------- whole runs


def _regression_files(folder: Path) -> tuple[Path, Path]:
    """A trained Dense MLP (MSE) and its float-target data (x, y; the tail validates)."""
    from edgeprune import _tf

    keras = _tf.keras()
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(400, 8)).astype(np.float32)
    y = (x @ np.linspace(-1.5, 1.5, 8) + 0.8 * np.sin(2 * x[:, 0]))[:, None].astype(np.float32)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    hidden = keras.layers.Dense(16, activation="relu")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x[:300], y[:300], epochs=40, batch_size=32, verbose=0)
    model_path, data_path = folder / "mlp.keras", folder / "reg.npz"
    model.save(model_path)
    np.savez(data_path, x=x[:300], y=y[:300], x_val=x[300:], y_val=y[300:])
    keras.backend.clear_session()
    return model_path, data_path


RUN = """
name: {name}
model: {{file: mlp.keras}}
data: {{train: reg.npz}}
{decide}
pipelines:
  dense: {{}}
  pruned:
    prune: {{method: oneshot, sparsity: [0.3, 0.95], min_params: 16}}
devices: [local]
bench: {{runs: 3, warmup: 0}}
"""


def _run(run_cli, write_recipe, tmp_path: Path, name: str, decide: str) -> dict:
    _regression_files(tmp_path)
    recipe = write_recipe(RUN.format(name=name, decide=textwrap.dedent(decide).strip()))
    outcome = run_cli("run", recipe, "--workdir", tmp_path / "work", "--json")
    assert outcome.code == 0, outcome.err
    return json.loads(outcome.out)


def _check_decided_by(result: dict, key: str, lower: bool, budget_of, paired: bool) -> None:
    """The pick is within budget and, among the variants tied with it, best in `key`;
    the heavily pruned variant (far worse) is excluded by the budget, not picked."""
    report = result["report"]
    scores = {v["name"]: v["scores"][key] for v in report["variants"]}
    baseline = report["baseline_score"]
    assert report["metric"]["name"] == key
    assert report["metric"]["higher_is_better"] is (not lower)
    budget = budget_of(baseline)
    assert report["budget"] == pytest.approx(budget)
    intervals = {v["name"]: v["drop_ci"] for v in report["variants"]}
    (device,) = report["devices"]
    rec = device["recommendation"]
    worse = {n: (s - baseline) if lower else (baseline - s) for n, s in scores.items()}
    if paired:  # the paired bootstrap of each drop holds its estimate
        for name, ci in intervals.items():
            assert ci is not None and ci[0] - 1e-9 <= worse[name] <= ci[1] + 1e-9, (name, ci)
        # within: the whole interval inside the budget
        within = {n for n, ci in intervals.items() if ci[1] <= budget + 1e-9}
    else:  # a task without a subset scorer: the point estimate decides
        assert set(intervals.values()) == {None}
        within = {n for n, w in worse.items() if w <= budget + 1e-9}
    assert "pruned-sp0.95-fp32" not in within  # 95 % of the weights gone: far worse
    excluded = {e["variant"] for e in rec["excluded"]}
    assert excluded == set(scores) - within
    assert rec["accuracy"]["pruned-sp0.95-fp32"]["verdict"] == "over_budget"
    choice = rec["choice"]["variant"]
    assert choice in within
    tied = set(rec["tied"]) or {choice}
    best = min if lower else max
    assert scores[choice] == best(scores[n] for n in tied)
    for row in device["rows"]:
        assert row["score_host"] == pytest.approx(scores[row["variant"]])
        assert row["top1_host"] is None


def test_a_regression_recipe_decides_by_rmse_with_a_percent_budget(
    run_cli, write_recipe, tmp_path: Path
):
    pytest.importorskip("edgeprune.tasks.regression")
    result = _run(
        run_cli, write_recipe, tmp_path, "reg", "task: regression\nmetric: rmse\nbudget: 2%"
    )
    _check_decided_by(result, "rmse", lower=True, budget_of=lambda base: 0.02 * base, paired=True)
    variants = {v["name"]: v for v in result["report"]["variants"]}
    assert {"rmse", "mae", "r2"} <= set(variants["dense-fp32"]["scores"])
    markdown = (tmp_path / "work" / "report.md").read_text()
    assert "Baseline RMSE" in markdown and "lower is better" in markdown
    assert "RMSE host" in markdown and "top-1" not in markdown.split("## local")[1].split("|")[0]


def test_a_custom_metric_function_decides_with_its_direction(run_cli, write_recipe, tmp_path: Path):
    (tmp_path / "my_metric.py").write_text(
        "import numpy as np\n\n"
        "def score(y_true, y_pred):\n"
        "    err = np.abs(np.asarray(y_true).reshape(-1) - np.asarray(y_pred).reshape(-1))\n"
        "    return {'worst_err': float(err.max()), 'mean_err': float(err.mean())}\n"
    )
    decide = """
    task: custom
    metric_fn: my_metric.py:score
    metric: mean_err
    direction: lower
    budget: 0.02
    """
    result = _run(run_cli, write_recipe, tmp_path, "custom", decide)
    # CustomTask has no subset scorer (yet): no interval, the point estimate decides
    _check_decided_by(result, "mean_err", lower=True, budget_of=lambda base: 0.02, paired=False)
    assert (tmp_path / "work" / "plots" / "pareto-local.png").is_file()


def test_a_fraction_metric_other_than_top1_is_judged_and_written_in_points():
    from edgeprune.recipes.report import table_headers

    miou = Metric("miou", "mIoU")
    rec = recommend(
        "local",
        [candidate("sp0.9", 1.0, 0.78), candidate("dense", 2.0, 0.797)],
        Baseline(0.80, metric=miou),
        1.0,
    )
    assert rec.choice is not None and rec.choice.variant == "dense"
    (exclusion,) = rec.excluded
    assert "mIoU 78.00 % is 2.00 points below the baseline, over the 1-point budget" in (
        exclusion.text()
    )
    assert "within 1 point(s) of the baseline's mIoU 80.00 %" in rec.reason
    headers = table_headers(miou)
    assert "mIoU % host" in headers and not any("top-1" in h for h in headers)


@pytest.mark.parametrize(
    ("task", "where"),
    [
        ("classification", "edgeprune.tasks.classification:ClassificationTask"),
        ("regression", "edgeprune.tasks.regression:RegressionTask"),
        ("segmentation", "edgeprune.tasks.segmentation:SegmentationTask"),
        ("detection", "edgeprune.tasks.detection:DetectionTask"),
    ],
)
def test_the_loaders_metric_names_are_the_tasks_own(task, where):
    """The loader lists metrics without importing the tasks (no TensorFlow, no pycocotools
    at load time): the lists must be the task classes' own, in order (the first decides)."""
    from edgeprune.recipes.metric import KNOWN_METRICS

    module, _, name = where.partition(":")
    cls = getattr(pytest.importorskip(module), name)
    assert KNOWN_METRICS[task] == tuple(cls.metrics)


def test_a_drop_interval_decides_within_over_or_cannot_tell():
    def with_ci(name: str, value: float, ci: tuple[float, float]) -> Candidate:
        return Candidate(name, 1.0, 1, value, gzip_bytes=1000, drop_ci=ci, accuracy_samples=100)

    rec = recommend(
        "local",
        [
            with_ci("inside", 0.302, (-0.001, 0.004)),
            with_ci("straddles", 0.305, (0.001, 0.012)),
            with_ci("outside", 0.320, (0.012, 0.030)),
        ],
        Baseline(0.30, metric=RMSE),
        0.006,
    )
    verdicts = {name: info["verdict"] for name, info in rec.accuracy.items()}
    assert verdicts == {
        "inside": "within_budget",
        "straddles": "cannot_tell",
        "outside": "over_budget",
    }
    assert rec.choice is not None and rec.choice.variant == "inside"
    texts = {e.variant: e.text() for e in rec.excluded}
    assert (
        "cannot tell with 100 samples whether its RMSE drop of 0.005 (95 % 0.001 to 0.012)"
        in (texts["straddles"])
    )
    assert (
        "0.02 above the baseline (95 % 0.012 to 0.03), over the 0.006 RMSE budget"
        in (texts["outside"])
    )


def test_a_recipes_gradual_prune_trains_and_scores_in_the_recipes_task(
    run_cli, write_recipe, tmp_path: Path
):
    """The top-level task reaches the training stage: gradual pruning of the regression MLP
    trains with its compiled MSE and the stage is scored in RMSE, not top-1."""
    _regression_files(tmp_path)
    recipe = write_recipe(
        """
        name: reg-gradual
        model: {file: mlp.keras}
        data: {train: reg.npz}
        task: regression
        metric: rmse
        budget: 50%
        pipelines:
          pruned:
            prune: {method: gradual, sparsity: 0.5, epochs: 2, min_params: 16}
        devices: [local]
        bench: {runs: 3, warmup: 0}
        """
    )
    outcome = run_cli("run", recipe, "--workdir", tmp_path / "work", "--json")
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)["report"]
    (variant,) = [v for v in report["variants"] if v["name"].startswith("pruned")]
    assert variant["scores"]["rmse"] > 0 and "top1" not in variant["scores"]
    (stage,) = (tmp_path / "work" / "stages").glob("prune-*/stage.json")
    trained = json.loads(stage.read_text())["metrics"]
    assert set(trained["scores"]) == {"rmse", "mae", "r2"} and "top1" not in trained
    assert trained["score"] == trained["scores"]["rmse"] and trained["sparsity"] >= 0.49
    bad = write_recipe(
        """
        name: bad
        model: {file: mlp.keras}
        data: {train: reg.npz}
        pipelines:
          p: {prune: {method: gradual, sparsity: 0.5, task: regression}}
        devices: [local]
        """,
        name="bad.yaml",
    )
    refused = run_cli("run", bad, "--dry-run")
    assert refused.code == 2 and "unknown key 'task'" in refused.err
