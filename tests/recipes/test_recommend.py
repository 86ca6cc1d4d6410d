"""The recommendation rule and the Pareto front, on numbers chosen to exercise each branch."""

from __future__ import annotations

from edgeprune.recipes import Candidate, pareto_front, recommend

BASELINE = 0.980


def candidates() -> list[Candidate]:
    return [
        Candidate("dense-fp32", 2.00, 1, 0.980, gzip_bytes=120_000),
        Candidate("dense-int8", 1.00, 1, 0.978, gzip_bytes=40_000),
        Candidate("pruned-int8", 1.10, 1, 0.984, gzip_bytes=22_000),
        Candidate("channels-int8", 0.60, 1, 0.955, gzip_bytes=15_000),
        Candidate("pruned-fp32", 2.10, 1, 0.975),  # slower and less accurate than dense-fp32
    ]


def test_pareto_front_keeps_only_undominated_variants_fastest_first():
    front = [c.variant for c in pareto_front(candidates())]
    assert front == ["channels-int8", "dense-int8", "pruned-int8"]


def test_the_pick_is_the_fastest_within_the_budget_and_changes_with_it():
    tight = recommend("pi4", candidates(), BASELINE, budget=1.0)
    assert tight.choice is not None and tight.choice.variant == "dense-int8"
    assert tight.runner_up is not None and tight.runner_up.variant == "pruned-int8"
    assert "within 1 point(s)" in tight.reason
    assert "faster but over the budget: channels-int8" in tight.reason
    assert "2.5 points below" in tight.reason
    assert "1.10× slower" in tight.runner_up_reason and "+0.6 points" in tight.runner_up_reason
    assert "smaller on the wire" in tight.runner_up_reason

    loose = recommend("pi4", candidates(), BASELINE, budget=3.0)
    assert loose.choice is not None and loose.choice.variant == "channels-int8"
    assert loose.runner_up is not None and loose.runner_up.variant == "dense-int8"
    assert loose.over_budget_faster == []

    zero = recommend("pi4", candidates(), BASELINE, budget=0.0)
    assert zero.choice is not None and zero.choice.variant == "pruned-int8"


def test_no_variant_within_the_budget_gives_no_pick_and_says_what_is_closest():
    worse = [Candidate("a", 1.0, 1, 0.90), Candidate("b", 2.0, 1, 0.93)]
    rec = recommend("jetson", worse, BASELINE, budget=1.0)
    assert rec.choice is None and rec.runner_up is None
    assert "the most accurate is b (93.0 %, 5.0 points below)" in rec.reason


def test_without_accuracy_the_fastest_wins_and_the_reason_says_so():
    blind = [Candidate("a", 1.5, 4, None), Candidate("b", 1.2, 1, None)]
    rec = recommend("local", blind, None, budget=1.0)
    assert rec.choice is not None and rec.choice.variant == "b"
    assert "accuracy unknown" in rec.reason and rec.pareto == []


def test_nothing_measured():
    rec = recommend("local", [], BASELINE, 1.0)
    assert rec.choice is None and rec.reason == "no variant was measured"
