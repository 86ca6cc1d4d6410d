"""`edgeprune deploy MODEL... --device D | --tag T | --all`: models onto boards, verified, cached."""

from __future__ import annotations

import typer

from edgeprune.cli.common import (
    accept_option,
    all_option,
    concurrency_option,
    deploy_options,
    device_option,
    inventory_option,
    json_option,
    print_json,
    select_devices,
    tag_option,
)
from edgeprune.cli.present_fleet import ByteProgress, print_deploy_table, report_failures


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
        concurrency: int = concurrency_option(),
        as_json: bool = json_option(),
    ) -> None:
        """Upload models (skipping those a device already has), verified by sha256 on the device."""
        from edgeprune.fleet.artifacts import load_models
        from edgeprune.fleet.deploy import deploy

        options = deploy_options(concurrency, accept_new_host_key)
        loaded = load_models(models)
        devices = select_devices(inventory, device, tag, all_)
        with ByteProgress(enabled=not as_json) as progress:
            group = deploy(
                devices,
                loaded,
                concurrency=options.concurrency,
                connect=options.connect(),
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
