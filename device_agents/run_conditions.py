"""The conditions a benchmark ran under, and the named warnings that flag noisy numbers.

A board that throttles, runs an on-demand governor or is busy still gets measured; its
numbers come back with warnings that say why they may not be comparable, never hidden.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

from .probes import thermal_snapshot
from .protocol import Measurement, Warning_

SPREAD_BOUND = 1.25  # p90 / p50 above this: the run was disturbed (a quiet board shows < 1.1)
SAMPLE_INTERVAL_S = 2.0


class ThermalWatch:
    """Snapshots before, every few seconds during, and after a job's measurements."""

    def __init__(
        self,
        cpus: Optional[List[int]] = None,
        root: str = "/",
        interval_s: float = SAMPLE_INTERVAL_S,
    ) -> None:
        self.cpus = cpus
        self.root = root
        self.interval_s = interval_s
        self.before: Dict[str, Any] = {}
        self.after: Dict[str, Any] = {}
        self.samples: List[Dict[str, Any]] = []
        self._last = 0.0

    def start(self) -> None:
        self.before = thermal_snapshot(self.root, self.cpus)
        self._last = time.monotonic()

    def tick(self) -> None:
        """Called while a measurement runs; samples at most once per interval."""
        if time.monotonic() - self._last >= self.interval_s:
            self._last = time.monotonic()
            self.samples.append(thermal_snapshot(self.root, self.cpus))

    def stop(self) -> None:
        self.after = thermal_snapshot(self.root, self.cpus)

    def summary(self) -> Dict[str, Any]:
        snapshots = [s for s in [self.before, *self.samples, self.after] if s]
        temps = [s["temperature_c"] for s in snapshots if s.get("temperature_c") is not None]
        return {
            "before": self.before,
            "after": self.after,
            "samples_during": len(self.samples),
            "max_temperature_c": max(temps) if temps else None,
            "throttling": throttling_seen(self.before, self.samples, self.after),
            "governors": governors(self.before),
        }


def governors(snapshot: Dict[str, Any]) -> Dict[str, List[int]]:
    """{governor: [cpus]} for the CPUs the snapshot covered (empty without cpufreq)."""
    found: Dict[str, List[int]] = {}
    for clock in snapshot.get("clocks") or []:
        if clock.get("governor"):
            found.setdefault(clock["governor"], []).append(clock["cpu"])
    return found


def throttling_seen(
    before: Dict[str, Any], samples: List[Dict[str, Any]], after: Dict[str, Any]
) -> Dict[str, Any]:
    """Throttling / under-voltage during the run, from the Pi firmware or x86 counters."""
    evidence: List[str] = []
    throttled = under_voltage = False
    pi_states = [
        (s.get("raspberry_pi") or {}).get("throttled") for s in [before, *samples, after] if s
    ]
    for state in pi_states:
        if not state:
            continue
        now = state["now"]
        if now["under_voltage"]:
            under_voltage = True
            evidence.append(f"under-voltage reported ({state['raw']})")
        if now["throttled"] or now["frequency_capped"] or now["soft_temperature_limit"]:
            throttled = True
            evidence.append(f"throttling reported ({state['raw']})")
    first, last = (pi_states[0], pi_states[-1]) if pi_states else (None, None)
    if first and last:
        for name, happened in last["since_boot"].items():
            if happened and not first["since_boot"][name]:
                evidence.append(f"{name} first happened during this run")
                if name == "under_voltage":
                    under_voltage = True
                else:
                    throttled = True
    count_before = (before or {}).get("x86_throttle_count")
    count_after = (after or {}).get("x86_throttle_count")
    if count_before is not None and count_after is not None and count_after > count_before:
        throttled = True
        evidence.append(f"kernel thermal-throttle count rose by {count_after - count_before}")
    return {
        "throttled": throttled,
        "under_voltage": under_voltage,
        "evidence": sorted(set(evidence)),
    }


def noise_warnings(
    conditions: Dict[str, Any], measurements: List[Measurement], threads_cap: Optional[int]
) -> List[Warning_]:
    """Named warnings for a governor other than performance, throttling, spread, oversubscription."""
    found: List[Warning_] = []
    slow = {g: cpus for g, cpus in conditions.get("governors", {}).items() if g != "performance"}
    if slow:
        names = ", ".join(f"'{g}' on CPUs {_cpu_list(c)}" for g, c in sorted(slow.items()))
        found.append(
            Warning_(
                "governor_not_performance",
                f"CPU frequency governor is {names}, not 'performance': latencies include clock "
                "ramp-up; set it with: echo performance | sudo tee "
                "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor",
            )
        )
    throttling = conditions.get("throttling") or {}
    if throttling.get("under_voltage"):
        found.append(
            Warning_(
                "under_voltage",
                "the board reported under-voltage during the run ("
                + "; ".join(e for e in throttling["evidence"] if "under" in e)
                + "): use a stronger power supply; these numbers may be slowed",
            )
        )
    if throttling.get("throttled"):
        found.append(
            Warning_(
                "throttled",
                "the CPU was throttled or frequency-capped during the run ("
                + "; ".join(e for e in throttling["evidence"] if "under" not in e)
                + "): add cooling; these numbers are slower than the board can do",
            )
        )
    for m in measurements:
        if m.summary is not None and m.summary.p50 > 0:
            spread = m.summary.p90 / m.summary.p50
            if spread > SPREAD_BOUND:
                found.append(
                    Warning_(
                        "high_spread",
                        f"threads={m.threads}: p90/p50 = {spread:.2f} > {SPREAD_BOUND}: the "
                        "board was busy or its clock moved during the run",
                    )
                )
    if threads_cap is not None:
        over = sorted({m.threads for m in measurements if m.threads > threads_cap})
        if over:
            found.append(
                Warning_(
                    "threads_exceed_cpus",
                    f"threads {', '.join(map(str, over))} exceed the {threads_cap} CPU(s) the "
                    "benchmark may use: threads compete for cores",
                )
            )
    return found


def _cpu_list(cpus: List[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))
