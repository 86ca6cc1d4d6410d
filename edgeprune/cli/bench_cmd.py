"""`edgeprune bench MODEL... --device ...`: measure models on boards and keep the numbers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import typer
from rich.table import Table

from edgeprune.cli.common import console, parse_int_list, print_json
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


def fmt(value: float | None, digits: int = 3, suffix: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{suffix}"


def print_summary(rows: list[dict[str, Any]], title: str) -> None:
    """model × device × threads: p50, p90, speed-up against the baseline, size, accuracy.

    Errors and the agent's warnings follow the table, one line each, so the table stays narrow.
    """
    table = Table(title=title)
    table.add_column("model", overflow="fold")
    table.add_column("device", overflow="fold")
    for column in ("thr", "p50 ms", "p90 ms", "speed-up", "size", "accuracy"):
        table.add_column(column, justify="right")
    notes: list[str] = []
    for row in rows:
        where = f"{row['model']} on {row['device']}, {row['threads']} thread(s)"
        if row["status"] != "ok":
            notes.append(f"[red]{where}: {row['error'] or 'error'}[/red]")
        elif row["warnings"]:
            notes.append(f"[yellow]{where}: {', '.join(row['warnings'])}[/yellow]")
        accuracy = fmt(row["accuracy"], 3)
        if row["accuracy_source"] == "device":
            accuracy += "*"
        table.add_row(
            row["model"] + (" (base)" if row["baseline"] else ""),
            row["device"],
            str(row["threads"]) + ("" if row["xnnpack"] else " no-xnn"),
            fmt(row["p50_ms"]) if row["status"] == "ok" else "[red]error[/red]",
            fmt(row["p90_ms"]),
            fmt(row["speedup"], 2, "×"),
            human_bytes(row["size_bytes"]),
            accuracy,
        )
    console.print(table)
    if any(r["accuracy_source"] == "device" for r in rows):
        console.print(
            "accuracy* measured on the device with --inputs; others from the model's manifest"
        )
    for note in notes:
        console.print(note)


@contextlib.contextmanager
def bench_run_settings(
    as_json: bool, accept_new_host_key: bool, concurrency: int
) -> Iterator[dict[str, Any]]:
    """run_bench's keyword arguments from the CLI: per-step lines and byte progress on stderr."""
    from edgeprune.cli.deploy_cmd import ByteProgress

    def step(device_name: str, what: str, done: int, total: int) -> None:
        if not as_json:
            err_console.print(f"{device_name}: {what} {done}/{total}")

    with ByteProgress(enabled=not as_json) as progress:
        yield {
            "concurrency": concurrency,
            "connect": connect_options(accept_new_host_key),
            "deploy_progress": progress,
            "step": step,
        }


def register(app: typer.Typer) -> None:
    """Add `bench`."""

    @app.command("bench")
    def bench_cmd(
        models: list[str] = typer.Argument(
            ..., help="Model files (.tflite); the first is the baseline."
        ),
        device: list[str] = typer.Option(None, "--device", "-d", help=DEVICE_HELP),
        tag: list[str] = typer.Option(None, "--tag", "-t", help=TAG_HELP),
        all_: bool = typer.Option(False, "--all", help="Every device of the inventory."),
        threads: str = typer.Option("1", "--threads", help="Thread counts, e.g. 1,4."),
        runs: int = typer.Option(
            50, "--runs", min=1, max=1_000_000, help="Timed runs per thread count."
        ),
        warmup: int = typer.Option(5, "--warmup", min=0, max=100_000, help="Untimed runs first."),
        xnnpack: bool = typer.Option(
            True, "--xnnpack/--no-xnnpack", help="Use the XNNPACK delegate."
        ),
        inputs: str = typer.Option(
            None,
            "--inputs",
            help=".npz (x[, y]) or .npy to run instead of random data; y gives accuracy.",
        ),
        timeout: float = typer.Option(600.0, "--timeout", min=1.0, help="Seconds allowed per job."),
        db: str = typer.Option(
            None, "--db", help="Results DB (default: ~/.local/share/edgeprune/results.db)."
        ),
        inventory: str = typer.Option(None, "--inventory", help=INVENTORY_HELP),
        accept_new_host_key: bool = typer.Option(False, "--accept-new-host-key", help=ACCEPT_HELP),
        concurrency: int = typer.Option(8, "--concurrency", min=1, max=64, help=CONCURRENCY_HELP),
        as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
        sparse_ab: bool = typer.Option(
            False,
            "--sparse-ab",
            help="Per pruned model (.keras or .tflite): the same weights stored dense and "
            "sparse, measured side by side; reports the sparse speed-up.",
        ),
    ) -> None:
        """Deploy what is missing, run one job per model on each device, store and show the results."""
        from device_agents.protocol import BenchOptions, ProtocolError
        from edgeprune.errors import UserError
        from edgeprune.fleet.artifacts import load_models
        from edgeprune.fleet.remote_bench import BenchInputs, run_bench
        from edgeprune.results.store import ResultsStore
        from edgeprune.results.tables import summary_rows

        try:
            options = BenchOptions(
                threads=parse_int_list(threads, "--threads", minimum=1),
                runs=runs,
                warmup=warmup,
                xnnpack=xnnpack,
                timeout_s=float(timeout),
            ).validate("bench options")
        except ProtocolError as exc:
            raise UserError(str(exc)) from None
        if sparse_ab:  # the A/B itself lives in edgeprune/xnnpack/sparse_ab.py
            from edgeprune.cli.xnnpack_cmd import bench_sparse_ab

            devices = select_devices(inventory, device, tag, all_)
            bench_sparse_ab(
                models, options, devices, inputs, db, concurrency, accept_new_host_key, as_json
            )
            return
        loaded = load_models(models)
        bench_inputs = BenchInputs.load(inputs) if inputs else None
        devices = select_devices(inventory, device, tag, all_)
        store = ResultsStore(db)

        with bench_run_settings(as_json, accept_new_host_key, concurrency) as settings:
            run_id, group = run_bench(
                devices, loaded, options, store, inputs=bench_inputs, **settings
            )
        rows = summary_rows(store.measurements([run_id]), baseline_sha256=loaded[0].sha256)
        if as_json:
            print_json(
                {
                    "run_id": run_id,
                    "db": str(store.path),
                    "rows": rows,
                    "devices": [
                        {
                            "device": o.device.name,
                            "ok": o.ok,
                            "error": None if o.ok else o.message,
                            "daemon_running": o.value.daemon_running if o.value else None,
                            "deployed": [f.to_dict() for f in o.value.deployed] if o.value else [],
                        }
                        for o in group
                    ],
                }
            )
        else:
            print_summary(rows, f"bench run {run_id} (baseline {loaded[0].name})")
            console.print(f"stored in {store.path} as run {run_id}")
        report_failures(group, "bench")
        failed_jobs = [r for r in rows if r["status"] != "ok"]
        if failed_jobs:
            from edgeprune.errors import DeviceError

            first = failed_jobs[0]
            raise DeviceError(
                f"{len(failed_jobs)} of {len(rows)} measurement(s) failed on the device(s); "
                f"first: {first['model']} on {first['device']}: {first['error']}"
            )
