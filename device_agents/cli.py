"""`edgeprune-agent` (also `python -m device_agents`): the commands of docs/agent-contract.md.

Parsing and printing only; commands.py does the work. Every command takes `--spool DIR` and
`--json`. Errors are one line `error: ...` on stderr (and `{"error": ...}` on stdout with
`--json`); exit codes: 0 ok, 1 failure, 2 bad input. Never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import os
import sys
import threading
from typing import Any, Dict, List, NoReturn, Optional

from . import __version__
from .errors import AgentError, BadInput
from .protocol import RUNTIME_NAMES, ProtocolError

# argparse passes every help string and message through gettext, which looks for message
# catalogues on disk on every call (several stat()s a string, ~170 per start: slow on an SD
# card and under emulation). The agent speaks English; the answer is the same each time.
argparse._ = functools.lru_cache(maxsize=None)(argparse._)  # type: ignore[attr-defined]


class _Formatter(argparse.HelpFormatter):
    """The terminal width looked up once, not once per option (a start-up cost on a Pi)."""

    width: Optional[int] = None

    def __init__(self, prog: str) -> None:
        if _Formatter.width is None:
            import shutil

            _Formatter.width = max(40, shutil.get_terminal_size().columns - 2)
        super().__init__(prog, width=_Formatter.width)


class _Parser(argparse.ArgumentParser):
    """argparse that raises BadInput instead of printing usage and exiting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise BadInput(f"{message} (see {self.prog} --help)")


def _int_list(text: str) -> List[int]:
    """'1,4' or '0-3' or '2,4-5' -> [1, 4] / [0, 1, 2, 3] / [2, 4, 5]."""
    values: List[int] = []
    for part in text.split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        try:
            if dash and low:
                first, last = int(low), int(high)
                if not 0 <= last - first < 4096:  # a range is CPUs or threads: keep it small
                    raise argparse.ArgumentTypeError(
                        f"{text!r}: a range must go upwards and span at most 4096 numbers"
                    )
                values.extend(range(first, last + 1))
            else:
                values.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a list of whole numbers") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one number")
    return values


def _add_common(parser: argparse.ArgumentParser, top: bool) -> None:
    default: Any = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--spool",
        default=default,
        metavar="DIR",
        help="spool directory (default $EDGEPRUNE_SPOOL or ~/.edgeprune)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print exactly one JSON document on stdout",
    )


def _add_bench_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("bench options")
    group.add_argument("--threads", type=_int_list, metavar="1,4", help="thread counts (default 1)")
    group.add_argument("--runs", type=int, metavar="N", help="timed runs (default 50)")
    group.add_argument("--min-seconds", type=float, metavar="S", help="time for at least S seconds")
    group.add_argument("--warmup", type=int, default=5, metavar="W", help="untimed runs first")
    group.add_argument("--xnnpack", dest="xnnpack", action="store_true", default=True)
    group.add_argument(
        "--no-xnnpack", dest="xnnpack", action="store_false", help="built-in kernels only"
    )
    group.add_argument("--cpus", type=_int_list, metavar="2,3", help="pin to these CPUs")
    group.add_argument(
        "--delay-ms", type=float, default=0.0, metavar="D", help="pause between runs"
    )
    group.add_argument("--inputs", metavar="FILE", help=".npy/.npz of real samples")
    group.add_argument(
        "--timeout", type=float, default=600.0, metavar="S", help="for the whole job"
    )
    group.add_argument("--seed", type=int, default=0, metavar="N", help="random-input seed")
    group.add_argument("--runtime", choices=RUNTIME_NAMES, help="force a TFLite runtime")
    group.add_argument(
        "--round-runs",
        type=int,
        default=5,
        metavar="N",
        help="timed runs of each model per round, when several are measured interleaved",
    )
    group.add_argument(
        "--rounds-per-process",
        type=int,
        default=2,
        metavar="N",
        help="in rounds: start a fresh process per model every N rounds (default 2)",
    )
    group.add_argument(
        "--precision",
        type=_fraction,
        metavar="P",
        help="measure until every median's 95%% interval is within P (0.02 or 2%%)",
    )
    group.add_argument(
        "--max-seconds",
        type=float,
        metavar="S",
        help="with --precision: stop measuring after S s per thread count (default 60)",
    )
    group.add_argument("--id", metavar="ID", help="job id (default: generated)")
    group.add_argument(
        "--label",
        action="append",
        metavar="TEXT",
        help="free text kept with the result (several models: once per model, in order)",
    )
    group.add_argument(
        "--member-id",
        action="append",
        metavar="ID",
        help="several models: each member's job id, in order (default ID.1, ID.2, ...)",
    )


