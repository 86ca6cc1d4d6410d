"""Which variant to ship on a device, decided so that noise never picks it.

The rule, in order:
1. A variant is eligible when it meets every constraint (`constraints.py`: latency at a
   percentile, peak memory, model size) and its accuracy drop against the baseline (the
   recipe's base model) is *within budget* at 95 %: judged on the same validation samples
   (paired) when both per-sample results are known, else from the two accuracies and
   sample counts. A drop the samples cannot decide (*cannot tell*) is not taken as within
   budget: that variant is excluded, with the reason and about how many samples would
   decide.
2. Among the eligible, every variant whose latency the statistics cannot separate from the
   fastest (`edgeprune.stats.compare_samples`: not `faster` at 95 % beyond the 2 % noise
   floor) is tied with it.
3. Ties go to the more accurate, then the smaller (gzip bytes, else file bytes).

Pure functions over plain numbers and latency samples, so the rule is tested directly and
explained the same in every view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeprune.recipes.constraints import Breach, ConstraintOptions, Measured, check
from edgeprune.recipes.formatting import ms, pct
from edgeprune.recipes.metric import TOP1, budget_text, drop_text, drop_value, value_text
from edgeprune.tasks.base import FRACTION, Metric
from edgeprune.text import points

TOLERANCE = 1e-9
NOISE_FLOOR = 0.02  # as edgeprune.stats.compare.NOISE_FLOOR: used when no interval exists


@dataclass(frozen=True)
class Candidate:
    """One variant on one device: its best p50 over the thread counts measured."""

    variant: str
    p50_ms: float
    threads: int
    accuracy: float | None  # the deciding metric (top-1 in [0, 1]...), host (or device)
    p90_ms: float | None = None
    gzip_bytes: int | None = None
    size_bytes: int | None = None
    p99_ms: float | None = None
    latency_ci: dict[int, tuple[float, float] | None] = field(default_factory=dict)
    peak_rss_kb: int | None = None
    sample: Any = None  # edgeprune.stats.LatencySample of that measurement (None: not kept)
    accuracy_samples: int | None = None  # how many samples the accuracy rests on
    correct: Any = None  # per-sample correctness (bool array), for paired drops
    drop_ci: tuple[float, float] | None = None  # any other metric: the paired bootstrap's

    def drop_points(self, baseline: float | None, metric: Metric = TOP1) -> float | None:
        """How much worse than the baseline in budget units: points for fractions, the
        metric's units else (negative = better than the baseline)."""
        if baseline is None or self.accuracy is None:
            return None
        return drop_value(metric, baseline, self.accuracy)

    def goodness(self, metric: Metric = TOP1) -> float:
        """The metric oriented so that larger is better (unknown: worst)."""
        if self.accuracy is None:
            return -float("inf")
        return self.accuracy if metric.higher_is_better else -self.accuracy

    def measured(self) -> Measured:
        return Measured(
            {50: self.p50_ms, 90: self.p90_ms, 99: self.p99_ms},
            dict(self.latency_ci),
            self.peak_rss_kb,
            self.size_bytes,
        )

    def bytes_key(self) -> float:
        return float(self.gzip_bytes or self.size_bytes or float("inf"))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (no latencies, no per-sample bits: those stay in the store)."""
        return {
            "variant": self.variant,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "threads": self.threads,
            "accuracy": self.accuracy,
            "accuracy_samples": self.accuracy_samples,
            "gzip_bytes": self.gzip_bytes,
            "size_bytes": self.size_bytes,
            "peak_rss_kb": self.peak_rss_kb,
            "latency_ci_ms": {
                f"p{q}": list(ci) if ci else None for q, ci in self.latency_ci.items()
            },
        }


@dataclass(frozen=True)
class Baseline:
    """The base model's deciding metric (top-1, with the per-sample results, unless the
    recipe's task names another) on the validation samples."""

    accuracy: float | None
    samples: int | None = None
    correct: Any = None
    classes: int | None = None
    metric: Metric = TOP1

    def chance_note(self) -> str | None:
        """Why drops against this baseline mean nothing, when it is at chance level."""
        if self.metric.name != TOP1.name:
            return None
        if self.accuracy is None or not self.samples or not self.classes or self.classes < 2:
            return None
        from edgeprune.stats.accuracy import wilson_ci

        low, high = wilson_ci(round(self.accuracy * self.samples), self.samples)
        chance = 1.0 / self.classes
        if low <= chance <= high:
            return (
                f"the baseline's top-1 {pct(self.accuracy)} (95 % {pct(low)}–{pct(high)}, "
                f"n={self.samples}) includes chance level ({pct(chance)} for {self.classes} "
                "classes): the base model has not learned the task, so accuracy drops against "
                "it mean nothing; train it longer or check the data"
            )
        return None


