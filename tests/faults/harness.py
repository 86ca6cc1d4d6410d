"""Helpers the fault tests share: time limits for parsers, polling, and CLI subprocesses."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.signals import default_sigint


class Hang(Exception):
    """A parser ran past its time limit: a hang, not a clear error."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise Hang in the main thread if the block runs longer than `seconds` (SIGALRM)."""

    def fire(_signum, _frame):
        raise Hang(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def wait_for(predicate, timeout: float = 60.0, what: str = "condition", every: float = 0.05):
    """Poll until `predicate()` is truthy; its value, or AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


REPO = Path(__file__).resolve().parents[2]
EDGEPRUNE = Path(sys.executable).parent / "edgeprune"


@dataclass
class Run:
    """A finished `edgeprune` subprocess."""

    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


def edgeprune(*args: object, timeout: float = 600, env: dict[str, str] | None = None) -> Run:
    """The real `edgeprune` console script in its own process (as a user runs it)."""
    proc = subprocess.run(
        [str(EDGEPRUNE), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(REPO),
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def start_edgeprune(*args: object, out_dir: Path) -> subprocess.Popen[bytes]:
    """`edgeprune ARGS` in the background; stdout/stderr go to files in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "out", "wb") as out, open(out_dir / "err", "wb") as err:
        return subprocess.Popen(
            [str(EDGEPRUNE), *map(str, args)],
            stdout=out,
            stderr=err,
            cwd=str(REPO),
            preexec_fn=default_sigint,
        )


def finished(proc: subprocess.Popen[bytes], out_dir: Path, timeout: float = 600) -> Run:
    code = proc.wait(timeout)
    return Run(code, (out_dir / "out").read_text(), (out_dir / "err").read_text())


def listing(folder: Path, suffix: str = "") -> list[str]:
    """Sorted names in a spool folder (hidden temp files included), [] if it does not exist."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.name.endswith(suffix))


def rss_kb(pid: int) -> int | None:
    """Resident set of a live process in KiB (VmRSS), None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
