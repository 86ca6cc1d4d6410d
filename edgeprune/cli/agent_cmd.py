"""`edgeprune agent install DEVICE...|--all`: put (or upgrade) the agent on boards."""

from __future__ import annotations

import typer

from edgeprune.cli.common import (
    accept_option,
    all_option,
    concurrency_alias_option,
    deploy_options,
    device_option,
    err_console,
    inventory_option,
    joined,
    json_option,
    parallel_option,
    print_json,
    select_devices,
    tag_option,
)
from edgeprune.cli.present_fleet import outcome_documents, print_install_table, report_failures


def register(app: typer.Typer) -> None:
    """Add `agent install`."""
    agent_app = typer.Typer(help="The on-device agent.", no_args_is_help=True)

    @agent_app.command("install")
    def install_cmd(
        names: list[str] = typer.Argument(None, help="Devices to install on."),
        device: list[str] = device_option(),
        tag: list[str] = tag_option(),
        all_: bool = all_option(),
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
        inventory: str = inventory_option(),
        accept_new_host_key: bool = accept_option(),
        parallel: int | None = parallel_option(),
        concurrency: int | None = concurrency_alias_option(),
        as_json: bool = json_option(),
    ) -> None:
        """Copy device_agents into the spool, make its venv, ensure a runtime, start it, run doctor."""
        from edgeprune.fleet.install import check_runtime, install_agents

        check_runtime(runtime)
        deploy = deploy_options(parallel, accept_new_host_key, concurrency)
        devices = select_devices(inventory, joined(names, device), tag, all_)

        def say(device: str, message: str) -> None:
            if not as_json:
                err_console.print(f"{device}: {message}")

        group = install_agents(
            devices,
            runtime=runtime,
            offline=offline,
            start_service=not no_start,
            connect=deploy.connect(),
            parallel=deploy.parallel,
            on_note=say,
        )
        if as_json:
            print_json({"devices": outcome_documents(group)})
        else:
            print_install_table(group)
        report_failures(group, "agent install")

    app.add_typer(agent_app, name="agent")