def _fraction(text: str) -> float:
    """'0.02' or '2%' -> 0.02."""
    value = text.strip()
    scale = 1.0
    if value.endswith("%"):
        value, scale = value[:-1], 0.01
    try:
        return float(value) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction (write 0.02 or 2%)") from None


class _Skipped:
    """Stands in for the parser of a command that is not being parsed (see build_parser)."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        return None

    def add_argument_group(self, *args: Any, **kwargs: Any) -> _Skipped:
        return self


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The agent's parser; with `only`, that command's alone (the others' ~100 options cost
    a fifth of a per-call agent's start-up on a Pi, and one command is all a call parses)."""
    parser = _Parser(prog="edgeprune-agent", description="edgeprune's on-device benchmark agent.")
    parser.add_argument("--version", action="version", version=f"edgeprune-agent {__version__}")
    _add_common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> Any:
        if only is not None and name != only:
            return _Skipped()
        child = sub.add_parser(name, help=help_text, description=help_text)
        _add_common(child, top=False)
        return child

    command("doctor", "runtime, versions, device facts, spool health, daemon state")
    admit = command("admit", "move a verified upload from incoming/ into the spool")
    admit.add_argument("file", metavar="FILE")
    admit.add_argument("--sha256", required=True, metavar="H")
    admit.add_argument("--kind", choices=("models", "model", "inputs", "input"), default="models")
    part = command(
        "part",
        "claim the longest idle upload part of a model in incoming/ (to resume it): its path, "
        "length and the sha256 of its bytes",
    )
    part.add_argument("--sha256", required=True, metavar="H")
    part.add_argument(
        "--claim", required=True, metavar="TOKEN", help="rename it to incoming/H.TOKEN.part"
    )
    has = command("has", "which models (or '<sha256>.npz' inputs) are in the spool")
    has.add_argument("sha256", nargs="+", metavar="SHA256")
    submit = command(
        "submit",
        "queue a benchmark job; prints its id as the last line (several models: one group "
        "job measured in alternating rounds)",
    )
    submit.add_argument("model", nargs="*", metavar="MODEL")
    submit.add_argument(
        "--sha256",
        action="append",
        metavar="H",
        help="a model already in the spool (repeat it for a group job)",
    )
    _add_bench_options(submit)
    command("status", "queued, running and finished jobs")
    wait = command("wait", "block until a job's result exists, then print it")
    wait.add_argument("job_id", metavar="ID")
    wait.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds")
    result = command("result", "print a job's result (exit 1 if not there yet)")
    result.add_argument("job_id", metavar="ID")
    ack = command("ack", "the host has stored the result: drop it from results/")
    ack.add_argument("job_id", metavar="ID")
    cancel = command(
        "cancel",
        "cancel jobs: a queued one at once, a running one within a second; each gets a "
        "'cancelled' result and is never re-run (finished or unknown ids: reported, no error)",
    )
    cancel.add_argument("job_id", nargs="+", metavar="ID")
    cancel.add_argument(
        "--wait",
        type=float,
        default=5.0,
        metavar="S",
        help="wait up to S seconds for running jobs to stop (default 5)",
    )
    run = command(
        "run",
        "benchmark a model now, without the daemon or the queue (several: interleaved rounds)",
    )
    run.add_argument("model", nargs="+", metavar="MODEL")
    _add_bench_options(run)
    serve = command("serve", "the daemon: run queued jobs one at a time")
    serve.add_argument("--once", action="store_true", help="drain the queue, then exit")
    serve.add_argument("--poll", type=float, default=1.0, metavar="S", help="queue poll interval")
    serve.add_argument(
        "--write-retry",
        type=float,
        default=30.0,
        metavar="S",
        help="retry an unwritable result this long before writing a short error result",
    )
    command(  # no options of its own: --spool is every request's default spool
        "session", "speak the JSON-lines session protocol on stdin/stdout (docs/agent-contract.md)"
    )
    return parser


