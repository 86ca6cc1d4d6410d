"""Run a board's own command-line tool (vcgencmd, nvpmodel, ...) and never fail because of it.

Probes call tools that may be missing, need root, or hang on a broken firmware interface;
each call has a timeout and returns the output or a one-line reason it has none.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from typing import List, Optional

DEFAULT_TIMEOUT_S = 5.0


@dataclass
class ToolOutput:
    """`text` is stdout when the tool ran and exited 0; otherwise `error` says why not."""

    text: Optional[str]
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.text is not None


def run_tool(argv: List[str], timeout: float = DEFAULT_TIMEOUT_S) -> ToolOutput:
    """Run argv with the C locale; a missing tool, a failure or a timeout becomes `error`."""
    if shutil.which(argv[0]) is None:
        return ToolOutput(None, f"{argv[0]} is not installed (not on PATH)")
    env = dict(os.environ, LC_ALL="C", LANG="C")
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # so a hung tool and anything it started can be killed
        )
    except OSError as exc:
        return ToolOutput(None, f"{argv[0]} could not be run: {exc.strerror or exc}")
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.communicate()
        return ToolOutput(None, f"{' '.join(argv)} did not answer within {timeout:g} s")
    text = stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        detail = (stderr.decode("utf-8", "replace").strip() or text.strip()).splitlines()
        reason = detail[0][:200] if detail else f"exit code {proc.returncode}"
        return ToolOutput(None, f"{' '.join(argv)} failed: {reason}")
    return ToolOutput(text)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def read_text(root: str, path: str) -> Optional[str]:
    """Contents of `root`/`path` (path given as an absolute system path), or None."""
    full = os.path.join(root, path.lstrip("/"))
    try:
        with open(full, "rb") as handle:
            return handle.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return None


def read_int(root: str, path: str) -> Optional[int]:
    text = read_text(root, path)
    if text is None:
        return None
    try:
        return int(text.strip().strip("\x00"))
    except ValueError:
        return None
