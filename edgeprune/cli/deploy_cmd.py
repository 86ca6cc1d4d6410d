"""`edgeprune deploy MODEL... --device D | --tag T | --all`: models onto boards, verified, cached."""

from __future__ import annotations

import typer

from edgeprune.cli.common import (
    accept_option,
    all_option,
    concurrency_alias_option,
    deploy_options,
    device_option,
    inventory_option,
    json_option,
    parallel_option,
    print_json,
    select_devices,
    tag_option,
)
from edgeprune.cli.present_fleet import print_deploy_table, print_interrupted, report_failures
from edgeprune.cli.present_live import FleetLive


def register(app: typer.Typer) -> None:
    """Add `deploy`."""

    @app.command("deploy")
    def deploy_cmd(
        models: list[str] = typer.Argument(..., help="Model files (.tflite)."),
        device: list[str] = device_option(),
        tag: list[str] = tag_option(),
        all_: bool = all_option(),
        inventory: str = inventory_option(),
        accept_new_host_key: bool = accept_option(),
        parallel: int | None = parallel_option(),
        concurrency: int | None = concurrency_alias_option(),
        as_json: bool = json_option(),
    ) -> None:
        """Upload models (skipping those a device already has), verified by sha256 on the device."""
        from edgeprune.fleet.deploy import deploy_models
        from edgeprune.fleet.fanout import Interrupted

        options = deploy_options(parallel, accept_new_host_key, concurrency)
        devices = select_devices(inventory, device, tag, all_)
        try:
            with FleetLive([d.name for d in devices], enabled=not as_json) as live:
                run = deploy_models(models, devices, options, progress=live.upload)
        except Interrupted as stopped:
            print_interrupted(stopped.group, "deploy")
            raise
        if as_json:
            print_json(run.to_dict())
        else:
            print_deploy_table(run.group)
        live.summary(run.group, "deploy")
        report_failures(run.group, "deploy")
