"""`edgeprune deploy MODEL... --device D | --tag T | --all`: models onto boards, verified, cached."""

from __future__ import annotations

import threading
from typing import Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgeprune.cli.common import console, print_json
from edgeprune.cli.devices_cmd import (
    ACCEPT_HELP,
    CONCURRENCY_HELP,
    DEVICE_HELP,
    INVENTORY_HELP,
    TAG_HELP,
    connect_options,
    err_console,
    human_bytes,
    report_failures,
    select_devices,
)


class ByteProgress:
    """A rich progress bar per (device, file) on stderr; thread-safe; silent with --json."""

    def __init__(self, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=err_console,
            disable=not enabled,
            transient=False,
        )
        self._tasks: dict[tuple[str, str], TaskID] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> ByteProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, device: str, label: str, done: int, total: int) -> None:
        with self._lock:
            key = (device, label)
            if key not in self._tasks:
                self._tasks[key] = self.progress.add_task(f"{device}: {label}", total=total)
            self.progress.update(self._tasks[key], completed=done, total=total)


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


def register(app: typer.Typer) -> None:
    """Add `deploy`."""

    @app.command("deploy")
    def deploy_cmd(
        models: list[str] = typer.Argument(..., help="Model files (.tflite)."),
        device: list[str] = typer.Option(None, "--device", "-d", help=DEVICE_HELP),
        tag: list[str] = typer.Option(None, "--tag", "-t", help=TAG_HELP),
        all_: bool = typer.Option(False, "--all", help="Every device of the inventory."),
        inventory: str = typer.Option(None, "--inventory", help=INVENTORY_HELP),
        accept_new_host_key: bool = typer.Option(False, "--accept-new-host-key", help=ACCEPT_HELP),
        concurrency: int = typer.Option(8, "--concurrency", min=1, max=64, help=CONCURRENCY_HELP),
        as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    ) -> None:
        """Upload models (skipping those a device already has), verified by sha256 on the device."""
        from edgeprune.fleet.artifacts import load_models
        from edgeprune.fleet.deploy import deploy

        loaded = load_models(models)
        devices = select_devices(inventory, device, tag, all_)
        with ByteProgress(enabled=not as_json) as progress:
            group = deploy(
                devices,
                loaded,
                concurrency=concurrency,
                connect=connect_options(accept_new_host_key),
                progress=progress,
            )
        if as_json:
            print_json(
                {
                    "devices": [
                        {
                            "device": o.device.name,
                            "ok": o.ok,
                            "error": None if o.ok else o.message,
                            "seconds": o.seconds,
                            "files": [f.to_dict() for f in o.value or []],
                        }
                        for o in group
                    ]
                }
            )
        else:
            print_deploy_table(group)
        report_failures(group, "deploy")