_PARSERS: Dict[Optional[str], argparse.ArgumentParser] = {}  # by command (None: all of them)
_PARSER_LOCK = threading.Lock()


def _command_of(argv: List[str]) -> Optional[str]:
    """The command `argv` names, when nothing before it needs the whole parser (--help,
    --version, an unknown word); else None."""
    after_spool = False
    for word in argv:
        if after_spool:
            after_spool = False
        elif word == "--spool":
            after_spool = True
        elif word == "--json" or word.startswith("--spool="):
            continue
        else:
            return word if word in _command_names() else None
    return None


class Reply:
    """One command's outcome, as `--json` prints it: the document, the exit code, the error line.

    The per-call CLI prints it; a session (session.py) sends it as one protocol line.
    """

    def __init__(
        self, command: Optional[str], document: Any, text: str, code: int, error: Optional[str]
    ) -> None:
        self.command = command
        self.document = document
        self.text = text
        self.code = code
        self.error = error


def _failure(command: Optional[str], message: str, code: int) -> Reply:
    line = " ".join(message.split())
    return Reply(command, {"error": line}, "", code, line)


def execute(argv: List[str], spool: Optional[str] = None) -> Reply:
    """Parse `argv` and run its command in this process; never raises for a command's failure.

    `spool`: the session's spool, used when `argv` names none.
    """
    args = None
    try:
        only = _command_of(argv)
        with _PARSER_LOCK:  # one parser per command for a session's every request
            if only not in _PARSERS:
                _PARSERS[only] = build_parser(only)
            args = _PARSERS[only].parse_args(argv)
        if args.command is None:
            raise BadInput("give a command: " + ", ".join(_command_names()))
        from .commands import COMMANDS

        if args.spool is None:
            if spool is None:
                from .spool import default_spool_root

                spool = default_spool_root()
            args.spool = spool
        document, text, code = COMMANDS[args.command](args)
    except (AgentError, ProtocolError) as exc:
        return _failure(getattr(args, "command", None), str(exc), getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        return _failure(getattr(args, "command", None), "interrupted", 130)
    except SystemExit as exc:  # --help and --version print, then argparse exits
        return Reply(None, None, "", exc.code if isinstance(exc.code, int) else 0, None)
    except OSError as exc:
        command = getattr(args, "command", None)
        where = getattr(args, "spool", None)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT) and where:
            return _failure(command, _disk_full(where), 1)
        place = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return _failure(command, f"{exc.strerror or exc}{place}", 1)
    return Reply(args.command, document, text, code, None)


def run(argv: Optional[List[str]] = None) -> int:
    """Run one command; returns the exit code (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    old_umask = os.umask(0o077)  # all the agent creates is the user's alone: 0700 / 0600
    try:
        reply = execute(argv)
    finally:
        os.umask(old_umask)
    if reply.error is not None:
        print(f"error: {reply.error}", file=sys.stderr)
    if reply.command in PRINTS_NOTHING and reply.error is None:
        return reply.code
    try:
        if as_json and reply.error is not None:
            print(json.dumps(reply.document))
        elif as_json:
            print(json.dumps(reply.document, indent=2, sort_keys=True, allow_nan=False))
        elif reply.text:
            print(reply.text)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left (a dropped SSH link, `| head`): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return reply.code


PRINTS_NOTHING = frozenset({"serve", "session"})
"""Commands whose output is not one document (the daemon logs; a session speaks lines)."""


def _disk_full(spool_root: str) -> str:
    """ENOSPC as a user can act on it: where, how much is free, what to do."""
    from .spool import Spool

    spool = Spool(spool_root)
    free = spool.free_bytes()
    room = "unknown space" if free is None else f"{free / 1e6:.1f} MB"
    return (
        f"the spool's disk is full ({room} free in {spool.root}); free space on the board and retry"
    )


def _command_names() -> List[str]:
    return [
        "doctor",
        "admit",
        "part",
        "has",
        "submit",
        "status",
        "wait",
        "result",
        "ack",
        "cancel",
        "run",
        "serve",
        "session",
    ]


def main() -> None:
    sys.exit(run())
