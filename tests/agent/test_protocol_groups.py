"""The issue-14 protocol additions: group jobs, rounds, precision, order-statistic intervals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import binom

from device_agents.protocol import (
    MAX_KEPT_LATENCIES,
    MAX_MEMBERS,
    BenchOptions,
    Job,
    JobMember,
    LatencySummary,
    Measurement,
    ProtocolError,
    Result,
    kept_latencies,
    quantile_ranks,
)

SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64


def group(members=None, **options) -> Job:
    members = members or [JobMember("g.1", SHA_A, label="dense"), JobMember("g.2", SHA_B)]
    return Job.group("g", members, BenchOptions(**options))


def test_a_group_job_round_trips():
    job = group(precision=0.02, max_seconds=30.0, round_runs=3)
    again = Job.from_json(job.to_json())
    assert again == job
    assert (again.model_sha256, again.label) == (SHA_A, "dense")  # the first member's
    assert again.member_ids() == ["g.1", "g.2"]
    assert again.members[1].model == f"models/{SHA_B}.tflite"
    assert again.options.precision_seconds() == 30.0
    assert BenchOptions(precision=0.1).precision_seconds() == 60.0
    assert BenchOptions(max_seconds=5.0).precision_seconds() is None  # only with precision
    # a plain job has no members and reads as before
    plain = Job(id="p", model_sha256=SHA_C)
    assert Job.from_json(plain.to_json()).members == []
    old = json.loads(plain.to_json())
    del old["members"]
    assert Job.from_json(json.dumps(old)) == plain


def test_the_same_model_twice_is_a_valid_group():
    job = group([JobMember("g.1", SHA_A), JobMember("g.2", SHA_A)])
    assert Job.from_json(job.to_json()).members[1].model_sha256 == SHA_A


def _members(count: int) -> list:
    return [JobMember(f"g.{i}", SHA_A) for i in range(1, count + 1)]


@pytest.mark.parametrize(
    ("members", "message"),
    [
        (_members(1), "a group job needs 2 to 32 members, got 1"),
        (_members(MAX_MEMBERS + 1), "a group job needs 2 to 32 members, got 33"),
        ([JobMember("g.1", SHA_A), JobMember("g.1", SHA_B)], "member id 'g.1' appears twice"),
        ([JobMember("g", SHA_A), JobMember("g.2", SHA_B)], "is the group's own id"),
        ([JobMember("g.1", SHA_A), JobMember("../x", SHA_B)], "job id '../x' is not allowed"),
        (
            [JobMember("g.1", SHA_A), JobMember("g.2", SHA_B, model="../etc/passwd")],
            "model path '../etc/passwd' is not allowed",
        ),
        ([JobMember("g.1", SHA_A), JobMember("g.2", "xyz")], "is not a sha256"),
        ([JobMember("g.1", SHA_A, label="x" * 201), JobMember("g.2", SHA_B)], "at most 200"),
    ],
)
def test_bad_members_are_refused(members, message):
    job = Job.group("g", members)
    with pytest.raises(ProtocolError, match=re_escape(message)):
        job.validate()
    text = json.dumps(dict(job.to_dict()))
    with pytest.raises(ProtocolError, match=re_escape(message)):
        Job.from_json(text)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_a_group_must_carry_its_first_members_model():
    job = group()
    job.model_sha256, job.model = SHA_C, f"models/{SHA_C}.tflite"
    with pytest.raises(ProtocolError, match="must be its first member's"):
        job.validate()
    raw = json.loads(group().to_json())
    raw["members"][0]["extra"] = 1
    with pytest.raises(ProtocolError, match="unknown field"):
        Job.from_json(json.dumps(raw))
    raw = json.loads(group().to_json())
    raw["members"] = {"g.1": SHA_A}
    with pytest.raises(ProtocolError, match="'members' must be a list"):
        Job.from_json(json.dumps(raw))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"precision": 0}, "precision must be a fraction > 0 and < 0.5 (0.02 = 2 %), got 0"),
        ({"precision": 0.5}, "precision must be a fraction > 0 and < 0.5"),
        ({"precision": -0.02}, "precision must be a fraction > 0 and < 0.5"),
        ({"precision": 2}, "precision must be a fraction > 0 and < 0.5"),
        ({"precision": "2%"}, "precision must be a fraction > 0 and < 0.5"),
        ({"precision": True}, "precision must be a fraction > 0 and < 0.5"),
        ({"round_runs": 0}, "round_runs must be from 1 to 100000, got 0"),
        ({"round_runs": 100_001}, "round_runs must be from 1 to 100000"),
        ({"round_runs": 2.5}, "round_runs must be from 1 to 100000"),
        ({"round_runs": None}, "round_runs must be from 1 to 100000"),
        ({"rounds_per_process": 0}, "rounds_per_process must be from 1 to 100000, got 0"),
        ({"rounds_per_process": True}, "rounds_per_process must be from 1 to 100000"),
        ({"max_seconds": 0}, "max_seconds must be > 0 and <= 86400, got 0"),
        ({"max_seconds": 86_401}, "max_seconds must be > 0 and <= 86400"),
        ({"max_seconds": float("nan")}, "max_seconds must be > 0 and <= 86400"),
    ],
)
def test_bad_new_bench_options_are_refused(options, message):
    with pytest.raises(ProtocolError, match=re_escape(message)):
        BenchOptions(**options).validate()
    raw = json.loads(Job(id="j", model_sha256=SHA_A).to_json())
    raw["options"].update(options)
    with pytest.raises(ProtocolError, match=re_escape(message)):
        Job.from_json(json.dumps(raw, allow_nan=True))


def test_new_bench_options_defaults_and_ints():
    options = BenchOptions()
    assert (options.round_runs, options.precision, options.max_seconds) == (5, None, None)
    parsed = BenchOptions.from_dict({"max_seconds": 2})
    assert parsed.max_seconds == 2.0 and isinstance(parsed.max_seconds, float)


# ------------------------------------------------------------------ intervals


def scipy_ranks(n: int, q: float, confidence: float = 0.95):
    """The same rule with scipy's binomial: each tail at most (1 - confidence) / 2."""
    tail = (1 - confidence) / 2
    cdf = binom.cdf(np.arange(n + 1), n, q)
    below = np.nonzero(cdf <= tail)[0]
    above = np.nonzero(cdf >= 1 - tail)[0]
    low = (below[-1] if below.size else -1) + 1
    high = above[0] + 1
    if low < 1 or high > n:
        return None
    return int(low), int(high)


