"""How the fleet commands show what happened on the devices: progress, tables, failures."""

from __future__ import annotations

import sys
from typing import Any

from rich.table import Table

from edgeprune.cli.common import console


def human_bytes(value: int | None) -> str:
    if value is None:
        return "–"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


def print_failed_devices(group: Any) -> None:
    """One `error:` line on stderr per device that failed."""
    for outcome in group.failed:
        print(f"error: {outcome.message}", file=sys.stderr)


def print_interrupted(group: Any, what: str) -> None:
    """After Ctrl-C: one line per device saying where it stopped (the CLI then exits 130)."""
    print(f"{what} interrupted:", file=sys.stderr)
    for outcome in group:
        print(
            f"  {outcome.device.name}: {'done' if outcome.ok else outcome.message}", file=sys.stderr
        )


def report_failures(group: Any, what: str) -> None:
    """Print one `error:` line per failed device, then fail the command (exit 3) if any did."""
    from edgeprune.fleet.deploy import require_success

    print_failed_devices(group)
    require_success(group, what)


def outcome_documents(group: Any) -> list[dict[str, Any]]:
    """Per device: ok/error plus its result's own `to_dict()` (check, install)."""
    return [
        {"device": o.device.name, "ok": o.ok, "error": None if o.ok else o.message}
        | (o.value.to_dict() if o.value else {})
        for o in group
    ]


def print_deploy_table(group: Any) -> None:
    table = Table(title="deploy")
    for column in ("device", "model", "status", "sent", "seconds"):
        table.add_column(column)
    for outcome in group:
        if not outcome.ok:
            table.add_row(
                outcome.device.name, "–", "[red]failed[/red]", "–", f"{outcome.seconds:.2f}"
            )
            continue
        for item in outcome.value:
            status = "already there" if item.status == "present" else "sent"
            if item.retries:
                status += f" (after {item.retries} retr{'y' if item.retries == 1 else 'ies'})"
            table.add_row(
                item.device, item.name, status, human_bytes(item.bytes_sent), f"{item.seconds:.2f}"
            )
    console.print(table)


def print_check_table(group: Any) -> None:
    """`devices check`: one row per device."""
    from edgeprune.fleet.transport import ConnectionLost

    table = Table(title="device check")
    for column in (
        "device",
        "reachable",
        "python",
        "runtime",
        "agent",
        "free disk",
        "daemon",
        "problems",
    ):
        table.add_column(column)
    for o in group:
        h = o.value
        if h is None:
            reached = "[red]no[/red]" if isinstance(o.error, ConnectionLost) else "yes"
            table.add_row(o.device.name, reached, "–", "–", "–", "–", "–", o.message)
            continue
        runtime = (
            f"{h.runtime} {h.runtime_version or ''}".strip() if h.runtime else "[red]none[/red]"
        )
        daemon = "–" if h.daemon_running is None else ("running" if h.daemon_running else "stopped")
        table.add_row(
            h.device,
            "yes",
            f"{h.python} {h.machine}",
            runtime,
            h.agent_version or "[yellow]not installed[/yellow]",
            human_bytes(h.free_bytes),
            daemon,
            "; ".join(h.problems) or "–",
        )
    console.print(table)


def print_install_table(group: Any) -> None:
    """`agent install`: one row per device, then each device's hint and problems."""
    table = Table(title="agent install")
    columns = ("device", "board", "agent", "python", "runtime", "from", "sparse path", "service")
    for column in columns:
        table.add_column(column)
    for o in group:
        r = o.value
        if r is None:
            table.add_row(o.device.name, "[red]failed[/red]", *["–"] * (len(columns) - 2))
            continue
        rt = f"{r.runtime.get('name')} {r.runtime.get('version', '')}" if r.runtime else "none"
        sparse = "–" if r.sparse_path is None else ("yes" if r.sparse_path["capable"] else "no")
        table.add_row(
            r.device,
            r.board or r.machine,
            r.agent_version,
            r.python,
            rt,
            r.runtime_source,
            sparse,
            r.service,
        )
    console.print(table)
    for o in group.succeeded:
        if o.value.hint:
            console.print(o.value.hint)
        for problem in o.value.problems:
            console.print(f"[yellow]{o.device.name}: {problem}[/yellow]")