@dataclass
class Exclusion:
    variant: str
    breaks: list[Breach]

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "breaks": [b.to_dict() for b in self.breaks]}

    def text(self) -> str:
        return f"{self.variant} ({'; '.join(b.text for b in self.breaks)})"


@dataclass
class Recommendation:
    device: str
    baseline: float | None
    budget: float | None
    choice: Candidate | None
    runner_up: Candidate | None
    reason: str
    runner_up_reason: str = ""
    over_budget_faster: list[str] = field(default_factory=list)  # faster but excluded
    pareto: list[str] = field(default_factory=list)
    excluded: list[Exclusion] = field(default_factory=list)
    tied: list[str] = field(default_factory=list)  # indistinguishable from the fastest
    comparisons: dict[str, dict[str, Any]] = field(default_factory=dict)  # vs the fastest
    accuracy: dict[str, dict[str, Any]] = field(default_factory=dict)  # per variant
    limits: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # at the limit, chance-level baseline
    metric: Metric = TOP1  # the metric that decided

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "baseline": self.baseline,
            "budget": self.budget,
            "choice": self.choice.to_dict() if self.choice else None,
            "runner_up": self.runner_up.to_dict() if self.runner_up else None,
            "reason": self.reason,
            "runner_up_reason": self.runner_up_reason,
            "over_budget_faster": self.over_budget_faster,
            "pareto": self.pareto,
            "excluded": [e.to_dict() for e in self.excluded],
            "tied": self.tied,
            "comparisons": self.comparisons,
            "accuracy": self.accuracy,
            "constraints": self.limits,
            "notes": self.notes,
            **({} if self.metric.name == TOP1.name else {"metric": self.metric.name}),
        }

    def decision(self) -> dict[str, Any]:
        """What `edgeprune run --json` shows per device: names, reasons, exclusions."""
        return {
            "device": self.device,
            "choice": self.choice.variant if self.choice else None,
            "runner_up": self.runner_up.variant if self.runner_up else None,
            "reason": self.reason,
            "runner_up_reason": self.runner_up_reason,
            "tied": self.tied,
            "excluded": [e.to_dict() for e in self.excluded],
            "constraints": self.limits,
            "accuracy_budget_points": self.budget,
            "notes": self.notes,
        }


def pareto_front(candidates: list[Candidate], metric: Metric = TOP1) -> list[Candidate]:
    """Variants no other variant beats on both latency and the metric, fastest first."""
    known = sorted(
        (c for c in candidates if c.accuracy is not None),
        key=lambda c: (c.p50_ms, -c.goodness(metric)),
    )
    front: list[Candidate] = []
    best = -float("inf")
    for candidate in known:
        if candidate.goodness(metric) > best + TOLERANCE:
            front.append(candidate)
            best = candidate.goodness(metric)
    return front


# ---------------------------------------------------------------- accuracy


def judge_accuracy(
    candidate: Candidate, baseline: Baseline, budget: float | None
) -> dict[str, Any] | None:
    """Top-1 with its Wilson interval and the drop's verdict; None when accuracy is unknown.

    Paired (`stats.accuracy_drop` on the same samples) when both per-sample results are
    there, else `accuracy_drop_unpaired` from the counts, else the point estimate alone
    (`interval: False`, the old rule: drop <= budget).
    """
    if candidate.accuracy is None:
        return None
    if baseline.metric.name != TOP1.name:
        return _judge_metric(candidate, baseline, budget)
    from edgeprune.stats.accuracy import accuracy_drop, accuracy_drop_unpaired, wilson_ci

    info: dict[str, Any] = {"top1": candidate.accuracy, "samples": candidate.accuracy_samples}
    n = candidate.accuracy_samples
    if n:
        low, high = wilson_ci(round(candidate.accuracy * n), n)
        info["top1_ci"] = [low, high]
    if baseline.accuracy is None:
        info["verdict"] = None
        return info
    ours = _bools(candidate.correct)
    theirs = _bools(baseline.correct)
    if ours is not None and theirs is not None and ours.size == theirs.size and ours.size:
        drop = accuracy_drop(theirs, ours, budget)
    elif n and baseline.samples:
        drop = accuracy_drop_unpaired(
            baseline.accuracy, baseline.samples, candidate.accuracy, n, budget
        )
    else:
        points = (baseline.accuracy - candidate.accuracy) * 100.0
        verdict = (
            "no_budget"
            if budget is None
            else "within_budget"
            if points <= budget + TOLERANCE
            else "over_budget"
        )
        info.update(drop_points=points, drop_ci=None, verdict=verdict, interval=False)
        return info
    info.update(drop.to_dict())
    info["interval"] = True
    return info


