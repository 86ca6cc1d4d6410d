"""The `edgeprune` command: assembles the command modules and turns user errors into one line."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

from edgeprune import __version__
from edgeprune.errors import EdgepruneError

app = typer.Typer(
    name="edgeprune",
    help="Prune, quantize and convert Keras 3 models to TFLite, then measure them on edge boards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# One module per command group; each exposes register(app).
COMMAND_MODULES = (
    "prune_cmd",
    "convert_cmd",
    "inspect_cmd",
    "evaluate_cmd",
    "channels_cmd",
    "qat_cmd",
    "adapt_cmd",
    "xnnpack_cmd",
    "devices_cmd",
    "agent_cmd",
    "deploy_cmd",
    "bench_cmd",
    "results_cmd",
    "run_cmd",
    "quant_report_cmd",
)


def _version_callback(value: bool) -> None:
    if value:
        print(f"edgeprune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """Prune → convert → deploy → measure → compare."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"edgeprune.cli.{_name}").register(app)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI in-process and return its exit code (what `main` and the tests call)."""
    try:
        app(args=argv, prog_name="edgeprune")
    except SystemExit as exc:  # standalone mode always ends here, usage errors included
        if _unreported_ctrl_c(exc):
            print("error: interrupted", file=sys.stderr)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except EdgepruneError as exc:
        print(f"error: {exc.in_flags(_flags_of(argv))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


def _unreported_ctrl_c(exc: SystemExit) -> bool:
    """Typer turns a Ctrl-C into a silent exit 130; say what happened, unless the fleet
    already said which job it cancelled on which device (`fleet.cancel.Interrupted`)."""
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, KeyboardInterrupt):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return False
    from edgeprune.fleet.cancel import Interrupted

    return not isinstance(seen, Interrupted)


def _flags_of(argv: list[str] | None) -> dict[str, str]:
    """Parameter name -> the flag as the failing command spells it (`include_types` is
    `--include-type`), so an error names the flag the user can type."""
    command: Any = typer.main.get_command(app)
    for word in argv if argv is not None else sys.argv[1:]:
        commands = getattr(command, "commands", None)
        if word.startswith("-") or commands is None:
            continue
        if word not in commands:
            break
        command = commands[word]
    return {
        param.name: next((o for o in param.opts if o.startswith("--")), param.opts[0])
        for param in getattr(command, "params", [])
        if getattr(param, "param_type_name", "") == "option" and param.name and param.opts
    }


def main() -> None:
    sys.exit(run(sys.argv[1:]))
