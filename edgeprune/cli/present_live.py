"""One live line per device while a fleet command runs, and a closing summary of outcomes.

In a terminal: a rich Live block on stderr, one row per device (stage, bytes sent/total, job
progress such as `measuring 120/500 runs`). Not a terminal (CI logs, a pipe): plain lines,
one per change of stage and per finished upload, so a log stays short. With --json: nothing.
The callbacks come from worker threads (one per device), so all state sits behind one lock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from edgeprune.cli.common import err_console
from edgeprune.cli.present_fleet import human_bytes


@dataclass
class DeviceLine:
    """What one device is doing now."""

    stage: str = "waiting"
    label: str = ""
    done: int = 0
    total: int = 0
    job: str = ""

    def bytes_text(self) -> str:
        return f"{human_bytes(self.done)}/{human_bytes(self.total)}" if self.total else ""


class FleetLive:
    """`upload(device, label, done, total)` and `step(device, what, done, total)` callbacks,
    shown live per device; `summary(group)` prints each device's outcome at the end."""

    def __init__(self, devices: list[str], *, enabled: bool, console: Console | None = None):
        self.console = console or err_console
        self.enabled = enabled
        self.live_mode = enabled and self.console.is_terminal
        self.lines = {name: DeviceLine() for name in devices}
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._started = time.monotonic()

    def __enter__(self) -> FleetLive:
        if self.live_mode:
            self._live = Live(
                self.render(), console=self.console, refresh_per_second=8, transient=False
            )
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            with self._lock:
                self._live.update(self.render())
            self._live.stop()
            self._live = None

    # ------------------------------------------------------------------ callbacks

    def upload(self, device: str, label: str, done: int, total: int) -> None:
        """A `DeployProgress`: bytes of one file on its way to `device`."""
        with self._lock:
            line = self.lines.setdefault(device, DeviceLine())
            first = line.stage != "uploading" or line.label != label
            line.stage, line.label, line.done, line.total = "uploading", label, done, total
            finished = done >= total
            if finished:
                line.stage = "uploaded"
            self._show(device, line, (first and not finished) or finished)

    def step(self, device: str, what: str, done: int, total: int) -> None:
        """A `StepProgress`: the device's stage (`deploying`, `measuring` n/total, ...)."""
        with self._lock:
            line = self.lines.setdefault(device, DeviceLine())
            changed = line.stage != what
            line.stage = what
            line.job = f"{what} {done}/{total}" if total else what
            self._show(device, line, changed or not self.live_mode)

    def _show(self, device: str, line: DeviceLine, plain_worthy: bool) -> None:
        if not self.enabled:
            return
        if self._live is not None:
            self._live.update(self.render())
        elif plain_worthy:
            parts = [f"{device}: {line.stage}"]
            if line.stage in ("uploading", "uploaded"):
                parts.append(f"{line.label} {line.bytes_text()}")
            elif line.job and line.job != line.stage:
                parts = [f"{device}: {line.job}"]
            self.console.print(" ".join(parts), soft_wrap=True, highlight=False)

    # ------------------------------------------------------------------ rendering

    def render(self) -> Table:
        """The live block: one row per device."""
        table = Table.grid(padding=(0, 2))
        table.add_column("device", no_wrap=True)
        table.add_column("stage", no_wrap=True, overflow="ellipsis")
        table.add_column("bytes", justify="right", no_wrap=True)
        table.add_column("job", no_wrap=True, overflow="ellipsis")
        for name, line in self.lines.items():
            stage = line.stage if not line.label else f"{line.stage} {line.label}"
            table.add_row(name, stage, line.bytes_text(), line.job)
        return table

    def summary(self, group: Any, what: str) -> None:
        """The closing summary on stderr: each device `ok` or `failed: reason`, and its seconds."""
        if not self.enabled:
            return
        self.console.print(summary_table(group, what))


def summary_table(group: Any, what: str) -> Table:
    """Each device's outcome of `what` (ok / failed: reason) and how long it took."""
    table = Table(title=f"{what}: {len(group.succeeded)} of {len(group)} device(s) ok")
    table.add_column("device", no_wrap=True)
    table.add_column("outcome", overflow="fold")
    table.add_column("seconds", justify="right", no_wrap=True)
    for outcome in group:
        text = "[green]ok[/green]" if outcome.ok else f"[red]failed[/red]: {_reason(outcome)}"
        table.add_row(outcome.device.name, text, f"{outcome.seconds:.1f}")
    return table


def _reason(outcome: Any) -> str:
    """The error without its `device NAME:` prefix (the row already names the device)."""
    message = str(outcome.message)
    prefix = f"device {outcome.device.name}"
    if message.startswith(prefix):
        message = message[len(prefix) :].lstrip(" :")
    return message.replace("[", r"\[")