def test_the_worked_example():
    assert quantile_ranks(50, 0.5) == (18, 33)  # docs: 1-based ranks 18 and 33


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_ranks_match_scipy_on_many_n(q):
    sizes = [*range(1, 401), 500, 777, 1000, 2500, 10_000, 100_000]
    for n in sizes:
        ours = quantile_ranks(n, q)
        assert ours == scipy_ranks(n, q), (n, q)
        if ours is not None:
            low, high = ours
            coverage = binom.cdf(high - 1, n, q) - binom.cdf(low - 1, n, q)
            assert coverage >= 0.95, (n, q, coverage)


def test_too_few_runs_give_no_interval():
    assert [quantile_ranks(n, 0.5) for n in (1, 5)] == [None, None]
    assert quantile_ranks(6, 0.5) == (1, 6)
    assert quantile_ranks(35, 0.9) is None and quantile_ranks(36, 0.9) is not None
    assert quantile_ranks(367, 0.99) is None and quantile_ranks(368, 0.99) is not None
    summary = LatencySummary.of([1.0, 2.0, 3.0])
    assert summary.p50_ci is None and summary.half_width() is None


def test_the_median_interval_covers_on_a_skewed_distribution():
    """Over 2000 simulated samples of a log-normal, the interval holds the true median in
    at least 93 % (it is built for >= 95 %)."""
    rng = np.random.default_rng(3)
    true_median = math.exp(0.0)
    hits = 0
    for _ in range(2000):
        data = rng.lognormal(0.0, 0.8, size=40).tolist()
        low, high = LatencySummary.of(data).p50_ci
        hits += low <= true_median <= high
    assert hits / 2000 >= 0.93


def test_summary_fills_the_intervals_from_order_statistics():
    data = [float(x) for x in range(1, 51)]  # x_(i) = i
    summary = LatencySummary.of(list(reversed(data)))
    assert summary.p50_ci == [18.0, 33.0] and summary.confidence == 0.95
    assert summary.p90_ci is not None and summary.p90_ci[0] <= summary.p90 <= summary.p90_ci[1]
    assert summary.p99_ci is None
    assert summary.half_width() == pytest.approx(max(25.5 - 18, 33 - 25.5) / 25.5)


# ------------------------------------------------------------------ measurements and results