def _judge_metric(candidate: Candidate, baseline: Baseline, budget: float | None) -> dict[str, Any]:
    """Any metric but top-1: the drop in budget units (Metric.drop) against the budget."""
    metric = baseline.metric
    info: dict[str, Any] = {
        "metric": metric.name,
        "value": candidate.accuracy,
        "samples": candidate.accuracy_samples,
    }
    if baseline.accuracy is None or candidate.accuracy is None:
        info["verdict"] = None
        return info
    drop = drop_value(metric, baseline.accuracy, candidate.accuracy)
    ci = candidate.drop_ci
    if budget is None:
        verdict = "no_budget"
    elif ci is None:  # no interval: the point estimate against the budget
        verdict = "within_budget" if drop <= budget + TOLERANCE else "over_budget"
    elif ci[1] <= budget + TOLERANCE:
        verdict = "within_budget"
    elif ci[0] > budget + TOLERANCE:
        verdict = "over_budget"
    else:
        verdict = "cannot_tell"
    info.update(
        drop_points=drop,
        drop_ci=list(ci) if ci else None,
        verdict=verdict,
        interval=ci is not None,
    )
    return info


def _bools(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    return np.asarray(value, dtype=bool).reshape(-1)


def _accuracy_breach(
    name: str, info: dict[str, Any], budget: float | None, metric: Metric = TOP1
) -> Breach | None:
    verdict = info.get("verdict")
    if verdict in (None, "no_budget", "within_budget"):
        return None
    drop = float(info["drop_points"])
    if metric.name != TOP1.name:
        worse = "below" if metric.higher_is_better else "above"
        interval = info.get("drop_ci")
        within = (
            f" (95 % {drop_text(metric, interval[0])} to {drop_text(metric, interval[1])})"
            if interval
            else ""
        )
        if verdict == "over_budget":
            text = (
                f"{metric.label} {value_text(metric, info.get('value'))} is "
                f"{drop_text(metric, drop)} {worse} the baseline{within}, over the "
                f"{budget_text(metric, budget)} budget"
            )
        else:
            text = (
                f"cannot tell with {info.get('samples') or 'these'} samples whether its "
                f"{metric.label} drop of {drop_text(metric, drop)}{within} is within the "
                f"{budget_text(metric, budget)} budget"
            )
        return Breach("accuracy_budget", budget, drop, text)
    ci = info.get("drop_ci")
    shown = f" (95 % {points(ci[0])} to {points(ci[1])})" if ci else ""
    if verdict == "over_budget":
        text = (
            f"top-1 {pct(info['top1'])} is {points(drop)} points below the baseline{shown}, "
            f"over the {budget:g}-point budget"
        )
    else:
        samples = info.get("samples") or info.get("n") or "these"
        text = (
            f"cannot tell with {samples} samples whether its drop of {points(drop)} points{shown} "
            f"is within the {budget:g}-point budget"
        )
        if info.get("samples_needed"):
            text += f"; about {info['samples_needed']} samples would decide"
    return Breach("accuracy_budget", budget, drop, text)


# ---------------------------------------------------------------- latency


_COMPARED: dict[tuple[int, int], Any] = {}


def compare(slower: Candidate, faster: Candidate) -> Any:
    """`stats.compare_samples` with `slower` as the baseline: speed-up = its p50 / faster's.

    None when either has no kept latencies (or too few runs for an interval). Memoised on
    the two samples (a bootstrap is not free and the reasons ask for the same pairs).
    """
    if slower.sample is None or faster.sample is None:
        return None
    key = (id(slower.sample), id(faster.sample))
    if key not in _COMPARED:
        from edgeprune.stats.compare import compare_samples

        if len(_COMPARED) > 256:
            _COMPARED.clear()
        _COMPARED[key] = (
            slower.sample,
            faster.sample,
            compare_samples(slower.sample, faster.sample),
        )
    return _COMPARED[key][2]


def _ratio_text(estimate: Any, slower: Candidate, faster: Candidate) -> str:
    """'ratio 1.01, 0.98–1.03' (three decimals when the interval is narrower than 0.02)."""
    if estimate is None:
        ratio = slower.p50_ms / faster.p50_ms if faster.p50_ms else float("inf")
        return f"ratio {ratio:.2f}, no interval: too few latencies kept"
    low, high = estimate.ci
    digits = 3 if high - low < 0.02 else 2
    text = f"ratio {estimate.speedup:.{digits}f}, {low:.{digits}f}–{high:.{digits}f}"
    if estimate.rounds:
        text += f", paired over {estimate.rounds} rounds"
    if estimate.verdict == "indistinguishable" and (low > 1 or high < 1):
        text += f": inside the {NOISE_FLOOR * 100:g} % noise floor"
    return text


def _separated(estimate: Any, slower: Candidate, faster: Candidate) -> bool:
    """Whether `faster` is faster than `slower` beyond doubt (95 %, past the noise floor)."""
    if estimate is None:
        return slower.p50_ms > faster.p50_ms * (1 + NOISE_FLOOR)
    return bool(estimate.verdict == "faster")


# ---------------------------------------------------------------- the rule


def recommend(
    device: str,
    candidates: list[Candidate],
    baseline: float | Baseline | None,
    budget: float | None,
    limits: ConstraintOptions | None = None,
) -> Recommendation:
    """The pick (see the module's rule), the runner-up, what was excluded, and why."""
    base = baseline if isinstance(baseline, Baseline) else Baseline(baseline)
    metric = base.metric
    limits = limits or ConstraintOptions()
    by_speed = sorted(candidates, key=lambda c: (c.p50_ms, -c.goodness(metric), c.variant))
    rec = Recommendation(device, base.accuracy, budget, None, None, "no variant was measured")
    rec.metric = metric
    rec.pareto = [c.variant for c in pareto_front(candidates, metric)]
    rec.limits = {**limits.model_dump(), "latency_percentile": limits.percentile}
    chance = base.chance_note()
    if chance:
        rec.notes.append(chance)
    if not by_speed:
        return rec
    eligible: list[Candidate] = []
    for candidate in by_speed:
        breaks, notes = check(limits, candidate.measured())
        rec.notes += [f"{candidate.variant}: {note}" for note in notes]
        info = judge_accuracy(candidate, base, budget)
        if info is not None:
            rec.accuracy[candidate.variant] = info
            accuracy_breach = _accuracy_breach(candidate.variant, info, budget, metric)
            if accuracy_breach is not None:
                breaks.insert(0, accuracy_breach)
        if breaks:
            rec.excluded.append(Exclusion(candidate.variant, breaks))
        else:
            eligible.append(candidate)
    if not eligible:
        rec.reason = _nothing_fits(rec, base, budget, by_speed)
        return rec
    fastest = eligible[0]
    tied = [fastest]
    for other in eligible[1:]:
        estimate = compare(other, fastest)
        if estimate is not None:
            rec.comparisons[other.variant] = {"against": fastest.variant, **estimate.to_dict()}
        if not _separated(estimate, other, fastest):
            tied.append(other)
    ranked = sorted(
        tied,
        key=lambda c: (
            -c.goodness(metric),
            c.bytes_key(),
            c.p50_ms,
            c.variant,
        ),
    )
    choice = ranked[0]
    rest = [c for c in eligible if c is not choice]
    runner = ranked[1] if len(ranked) > 1 else (rest[0] if rest else None)
    rec.choice, rec.runner_up = choice, runner
    rec.tied = [c.variant for c in ranked] if len(ranked) > 1 else []
    rec.reason = _reason(choice, ranked, fastest, eligible, rec, base, budget, limits)
    rec.runner_up_reason = _runner_up_reason(choice, runner, metric)
    rec.over_budget_faster = [
        e.text() for e in rec.excluded if _by_name(by_speed, e.variant).p50_ms < choice.p50_ms
    ]
    if rec.over_budget_faster:
        rec.reason += "; faster but excluded: " + "; ".join(rec.over_budget_faster)
    return rec


def _by_name(candidates: list[Candidate], name: str) -> Candidate:
    return next(c for c in candidates if c.variant == name)


def _what_is_met(budget: float | None, base: Baseline, limits: ConstraintOptions) -> str:
    parts = []
    metric = base.metric
    if budget is not None and base.accuracy is not None and metric.name != TOP1.name:
        within = f"{budget:g} point(s)" if metric.unit == FRACTION else f"{budget:.4g}"
        parts.append(
            f"within {within} of the baseline's {metric.label} {value_text(metric, base.accuracy)}"
        )
    elif budget is not None and base.accuracy is not None:
        parts.append(f"within {budget:g} point(s) of the baseline's top-1 {pct(base.accuracy)}")
    if not limits.is_empty():
        parts.append(f"meeting {limits.describe()}")
    if not parts:
        return "no accuracy budget" if budget is None else "accuracy unknown (no data)"
    return " and ".join(parts)


def _figures(c: Candidate, info: dict[str, Any] | None, metric: Metric = TOP1) -> str:
    ci = c.latency_ci.get(50)
    text = f"p50 {ms(c.p50_ms)} ms"
    if ci:
        text += f" (95 % {ms(ci[0])}–{ms(ci[1])})"
    text += f" at {c.threads} thread(s)"
    if c.accuracy is not None and metric.name != TOP1.name:
        text += f", {metric.label} {value_text(metric, c.accuracy)}"
    elif c.accuracy is not None:
        text += f", top-1 {pct(c.accuracy)}"
        if info and info.get("top1_ci"):
            low, high = info["top1_ci"]
            text += f" (95 % {pct(low)}–{pct(high)}, n={info.get('samples')})"
    return text


def _reason(
    choice: Candidate,
    ranked: list[Candidate],
    fastest: Candidate,
    eligible: list[Candidate],
    rec: Recommendation,
    base: Baseline,
    budget: float | None,
    limits: ConstraintOptions,
) -> str:
    what = _what_is_met(budget, base, limits)
    metric = base.metric
    figures = _figures(choice, rec.accuracy.get(choice.variant), metric)
    if len(ranked) == 1:
        text = f"fastest of {len(eligible)} variant(s) ({what}): {figures}"
        if len(eligible) > 1:
            second = eligible[1]
            estimate = compare(second, choice)
            verb = "clearly faster" if estimate is not None else "faster beyond the 2 % noise floor"
            text += (
                f"; {verb} than {second.variant} at 95 % ({_ratio_text(estimate, second, choice)})"
            )
        return text
    others = [c for c in ranked if c is not fastest]
    ratios = ", ".join(
        f"{c.variant} {_ratio_text(compare(c, fastest), c, fastest)}" for c in others
    )
    if len(ranked) == 2:
        slow = others[0]
        text = (
            f"{ranked[0].variant} and {ranked[1].variant} are indistinguishable at 95 % "
            f"({_ratio_text(compare(slow, fastest), slow, fastest)})"
        )
    else:
        names = ", ".join(c.variant for c in ranked[:-1]) + f" and {ranked[-1].variant}"
        text = (
            f"{names} are indistinguishable at 95 % from the fastest, {fastest.variant} ({ratios})"
        )
    second = ranked[1]
    if (
        choice.accuracy is not None
        and second.accuracy is not None
        and choice.goodness(metric) - second.goodness(metric) > TOLERANCE
    ):
        diff = drop_value(metric, choice.accuracy, second.accuracy)
        better = "more accurate" if metric.name == TOP1.name else f"better in {metric.label}"
        more = better if len(ranked) == 2 else f"{better} than the next, {second.variant}"
        shown = f"{points(diff)} points" if metric.name == TOP1.name else drop_text(metric, diff)
        text += f"; {choice.variant} is {shown} {more}"
    elif choice.bytes_key() < second.bytes_key():
        same = "equally accurate" if choice.accuracy is not None else "accuracy unknown"
        unit = "gzip" if choice.gzip_bytes and second.gzip_bytes else "file"
        text += (
            f"; {same}, {choice.variant} is smaller ({choice.bytes_key() / 1e3:.1f} kB {unit} vs "
            f"{second.bytes_key() / 1e3:.1f} kB)"
        )
    else:
        text += f"; {choice.variant} is the fastest of them"
    return f"{text} (of {len(eligible)} variant(s) {what}): {figures}"


def _nothing_fits(
    rec: Recommendation, base: Baseline, budget: float | None, by_speed: list[Candidate]
) -> str:
    """Which constraint excluded the last variants (those breaking the fewest), and by how much."""
    fewest = min(len(e.breaks) for e in rec.excluded)
    closest = [e for e in rec.excluded if len(e.breaks) == fewest][:3]
    if base.metric.name != TOP1.name and all(
        b.constraint == "accuracy_budget" for e in rec.excluded for b in e.breaks
    ):
        metric = base.metric
        known = [c for c in by_speed if c.accuracy is not None]
        best = max(known, key=lambda c: c.goodness(metric))
        worse = "below" if metric.higher_is_better else "above"
        return (
            f"no variant is within the {budget_text(metric, budget)} budget of the baseline's "
            f"{metric.label} {value_text(metric, base.accuracy)}; the best is {best.variant} "
            f"({value_text(metric, best.accuracy)}, "
            f"{drop_text(metric, best.drop_points(base.accuracy, metric))} {worse}): "
            "raise the budget or train longer"
        )
    if all(b.constraint == "accuracy_budget" for e in rec.excluded for b in e.breaks):
        known = [c for c in by_speed if c.accuracy is not None]
        best = max(known, key=lambda c: c.accuracy or 0.0)
        cannot = [e.variant for e in rec.excluded if e.breaks[0].text.startswith("cannot tell")]
        text = (
            f"no variant is within {budget:g} point(s) of the baseline's top-1 "
            f"{pct(base.accuracy)} at 95 %; the most accurate is {best.variant} "
            f"({pct(best.accuracy)}, {points(best.drop_points(base.accuracy))} points below)"
        )
        if cannot:
            text += (
                f"; {', '.join(cannot)}: cannot tell with these samples "
                f"({closest[0].breaks[0].text}): validate on more samples"
            )
        return text + ": raise the budget or train longer"
    parts = [
        f"{e.variant} breaks {' and '.join(b.constraint for b in e.breaks)}: "
        + "; ".join(b.text for b in e.breaks)
        for e in closest
    ]
    names = sorted({b.constraint for e in closest for b in e.breaks})
    return (
        f"no variant meets every constraint; {' and '.join(names)} excluded the last "
        f"variant(s): " + " | ".join(parts)
    )


def _runner_up_reason(choice: Candidate, runner: Candidate | None, metric: Metric = TOP1) -> str:
    if runner is None:
        return "no other variant meets every constraint"
    estimate = compare(runner, choice)
    ratio = _ratio_text(estimate, runner, choice)
    if estimate is None:
        text = f"p50 {ms(runner.p50_ms)} ms ({ratio})"
    elif estimate.verdict == "faster":
        text = f"slower than the pick at 95 % ({ratio}; p50 {ms(runner.p50_ms)} ms)"
    elif estimate.verdict == "slower":
        text = f"faster than the pick at 95 % ({ratio}; p50 {ms(runner.p50_ms)} ms)"
    else:
        text = f"indistinguishable from the pick at 95 % ({ratio}; p50 {ms(runner.p50_ms)} ms)"
        if estimate.runs_to_decide:
            text += f"; about {estimate.runs_to_decide} runs each would separate them"
    if runner.accuracy is not None and choice.accuracy is not None and metric.name != TOP1.name:
        diff = -drop_value(metric, choice.accuracy, runner.accuracy)  # + = runner is better
        side = "better" if diff > TOLERANCE else "worse" if diff < -TOLERANCE else "as good as"
        amount = "" if side == "as good as" else f"{drop_text(metric, abs(diff))} "
        text += (
            f", {metric.label} {value_text(metric, runner.accuracy)} ({amount}{side} "
            f"{'than' if amount else ''} the pick)".replace("  ", " ").replace(" )", ")")
        )
        if diff > TOLERANCE:
            text += "; take it if that is worth the time"
    elif runner.accuracy is not None and choice.accuracy is not None:
        diff = (runner.accuracy - choice.accuracy) * 100.0
        text += f", top-1 {pct(runner.accuracy)} ({points(diff, signed=True)} points vs the pick)"
        if diff > TOLERANCE:
            text += "; take it if those points are worth the time"
    if runner.gzip_bytes and choice.gzip_bytes and runner.gzip_bytes < choice.gzip_bytes:
        text += (
            f"; smaller on the wire ({runner.gzip_bytes / 1e3:.0f} kB gzip vs "
            f"{choice.gzip_bytes / 1e3:.0f} kB)"
        )
    return text
