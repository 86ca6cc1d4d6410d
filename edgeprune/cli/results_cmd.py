"""`edgeprune results list|show|compare|export|report`: the numbers bench brought home."""

from __future__ import annotations

import sys

import typer

from edgeprune.cli.common import console, db_option, json_option, print_json
from edgeprune.cli.present_bench import print_compare, print_run_list, print_summary
from edgeprune.cli.present_recipe import print_report


def register(app: typer.Typer) -> None:
    """Add the `results` group."""
    results_app = typer.Typer(help="The results store (SQLite).", no_args_is_help=True)

    @results_app.command("list")
    def list_cmd(
        limit: int = typer.Option(20, "--limit", min=1, help="Newest runs to show."),
        db: str = db_option(),
        as_json: bool = json_option(),
    ) -> None:
        """Runs, newest first: when, devices, models, measurements."""
        from edgeprune.results.queries import open_store

        store = open_store(db)
        runs = store.runs(limit=limit)
        if as_json:
            print_json({"db": str(store.path), "runs": runs})
            return
        print_run_list(f"runs in {store.path}", runs)

    @results_app.command("show")
    def show_cmd(
        runs: list[str] = typer.Argument(
            None, help="Run ids (or latest, latest~1); default latest."
        ),
        device: str = typer.Option(None, "--device", "-d", help="Only this device."),
        model: str = typer.Option(
            None, "--model", help="Only this model (file name or sha256 prefix)."
        ),
        db: str = db_option(),
        as_json: bool = json_option(),
    ) -> None:
        """The table of one or more runs: p50, p90, speed-up against the first model, size, accuracy."""
        from edgeprune.results.queries import show_runs

        shown = show_runs(db, runs, device=device, model=model)
        if as_json:
            print_json(shown.to_dict())
            return
        print_summary(shown.rows, shown.title)

    @results_app.command("compare")
    def compare_cmd(
        runs: list[str] = typer.Argument(..., help="Two or more run ids (or latest, latest~1)."),
        db: str = db_option(),
        as_json: bool = json_option(),
    ) -> None:
        """p50 of the same model, device and threads across runs, side by side, with the last run's
        speed-up against the first (95 % interval) and its verdict."""
        from edgeprune.results.queries import compare_runs

        compared = compare_runs(db, runs)
        if as_json:
            print_json(compared.to_dict())
            return
        print_compare(compared.run_ids, compared.rows)

    @results_app.command("export")
    def export_cmd(
        runs: list[str] = typer.Argument(None, help="Run ids (default: every run)."),
        out: str = typer.Option("-", "--out", "-o", help="File (.csv or .json), or - for stdout."),
        fmt: str = typer.Option(
            None, "--format", help="csv or json (default: from --out's suffix; csv on stdout)."
        ),
        db: str = db_option(),
    ) -> None:
        """Every measurement as CSV or JSON (JSON carries the agent's full result)."""
        from edgeprune.results.queries import export_runs

        exported = export_runs(db, runs, out, fmt)
        if exported.target is None:
            sys.stdout.write(exported.text)
            return
        print(f"wrote {exported.count} measurements to {exported.target}", file=sys.stderr)

    @results_app.command("report")
    def report_cmd(
        runs: list[str] = typer.Argument(None, help="Run ids (default: latest)."),
        html: str = typer.Option(
            None, "--html", help="Write an HTML page with plots and the table here."
        ),
        db: str = db_option(),
    ) -> None:
        """The latest run's table in the terminal, or an HTML page (plots of latency against size and accuracy)."""
        from edgeprune.recipes.run_report import report_runs

        reported = report_runs(db, runs, html=html)
        if reported.written is not None:
            console.print(f"wrote {reported.written}")
        elif reported.recipe is not None:
            print_report(reported.recipe)
        else:
            print_summary(reported.rows, f"run {', '.join(map(str, reported.run_ids))}")

    app.add_typer(results_app, name="results")