def test_thinning_keeps_rounds_consistent():
    latencies = [float(i % 97) for i in range(25_000)]
    rounds = [7] * (25_000 // 7) + [25_000 % 7]
    processes = [2] * (len(rounds) // 2) + [1] * (len(rounds) % 2)
    m = Measurement(
        threads=1, xnnpack=True, latencies_ms=latencies, rounds=rounds, processes=processes
    )
    assert len(m.latencies_ms) == MAX_KEPT_LATENCIES
    assert m.processes == processes  # rounds are thinned inside, never dropped
    assert len(m.rounds) == len(rounds) and sum(m.rounds) == MAX_KEPT_LATENCIES
    assert set(m.rounds[:-1]) <= {2, 3}
    assert m.summary.count == 25_000
    m.validate("m")
    m.thin(100)
    assert sum(m.rounds) == 100 and len(m.rounds) == len(rounds)
    assert kept_latencies(1, 1) == MAX_KEPT_LATENCIES
    assert kept_latencies(32, 64) == 312 and kept_latencies(32, 64) * 32 * 64 <= 640_000


def _result(latencies=(1.0, 2.0, 3.0), rounds=(2, 1)) -> Result:
    m = Measurement(
        threads=1,
        xnnpack=True,
        latencies_ms=list(latencies),
        summary=LatencySummary.of(list(latencies)),
        rounds=list(rounds),
        processes=[1] * len(rounds),
        precision={"target": 0.02, "reached": False, "half_width": None, "runs": 3, "seconds": 1.0},
    )
    members = [
        Result("g.1", SHA_A, "ok", group="g", measurements=[m]),
        Result("g.2", SHA_B, "error", error="crashed", error_kind="crashed", group="g"),
    ]
    return Result("g", SHA_A, "ok", members=members)


def test_a_group_result_round_trips():
    result = _result()
    again = Result.from_json(result.to_json())
    assert again == result
    assert again.members[0].measurements[0].rounds == [2, 1]
    assert again.members[0].measurements[0].processes == [1, 1]
    assert again.members[0].measurements[0].precision["reached"] is False
    assert again.members[1].group == "g" and again.members[1].status == "error"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: setattr(r.members[0], "group", "other"), "must be 'g'"),
        (lambda r: setattr(r.members[1], "job_id", "g.1"), "is not unique"),
        (lambda r: setattr(r.members[0], "members", [_result().members[1]]), "cannot have members"),
        (lambda r: setattr(r.members[0].measurements[0], "rounds", [1, 1]), "rounds add up to 2"),
        (lambda r: setattr(r.members[0].measurements[0], "rounds", [4, -1]), "run counts >= 0"),
        (lambda r: setattr(r.members[0].measurements[0], "processes", [1]), "processes must"),
        (lambda r: setattr(r.members[0].measurements[0], "processes", [2, 0]), "processes must"),
        (lambda r: r.members[0].measurements[0].precision.pop("reached"), "missing field"),
        (lambda r: setattr(r.members[1], "error", None), "needs a message"),
    ],
)
def test_bad_group_results_are_refused(change, message):
    result = _result()
    text = json.dumps(result.to_dict())
    change(result)
    with pytest.raises(ProtocolError, match=re_escape(message)):
        result.validate()
    raw = json.loads(text)
    bad = result.to_dict()
    assert bad != raw
    with pytest.raises(ProtocolError, match=re_escape(message)):
        Result.from_json(json.dumps(bad))


def test_bad_intervals_and_member_schemas_are_refused():
    raw = _result().to_dict()
    raw["members"][0]["measurements"][0]["summary"]["p50_ci"] = [3.0, 1.0]
    with pytest.raises(ProtocolError, match=re_escape("p50_ci must be [low, high] in ms")):
        Result.from_json(json.dumps(raw))
    raw = _result().to_dict()
    raw["members"][1]["schema"] = 2
    with pytest.raises(ProtocolError, match="schema 2 is not 1"):
        Result.from_json(json.dumps(raw))


def test_old_results_without_the_new_fields_still_read():
    raw = _result().to_dict()["members"][0]
    raw.update(group=None)
    for key in ("group", "members"):
        raw.pop(key)
    for key in ("rounds", "precision", "processes"):
        raw["measurements"][0].pop(key)
    for key in ("p50_ci", "p90_ci", "p99_ci", "confidence"):
        raw["measurements"][0]["summary"].pop(key)
    again = Result.from_json(json.dumps(raw))
    assert again.group is None and again.members == []
    assert again.measurements[0].rounds is None and again.measurements[0].summary.p50_ci is None
