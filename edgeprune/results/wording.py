"""The words every view uses for a latency and a comparison, so terminal, HTML, Markdown and
`repr()` say the same thing: "0.0159 ms ±1.2 %", "2.41× (2.30–2.55) faster",
"1.01× (0.98–1.03) indistinguishable, needs ~400 more runs to decide".

Inputs are summary/compare row dicts (see `tables`); only the standard library is used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

SHORT_VERDICT = {
    "baseline": "baseline",
    "faster": "faster",
    "slower": "slower",
    "indistinguishable": "indist.",
}
VERDICT_KEY = (
    "indist. = indistinguishable at 95 % (the speed-up's interval takes in 1×, or it is within "
    "±2 %); + = more runs would decide it (see above)"
)


def number(value: float | None) -> str:
    """Three significant digits (0.0159, 12.3, 2.50), whole numbers from 100 up."""
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:#.3g}"


def half_width(p50: float | None, interval: Sequence[float] | None) -> float | None:
    """max(p50 - low, high - p50) / p50: how precisely the median is known, as a fraction."""
    if not p50 or not interval:
        return None
    return max(p50 - interval[0], interval[1] - p50) / p50


def plus_minus(p50: float | None, interval: Sequence[float] | None) -> str:
    """ "±1.2 %", or "" when there is no interval."""
    width = half_width(p50, interval)
    return "" if width is None else f"±{width * 100:.1f} %"


def latency(p50: float | None, interval: Sequence[float] | None, unit: str = " ms") -> str:
    """ "0.0159 ms ±1.2 %" (no interval: "0.0159 ms"; no value: "–")."""
    if p50 is None:
        return "–"
    spread = plus_minus(p50, interval)
    return f"{number(p50)}{unit}" + (f" {spread}" if spread else "")


def speedup(row: dict[str, Any]) -> str:
    """ "2.41× (2.30–2.55)"; baseline "1×"; no interval "2.41×"; none "–"."""
    value = row.get("speedup")
    if row.get("verdict") == "baseline":
        return "1×"
    if value is None:
        return "–"
    ci = row.get("speedup_ci")
    return f"{value:.2f}×" + (f" ({ci[0]:.2f}–{ci[1]:.2f})" if ci else "")


def more_runs(row: dict[str, Any]) -> int | None:
    """About how many more runs per model would decide an indistinguishable verdict."""
    needed = row.get("runs_to_decide")
    if row.get("verdict") != "indistinguishable" or not needed:
        return None
    runs = row.get("runs")
    have = min(runs.values()) if isinstance(runs, dict) and runs else runs
    return max(int(needed) - int(have or 0), 1)


def verdict(row: dict[str, Any], short: bool = False) -> str:
    """The verdict, with "needs ~N more runs to decide" when more runs would settle it.

    `short` is for a table cell: "indist.+" marks a verdict more runs would decide, and the
    caller prints `undecided_note` under the table. Rows without a verdict (no raw runs, too
    few runs) say why instead of staying blank.
    """
    found = row.get("verdict")
    if found is None:
        if row.get("speedup") is None:
            return "–"
        return "? (few runs)" if short else "no interval (too few runs)"
    more = more_runs(row)
    if short:
        return SHORT_VERDICT.get(found, found) + ("+" if more else "")
    return found + (f", needs ~{more} more runs to decide" if more else "")


def undecided_note(row: dict[str, Any]) -> str | None:
    """ "indistinguishable at 95 %; needs ~N more runs per model to decide" (None if decided)."""
    more = more_runs(row)
    if not more:
        return None
    return f"indistinguishable at 95 %; needs ~{more} more runs per model to decide"


def comparison(row: dict[str, Any]) -> str:
    """ "2.41× (2.30–2.55) faster": the speed-up with its interval and verdict."""
    if row.get("verdict") == "baseline":
        return "baseline"
    said = speedup(row)
    if said == "–":
        return "–"
    return f"{said} {verdict(row)}"


def method_note(rows: Iterable[dict[str, Any]]) -> str | None:
    """One line on how the speed-ups were judged (the methods the rows used)."""
    methods = sorted({r["method"] for r in rows if r.get("method")})
    if not methods:
        return None
    return (
        "speed-up = baseline p50 / p50 with its 95 % interval ("
        + " and ".join(methods)
        + " bootstrap); within ±2 % is never called faster or slower"
    )


def sparse_path_of(row: dict[str, Any]) -> dict[str, Any]:
    """The agent's answer to "can this runtime take XNNPACK's sparse path here?" for a row
    ({"capable", "reason", "fix"}; {} when not known): a summary row's `sparse_path`, else
    the stored result's."""
    found = row.get("sparse_path")
    if not isinstance(found, dict):
        result = row.get("result")
        found = result.get("sparse_path") if isinstance(result, dict) else None
    return found if isinstance(found, dict) else {}


def sparse_path_notes(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Per device whose runtime will not take XNNPACK's sparse path (x86, a runtime without
    it): why a pruned fp32 model is no faster there than the dense one, and the fix."""
    notes: dict[str, str] = {}
    for row in rows:
        support = sparse_path_of(row)
        device = str(row.get("device"))
        if support.get("capable") is not False or device in notes:
            continue
        reason = support.get("reason") or "this runtime does not take XNNPACK's sparse path"
        fix = support.get("fix")
        notes[device] = (
            f"{device}: pruned fp32 models are not faster than dense ones here: {reason}"
            + (f" (fix: {fix})" if fix else "")
        )
    return list(notes.values())
