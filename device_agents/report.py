"""Plain-text views of a Result and of the doctor report, for a person at a terminal."""

from __future__ import annotations

from typing import Any, Dict, List

from .protocol import Result


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def _ci(interval: Any) -> str:
    return "-" if not interval else f"{interval[0]:.3f}-{interval[1]:.3f}"


def format_result(result: Result) -> str:
    runtime = result.runtime or {}
    lines = [
        f"job {result.job_id}  model {result.model_sha256[:12]}  "
        f"runtime {runtime.get('name', '?')} {runtime.get('version', '')}  status {result.status}"
    ]
    if result.members:
        lines[0] = (
            f"group job {result.job_id}: {len(result.members)} models measured in alternating "
            f"rounds  runtime {runtime.get('name', '?')} {runtime.get('version', '')}  "
            f"status {result.status}"
        )
        if result.error:
            lines.append(f"error ({result.error_kind or 'error'}): {result.error}")
        for member in result.members:
            label = f"  ({member.label})" if member.label else ""
            lines.append("")
            lines.append(f"member {member.job_id}{label}")
            lines.extend("  " + line for line in format_result(member).splitlines())
        return "\n".join(lines)
    if result.error:
        lines.append(f"error ({result.error_kind or 'error'}): {result.error}")
    if result.measurements:
        header = ["threads", "xnnpack", "p50 ms", "p50 95% CI", "p90 ms", "min ms", "mean ms",
                  "runs", "rounds", "init ms", "first ms", "peak RSS MiB"]  # fmt: skip
        rows: List[List[str]] = [header]
        for m in result.measurements:
            s = m.summary
            rows.append(
                [
                    str(m.threads),
                    "on" if m.xnnpack else "off",
                    _ms(s.p50 if s else None),
                    _ci(s.p50_ci if s else None),
                    _ms(s.p90 if s else None),
                    _ms(s.min if s else None),
                    _ms(s.mean if s else None),
                    str(s.count) if s else "-",
                    str(len(m.rounds)) if m.rounds else "-",
                    _ms(m.init_ms),
                    _ms(m.first_invoke_ms),
                    "-" if m.peak_rss_kb is None else f"{m.peak_rss_kb / 1024:.1f}",
                ]
            )
            if m.status != "ok":
                rows.append([f"  error ({m.error_kind}): {m.error}"])
            if m.precision:
                rows.append([f"  {_precision(m.precision)}"])
        widths = [max(len(r[i]) for r in rows if len(r) > 1) for i in range(len(header))]
        for row in rows:
            if len(row) == 1:
                lines.append(row[0])
            else:
                lines.append("  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)))
    sparse = result.sparse_path or {}
    if sparse:
        lines.append(
            f"sparse path: {'expected' if sparse.get('expected') else 'not expected'} "
            f"({sparse.get('reason', '')})"
        )
    thermal = result.thermal or {}
    if thermal.get("max_temperature_c") is not None:
        lines.append(f"max temperature {thermal['max_temperature_c']:.1f} C")
    for warning in result.warnings:
        lines.append(f"warning {warning.code}: {warning.message}")
    return "\n".join(lines)


def _precision(precision: Dict[str, Any]) -> str:
    half = precision.get("half_width")
    got = "no interval yet" if half is None else f"+/-{100 * half:.1f} %"
    verdict = "reached" if precision.get("reached") else "NOT reached"
    return (
        f"precision {100 * precision['target']:g} % {verdict}: median {got} after "
        f"{precision.get('runs')} runs in {precision.get('seconds', 0):.2f} s"
    )


def format_doctor(report: Dict[str, Any]) -> str:
    device = report["device"]
    runtime = report["runtime"]
    spool = report["spool"]
    daemon = report["daemon"]
    lines = [
        f"agent      {report['agent_version']} on Python {report['python']}",
        f"board      {device.get('board')}  ({device.get('cpu_model')}, {device.get('cores')} cores)",
        f"kernel     {device.get('kernel')}  {device.get('distribution') or ''}".rstrip(),
        "runtime    "
        + (f"{runtime['name']} {runtime['version']}" if runtime else "none")
        + f"  (available: {', '.join(report['runtimes_available']) or 'none'})",
        f"sparse     {'yes' if report['sparse_path']['capable'] else 'no'}: "
        f"{report['sparse_path']['reason']}",
        f"spool      {spool['path']}  queued {spool['queued']}, running {spool['running']}, "
        f"results {spool['results']}",
        "daemon     " + (f"running (pid {daemon['pid']})" if daemon["running"] else "not running"),
    ]
    if report["problems"]:
        lines.append("problems:")
        lines.extend(f"  - {p}" for p in report["problems"])
    else:
        lines.append("problems   none")
    return "\n".join(lines)
