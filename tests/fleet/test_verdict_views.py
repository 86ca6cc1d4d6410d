"""Intervals and verdicts in every view, on a real results store filled with Results whose
latencies are known: a model twice as fast is `faster`, a second draw of the same
distribution is `indistinguishable`, interleaved rounds are compared paired and different
runs independently; the terminal, HTML and Python views show the same numbers and explain
each warning code they print."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from device_agents.protocol import BenchOptions, LatencySummary, Measurement, Result, Warning_
from edgeprune.results import ModelInfo, ResultsStore, compare_rows, summary_rows
from edgeprune.results.report import render_html
from edgeprune.warning_codes import explain

BASE, FAST, SAME = "a" * 64, "b" * 64, "c" * 64


def draws(median: float, n: int, seed: int) -> list[float]:
    """Skewed latencies (log-normal, 3 % spread) around `median` ms."""
    rng = np.random.default_rng(seed)
    return [float(x) for x in median * np.exp(rng.normal(0.0, 0.03, n))]


def result(
    job: str,
    sha: str,
    latencies: list[float],
    *,
    group: str | None = None,
    rounds: list[int] | None = None,
    warnings: tuple[str, ...] = (),
) -> Result:
    return Result(
        job_id=job,
        model_sha256=sha,
        status="ok",
        runtime={"name": "ai_edge_litert", "version": "2.3.0"},
        options=BenchOptions(threads=[1]),
        measurements=[
            Measurement(
                threads=1,
                xnnpack=True,
                latencies_ms=latencies,
                summary=LatencySummary.of(latencies),
                rounds=rounds,
            )
        ],
        warnings=[Warning_(code, "from the agent") for code in warnings],
        group=group,
        started_at=1.0,
        finished_at=2.0,
    )


def fill(store: ResultsStore, *, interleaved: bool, seed: int = 0) -> int:
    """One run on `pi4`: base (10 ms), fast (5 ms), same (10 ms, other draws), 60 runs each."""
    run = store.begin_run("bench", {})
    group = f"g{seed}" if interleaved else None
    rounds = [5] * 12 if interleaved else None
    for index, (name, sha, median, codes) in enumerate(
        [
            ("base.tflite", BASE, 10.0, ("high_spread",)),
            ("fast.tflite", FAST, 5.0, ("throttled",)),
            ("same.tflite", SAME, 10.0, ()),
        ]
    ):
        store.add_result(
            run,
            "pi4",
            result(
                f"{group or 'job'}.{index}.{seed}",
                sha,
                draws(median, 60, seed * 10 + index),
                group=group,
                rounds=rounds,
                warnings=codes,
            ),
            ModelInfo(name, sha, size_bytes=1_000_000),
        )
    return run


@pytest.fixture
def store(tmp_path: Path) -> ResultsStore:
    return ResultsStore(tmp_path / "r.db")


def by_model(rows: list[dict]) -> dict[str, dict]:
    return {r["model"]: r for r in rows}


def test_summary_rows_judge_against_the_baseline(store: ResultsStore):
    run = fill(store, interleaved=True)
    rows = by_model(summary_rows(store.measurements([run], with_json=True)))

    base, fast, same = rows["base.tflite"], rows["fast.tflite"], rows["same.tflite"]
    assert base["verdict"] == "baseline" and base["speedup"] == 1.0
    assert fast["verdict"] == "faster" and fast["method"] == "paired rounds"
    low, high = fast["speedup_ci"]
    assert 1.8 < low <= fast["speedup"] <= high < 2.2
    assert (
        same["verdict"] == "indistinguishable" and same["speedup_ci"][0] < 1 < same["speedup_ci"][1]
    )
    for row in rows.values():
        low, high = row["p50_ci_ms"]
        assert low <= row["p50_ms"] <= high and row["runs"] == 60
        low, high = row["p90_ci_ms"]
        assert low <= row["p90_ms"] <= high
        for field in ("speedup", "speedup_ci", "verdict", "method", "runs_to_decide"):
            assert field in row


def test_separate_jobs_are_compared_independently_and_old_rows_still_read(store: ResultsStore):
    run = fill(store, interleaved=False)
    rows = by_model(summary_rows(store.measurements([run], with_json=True)))
    assert rows["fast.tflite"]["method"] == "independent"
    assert rows["fast.tflite"]["verdict"] == "faster"
    assert rows["same.tflite"]["verdict"] == "indistinguishable"
    # read without the raw runs (what an old caller does): the p50 ratio, no verdict
    bare = by_model(summary_rows(store.measurements([run])))
    assert bare["fast.tflite"]["speedup"] == pytest.approx(
        rows["base.tflite"]["p50_ms"] / rows["fast.tflite"]["p50_ms"]
    )
    assert bare["fast.tflite"]["verdict"] is None and bare["fast.tflite"]["speedup_ci"] is None
    assert bare["fast.tflite"]["p50_ci_ms"] == rows["fast.tflite"]["p50_ci_ms"]  # stored columns


def test_compare_rows_judge_each_run_against_the_first(store: ResultsStore):
    first = fill(store, interleaved=True, seed=1)
    second = fill(store, interleaved=True, seed=2)
    rows = compare_rows(store.measurements([first, second], with_json=True), [first, second])
    for row in rows:
        assert set(row["p50_ci_ms"]) == {str(first), str(second)}
        assert row["vs_first"][str(second)]["method"] == "independent"  # other run, other rounds
        assert row["verdict"] == "indistinguishable", row  # same medians in both runs
        assert row["speedup_ci"][0] < 1 < row["speedup_ci"][1]


def test_cli_json_terminal_and_html_show_intervals_verdicts_and_legend(
    store: ResultsStore, run_cli, tmp_path: Path
):
    run = fill(store, interleaved=True)
    db = str(store.path)
    shown = run_cli("results", "show", "--db", db, "--json")
    assert shown.code == 0, shown.err
    rows = by_model(json.loads(shown.out)["rows"])
    assert (
        rows["fast.tflite"]["verdict"] == "faster" and len(rows["fast.tflite"]["speedup_ci"]) == 2
    )
    assert rows == by_model(
        json.loads(json.dumps(summary_rows(store.measurements([run], with_json=True))))
    )

    text = run_cli("results", "show", "--db", db)
    assert text.code == 0, text.err
    fast = rows["fast.tflite"]
    low, high = fast["speedup_ci"]
    assert f"{fast['speedup']:.2f}× {low:.2f}–{high:.2f}" in text.out
    assert "faster" in text.out and "indist." in text.out and "±" in text.out
    for code in ("high_spread", "throttled"):
        assert explain(code).fix[:40] in " ".join(text.out.split())

    page = render_html(store.measurements([run], with_json=True), "t", [run])
    assert f"{fast['speedup']:.2f}× ({low:.2f}–{high:.2f})" in page and "indistinguishable" in page
    assert "<dt><code>throttled</code></dt>" in page and explain("throttled").meaning in page

    second = fill(store, interleaved=True, seed=3)
    compared = run_cli("results", "compare", str(run), str(second), "--db", db)
    assert compared.code == 0, compared.err
    assert "first/last" in compared.out and "indist." in compared.out


def test_python_compare_matches_the_stored_rows(store: ResultsStore):
    import edgeprune as ep

    run = fill(store, interleaved=True)
    table = ep.compare(run, store=store)
    stored = by_model(summary_rows(store.measurements([run], with_json=True)))
    for row in table.rows:
        for field in ("speedup", "speedup_ci", "verdict", "method", "p50_ci_ms", "runs"):
            assert row[field] == stored[row["model"]][field]
    flipped = by_model(ep.compare(run, baseline="fast.tflite", store=store).rows)
    assert (
        flipped["base.tflite"]["verdict"] == "slower"
        and flipped["fast.tflite"]["verdict"] == "baseline"
    )
    text = repr(table)
    assert "faster" in text and "warning throttled: " in text


def test_sparse_ab_rows_carry_the_interval_verdict_and_legend(store: ResultsStore, capsys):
    from types import SimpleNamespace

    from edgeprune.cli.present_bench import print_sparse_ab
    from edgeprune.workflows.sparse_ab import ABReport, StoragePair, ab_rows

    run = fill(store, interleaved=True)
    pair = StoragePair(
        "m.keras",
        dense=SimpleNamespace(sha256=BASE),  # type: ignore[arg-type]
        sparse=SimpleNamespace(sha256=FAST),  # type: ignore[arg-type]
        verdict="eligible",
        eligible=True,
    )
    (row,) = ab_rows([pair], store.measurements([run], with_json=True))
    assert row.verdict == "faster" and row.method == "paired rounds" and row.runs == [60, 60]
    assert row.speedup is not None and row.speedup_ci and row.dense_p50_ci_ms and row.dense_p50_ms
    assert row.speedup_ci[0] < row.speedup < row.speedup_ci[1]
    assert row.dense_p50_ci_ms[0] <= row.dense_p50_ms <= row.dense_p50_ci_ms[1]
    assert row.warnings == ["high_spread", "throttled"]
    assert set(row.to_dict()) >= {"speedup", "speedup_ci", "verdict", "dense_p50_ci_ms"}

    print_sparse_ab(ABReport(run, [pair], rows=[row], store=store))
    out = " ".join(capsys.readouterr().out.split())
    assert f"{row.speedup:.2f}× {row.speedup_ci[0]:.2f}–{row.speedup_ci[1]:.2f}" in out
    assert "faster" in out and "throttled: " in out and explain("throttled").fix[:30] in out


def test_an_undecided_verdict_says_how_many_more_runs_would_decide(store: ResultsStore, run_cli):
    run = store.begin_run("bench", {})
    rng = np.random.default_rng(7)
    for index, (name, sha, median) in enumerate(
        [("base.tflite", BASE, 10.0), ("b.tflite", FAST, 9.3)]
    ):
        noisy = [float(x) for x in median * np.exp(rng.normal(0.0, 0.3, 20))]
        store.add_result(run, "pi4", result(f"n.{index}", sha, noisy), ModelInfo(name, sha))
    row = by_model(summary_rows(store.measurements([run], with_json=True)))["b.tflite"]
    assert row["verdict"] == "indistinguishable" and row["runs_to_decide"] > 20
    more = row["runs_to_decide"] - 20
    text = run_cli("results", "show", "--db", str(store.path))
    assert text.code == 0, text.err
    assert f"needs ~{more} more runs per model to decide" in " ".join(text.out.split())
    assert "indist.+" in text.out


def test_a_v2_db_shows_its_rows_without_intervals(tmp_path: Path, run_cli):
    from test_store_schema import make_v2_db  # the frozen v2 schema (tests/fleet)

    db = tmp_path / "v2.db"
    make_v2_db(db)
    shown = run_cli("results", "show", "--db", db, "--json")
    assert shown.code == 0, shown.err
    (row,) = json.loads(shown.out)["rows"]
    assert row["verdict"] == "baseline" and row["p50_ci_ms"] is None and row["runs"] == 50
    text = run_cli("results", "show", "--db", db)
    assert text.code == 0 and "baseline" in text.out, text.err
