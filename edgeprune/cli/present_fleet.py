"""How the fleet commands show what happened on the devices: progress, tables, failures."""

from __future__ import annotations

import sys
from typing import Any

from rich.table import Table

from edgeprune.cli.common import console
from edgeprune.cli.present_table import Name, compact_table, print_table


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
    table = compact_table("deploy")
    for column in ("device", "model", "status", "sent", "seconds"):
        table.add_column(column, no_wrap=column in ("sent", "seconds"))
    for outcome in group:
        if not outcome.ok:
            table.add_row(
                Name(outcome.device.name), "–", "[red]failed[/red]", "–", f"{outcome.seconds:.2f}"
            )
            continue
        for item in outcome.value:
            status = "already there" if item.status == "present" else "sent"
            if item.retries:
                status += f" (after {item.retries} retr{'y' if item.retries == 1 else 'ies'})"
            table.add_row(
                Name(item.device),
                Name(item.name),
                status,
                human_bytes(item.bytes_sent),
                f"{item.seconds:.2f}",
            )
    print_table(table)


def print_device_list(title: str, rows: list[dict[str, Any]]) -> None:
    """`devices list`: name, kind, address, tags, spool of each device (no connection made)."""
    table = compact_table(title)
    for column in ("name", "kind", "address", "tags", "spool"):
        table.add_column(column)
    for row in rows:
        tags = row["tags"]
        table.add_row(
            Name(row["name"]),
            str(row["kind"]),
            Name(row["address"]),
            ",".join(tags) if isinstance(tags, list) else str(tags or ""),
            Name(row["spool"]),
        )
    print_table(table)


def print_check_table(group: Any) -> None:
    """`devices check`: one narrow row per device, then each device's problems, one a line
    (a sentence never squeezed into a column)."""
    table = check_table(group)
    print_table(table)
    for line in check_problem_lines(group):
        console.print(line, highlight=False)


def check_table(group: Any) -> Table:
    """The rows of `devices check`: device, reachable, python, runtime, agent, disk, daemon
    (the problems follow the table: see `check_problem_lines`)."""
    from edgeprune.fleet.transport import ConnectionLost

    table = compact_table("device check")
    table.add_column("device")
    table.add_column("reachable", no_wrap=True)
    table.add_column("python")
    table.add_column("runtime")
    table.add_column("agent")
    table.add_column("free disk", justify="right", no_wrap=True)
    table.add_column("daemon", no_wrap=True)
    for o in group:
        h = o.value
        if h is None:
            reached = "[red]no[/red]" if isinstance(o.error, ConnectionLost) else "yes"
            table.add_row(Name(o.device.name), reached, *["–"] * 5)  # why: under the table
            continue
        runtime = (
            Name(f"{h.runtime} {h.runtime_version or ''}".strip())
            if h.runtime
            else "[red]none[/red]"
        )
        daemon = "–" if h.daemon_running is None else ("running" if h.daemon_running else "stopped")
        table.add_row(
            Name(h.device),
            "yes",
            f"{h.python} {h.machine}",
            runtime,
            Name(h.agent_version) if h.agent_version else "[yellow]not installed[/yellow]",
            human_bytes(h.free_bytes),
            daemon,
        )
    return table


def check_problem_lines(group: Any) -> list[str]:
    """ "device: problem" for every problem found and every device that could not be checked."""
    from rich.markup import escape

    lines = []
    for o in group:
        if o.value is None:
            lines.append(f"[red]{escape(o.device.name)}: {escape(o.message)}[/red]")
            continue
        for problem in o.value.problems:
            lines.append(f"[yellow]{escape(o.value.device)}: {escape(problem)}[/yellow]")
    return lines


def print_install_table(group: Any) -> None:
    """`agent install`: one row per device, then each device's hint and problems."""
    table = compact_table("agent install")
    columns = ("device", "board", "agent", "python", "runtime", "from", "sparse path", "service")
    for column in columns:
        table.add_column(column)
    for o in group:
        r = o.value
        if r is None:
            table.add_row(Name(o.device.name), "[red]failed[/red]", *["–"] * (len(columns) - 2))
            continue
        rt = f"{r.runtime.get('name')} {r.runtime.get('version', '')}" if r.runtime else "none"
        sparse = "–" if r.sparse_path is None else ("yes" if r.sparse_path["capable"] else "no")
        table.add_row(
            Name(r.device),
            Name(r.board or r.machine),
            Name(r.agent_version),
            r.python,
            Name(rt.strip()),
            r.runtime_source,
            sparse,
            r.service,
        )
    print_table(table)
    for o in group.succeeded:
        if o.value.hint:
            console.print(o.value.hint)
        for problem in o.value.problems:
            console.print(f"[yellow]{o.device.name}: {problem}[/yellow]")
