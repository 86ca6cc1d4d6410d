"""Every warning code the agent (or the host) can attach to a result, in plain words, with the fix.

The agent keeps codes short (`high_spread`) so results stay small and machine-readable; a
person needs to know what the code means for the number next to it and what to do about it.
Every view (terminal, Markdown, HTML, recipe reports) prints a legend built from `legend()`
for the codes it shows. tests/test_warning_codes.py parses device_agents/ for every
`Warning_("code", ...)` and fails when one is missing here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class WarningExplanation:
    """What a warning code means for the numbers, and how to get numbers without it."""

    code: str
    meaning: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "meaning": self.meaning, "fix": self.fix}

    def line(self) -> str:
        """One line for a legend under a table: "code: meaning. Fix: fix"."""
        return f"{self.code}: {self.meaning}. Fix: {self.fix}"


CATALOGUE: dict[str, WarningExplanation] = {
    w.code: w
    for w in (
        WarningExplanation(
            "high_spread",
            "the slow runs (p90) took much longer than the typical run (p50): the board was "
            "busy, its clock moved or it got hot while measuring, so single numbers are shaky",
            "stop other load on the board, set the 'performance' governor, and measure again "
            "with more runs or --precision (intervals and verdicts already account for the "
            "spread)",
        ),
        WarningExplanation(
            "throttled",
            "the CPU was throttled or frequency-capped during the run: the latencies are slower "
            "than the board can do",
            "add cooling (heatsink, fan), leave time between runs (--delay-ms), and measure again",
        ),
        WarningExplanation(
            "under_voltage",
            "the board reported under-voltage during the run: it slows itself down and the "
            "numbers may be slowed",
            "use a stronger power supply (and a short, thick cable), then measure again",
        ),
        WarningExplanation(
            "governor_not_performance",
            "the CPU frequency governor is not 'performance': latencies include the clock "
            "ramping up and vary from run to run",
            "on the board: echo performance | sudo tee "
            "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor",
        ),
        WarningExplanation(
            "threads_exceed_cpus",
            "more threads were asked for than CPUs the benchmark may use: threads compete for "
            "cores, so these thread counts are slower than they should be",
            "bench with --threads no higher than the board's CPU count (see `edgeprune devices "
            "check`)",
        ),
        WarningExplanation(
            "sparse_path_unavailable",
            "the model stores sparse weights but this board's runtime did not use XNNPACK's "
            "sparse kernels: it ran dense, so pruning bought no speed here",
            "install a runtime with XNNPACK sparse inference (pip install ai-edge-litert) and "
            "keep XNNPACK on, or ship the dense model",
        ),
        WarningExplanation(
            "int8_without_xnnpack",
            "tflite-runtime ran the quantized ops with its built-in kernels, not XNNPACK: int8 "
            "numbers are not what XNNPACK would give",
            "install ai-edge-litert on the board (pip install ai-edge-litert) and measure again",
        ),
        WarningExplanation(
            "int16x8_without_xnnpack",
            "the model is int16x8 (16-bit activations): XNNPACK does not delegate its ops, so "
            "they ran on TFLite's reference kernels, typically much slower than int8 or float",
            "ship int8 (with --keep-float for the layers int8 hurts) or float16 where speed "
            "matters; keep int16x8 where its accuracy is needed",
        ),
        WarningExplanation(
            "rerun_after_interruption",
            "the agent stopped while this job ran and measured it again: the numbers are from "
            "a later attempt, which may have run under different conditions",
            "see why the agent stopped in logs/agent.log of its directory on the board (power, "
            "memory, a reboot) and bench again if the conditions matter",
        ),
        WarningExplanation(
            "fork_server_unavailable",
            "the agent's fork server could not start, so each benchmark process was a new "
            "Python that imported the runtime: the numbers are as valid, the job took longer",
            "read the reason in the warning (often a runtime that fails to import); upgrade the "
            "agent (edgeprune agent install) if it persists",
        ),
    )
}

UNKNOWN_FIX = "see the warning's message in the result (`edgeprune results show --json`)"


def explain(code: str) -> WarningExplanation:
    """The catalogue entry of `code`; a code this host does not know (a newer agent) still gets a
    line, so no view ever drops a warning."""
    known = CATALOGUE.get(code)
    if known is not None:
        return known
    return WarningExplanation(
        code, "a warning this version of edgeprune does not know", UNKNOWN_FIX
    )


def legend(codes: Iterable[str]) -> list[WarningExplanation]:
    """One explanation per distinct code, in first-seen order: the legend under a table."""
    return [explain(code) for code in dict.fromkeys(c for c in codes if c)]
