"""`edgeprune agent install DEVICE...|--all`: put (or upgrade) the agent on boards."""

from __future__ import annotations

import typer
from rich.table import Table

from edgeprune.cli.common import console, print_json
from edgeprune.cli.devices_cmd import (
    ACCEPT_HELP,
    CONCURRENCY_HELP,
    INVENTORY_HELP,
    TAG_HELP,
    connect_options,
    err_console,
    report_failures,
    select_devices,
)


def register(app: typer.Typer) -> None:
    """Add `agent install`."""
    agent_app = typer.Typer(help="The on-device agent.", no_args_is_help=True)

    @agent_app.command("install")
    def install_cmd(
        names: list[str] = typer.Argument(None, help="Devices to install on."),
        tag: list[str] = typer.Option(None, "--tag", "-t", help=TAG_HELP),
        all_: bool = typer.Option(False, "--all", help="Every device of the inventory."),
        runtime: str = typer.Option(
            "auto",
            "--runtime",
            help="auto (use the board's runtime, else pip-install the right one), system (never pip), "
            "ai-edge-litert or tflite-runtime.",
        ),
        offline: bool = typer.Option(
            False,
            "--offline",
            help="The board has no internet: download the runtime's wheels here and push them.",
        ),
        no_start: bool = typer.Option(
            False, "--no-start", help="Do not install/start the systemd user service."
        ),
        inventory: str = typer.Option(None, "--inventory", help=INVENTORY_HELP),
        accept_new_host_key: bool = typer.Option(False, "--accept-new-host-key", help=ACCEPT_HELP),
        concurrency: int = typer.Option(4, "--concurrency", min=1, max=64, help=CONCURRENCY_HELP),
        as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    ) -> None:
        """Copy device_agents into the spool, make its venv, ensure a runtime, start it, run doctor."""
        from edgeprune.errors import UserError
        from edgeprune.fleet.fanout import fan_out
        from edgeprune.fleet.install import RUNTIME_CHOICES, install_agent
        from edgeprune.fleet.session import DeviceSession

        if runtime not in RUNTIME_CHOICES:
            raise UserError(
                f"--runtime {runtime!r} is unknown; choose one of {', '.join(RUNTIME_CHOICES)}"
            )
        devices = select_devices(inventory, names, tag, all_)
        options = connect_options(accept_new_host_key)

        def say(device: str, message: str) -> None:
            if not as_json:
                err_console.print(f"{device}: {message}")

        def work(device):  # type: ignore[no-untyped-def]
            with DeviceSession.open(device, options) as session:
                return install_agent(
                    session, runtime=runtime, offline=offline, start_service=not no_start, say=say
                )

        group = fan_out(devices, work, concurrency)
        if as_json:
            print_json(
                {
                    "devices": [
                        {"device": o.device.name, "ok": o.ok, "error": None if o.ok else o.message}
                        | (o.value.to_dict() if o.value else {})
                        for o in group
                    ]
                }
            )
        else:
            table = Table(title="agent install")
            columns = (
                "device",
                "board",
                "agent",
                "python",
                "runtime",
                "from",
                "sparse path",
                "service",
            )
            for column in columns:
                table.add_column(column)
            for o in group:
                r = o.value
                if r is None:
                    table.add_row(o.device.name, "[red]failed[/red]", *["–"] * (len(columns) - 2))
                    continue
                rt = (
                    f"{r.runtime.get('name')} {r.runtime.get('version', '')}"
                    if r.runtime
                    else "none"
                )
                sparse = (
                    "–" if r.sparse_path is None else ("yes" if r.sparse_path["capable"] else "no")
                )
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
        report_failures(group, "agent install")

    app.add_typer(agent_app, name="agent")
