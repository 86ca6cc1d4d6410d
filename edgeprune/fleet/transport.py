"""The one interface between edgeprune and a device: run a command, move a file, look at a path.

Two implementations (`SshTransport`, `LocalTransport`) and everything above them is shared,
so the `local` device exercises the same deploy and bench code as a board over SSH.
Commands are argument lists, never shell strings: the SSH side quotes every word.
"""

from __future__ import annotations

import abc
import collections
import shlex
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from edgeprune.errors import DeviceError

Progress = Callable[[int, int], None]
"""progress(bytes_done, bytes_total), called as an upload advances."""


class ConnectionLost(DeviceError):
    """The connection dropped or could not be made for a reason worth retrying."""


class ConnectionRefusedByPolicy(DeviceError):
    """Host key unknown or changed, or authentication failed: retrying cannot help."""


class CommandTimeout(DeviceError):
    """A command on the device ran past its time limit (it was stopped)."""


class DiskFull(DeviceError):
    """The device's spool has no room for a file."""


class OutputTooLarge(DeviceError):
    """A command printed more than the host will hold (a flood, not an agent's answer)."""


MAX_OUTPUT_BYTES = 64 << 20
"""Most a command may print on stdout: an agent's largest answer is a few MB of JSON."""
MAX_STDERR_BYTES = 1 << 20
MAX_LINE_BYTES = 1 << 20
"""Longest line: the agent prints indented JSON, so its lines are short."""


class OutputCap:
    """One stream's bytes, refused past a total or a line length (before they are kept)."""

    def __init__(
        self, device: str, argv: Sequence[str], stream: str, limit: int, line: int
    ) -> None:
        self.data = bytearray()
        self._what = f"device {device}: {' '.join(str(a) for a in argv[:3])}"
        self._stream = stream
        self._limit = limit
        self._line_limit = line
        self._line = 0  # bytes since the last newline

    def add(self, chunk: bytes) -> None:
        """Keep `chunk`, or raise OutputTooLarge (the caller stops the command)."""
        if len(self.data) + len(chunk) > self._limit:
            raise OutputTooLarge(
                f"{self._what} printed more than {_mb(self._limit)} on {self._stream} and was "
                "stopped; check the device's `python:` in the inventory and its agent version"
            )
        first, last = chunk.find(b"\n"), chunk.rfind(b"\n")
        if first < 0:
            longest = self._line + len(chunk)
        else:
            inner = (len(part) for part in chunk[first + 1 : last].split(b"\n"))
            longest = max(self._line + first, len(chunk) - last - 1, *inner)
        if longest > self._line_limit:
            raise OutputTooLarge(
                f"{self._what} printed a line longer than {_mb(self._line_limit)} on "
                f"{self._stream} and was stopped; check the device's `python:` in the inventory"
            )
        self._line = longest if first < 0 else len(chunk) - last - 1
        self.data += chunk


def _mb(value: int) -> str:
    return f"{value / (1 << 20):.1f} MB"


@dataclass(frozen=True)
class CommandResult:
    """What a finished command left behind."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def last_error_line(self) -> str:
        """The agent's one-line `error: ...` (or the last stderr line) for messages."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        for line in reversed(lines):
            if line.startswith("error:"):
                return line[len("error:") :].strip()
        return lines[-1] if lines else f"exit code {self.exit_code}"


EXEC_COUNTS: collections.Counter[str] = collections.Counter()
"""Remote processes started per device (every `run` and `open_channel`): what the agent
session saves, counted for benchmarks/bench_session.py."""
_COUNT_LOCK = threading.Lock()


def count_exec(device_name: str) -> None:
    with _COUNT_LOCK:
        EXEC_COUNTS[device_name] += 1


class StderrTail:
    """The last `limit` bytes a long-lived command printed on stderr (a session's logs may
    outgrow any cap over a long command; memory stays bounded, the newest lines are kept)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._data = bytearray()
        self._lock = threading.Lock()

    def add(self, chunk: bytes) -> None:
        with self._lock:
            self._data += chunk
            if len(self._data) > self.limit:
                del self._data[: len(self._data) - self.limit]

    def text(self) -> str:
        with self._lock:
            return bytes(self._data).decode("utf-8", "replace")


class Channel(abc.ABC):
    """A command left running with its stdin and stdout as a byte pipe (an agent session).

    stderr is collected on the side, its last MAX_STDERR_BYTES kept (StderrTail).
    """

    @abc.abstractmethod
    def send(self, data: bytes) -> None:
        """Write to the command's stdin (ConnectionLost when it is gone)."""

    @abc.abstractmethod
    def recv(self, size: int = 65536) -> bytes:
        """Block for the next bytes of its stdout; b"" at EOF (ConnectionLost on a drop)."""

    @abc.abstractmethod
    def exit_code(self, timeout: float) -> int | None:
        """Its exit code once it ended (waiting up to `timeout` s), else None."""

    @abc.abstractmethod
    def stderr_text(self) -> str:
        """What it printed on stderr so far."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close its stdin and let go of it (it sees EOF; a stuck one is stopped)."""


def shell_command(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """One quoted shell line for `argv` (with `env` assignments in front)."""
    words = [f"{key}={shlex.quote(value)}" for key, value in (env or {}).items()]
    for key in env or {}:
        if not key.isidentifier():
            raise ValueError(f"environment name {key!r} is not allowed")
    words.extend(shlex.quote(str(arg)) for arg in argv)
    return " ".join(words)


class Transport(abc.ABC):
    """How to reach one device. Paths are device paths (absolute after `expand_path`)."""

    device_name: str
    max_output_bytes: int = MAX_OUTPUT_BYTES
    max_stderr_bytes: int = MAX_STDERR_BYTES
    max_line_bytes: int = MAX_LINE_BYTES

    def output_caps(self, argv: Sequence[str]) -> tuple[OutputCap, OutputCap]:
        """Fresh stdout and stderr caps for one run of `argv` (this transport's limits)."""
        return (
            OutputCap(self.device_name, argv, "stdout", self.max_output_bytes, self.max_line_bytes),
            OutputCap(self.device_name, argv, "stderr", self.max_stderr_bytes, self.max_line_bytes),
        )

    @abc.abstractmethod
    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run a command to completion; `CommandTimeout` past `timeout` seconds."""

    @abc.abstractmethod
    def upload(
        self,
        local_path: str,
        remote_path: str,
        *,
        offset: int = 0,
        progress: Progress | None = None,
    ) -> None:
        """Copy a local file to `remote_path` (mode 0600); from byte `offset` to resume a part."""

    @abc.abstractmethod
    def read_bytes(self, remote_path: str, limit: int = 1 << 20) -> bytes:
        """A small file's contents (at most `limit` bytes)."""

    @abc.abstractmethod
    def file_size(self, remote_path: str) -> int | None:
        """Size of a file, or None when it does not exist."""

    @abc.abstractmethod
    def list_names(self, remote_path: str) -> list[str] | None:
        """Names in a directory, or None when it does not exist."""

    @abc.abstractmethod
    def remove(self, remote_path: str) -> None:
        """Delete a file; no error when it is already gone."""

    @abc.abstractmethod
    def makedirs(self, remote_path: str, mode: int = 0o700) -> None:
        """Create a directory and its parents (no error when they exist)."""

    @abc.abstractmethod
    def rename(self, source: str, target: str) -> None:
        """Rename within one filesystem, replacing `target` (POSIX rename)."""

    @abc.abstractmethod
    def free_bytes(self, remote_path: str) -> int:
        """Free space for an unprivileged user on the filesystem holding `remote_path`."""

    @abc.abstractmethod
    def expand_path(self, path: str) -> str:
        """`~/x` or a relative path -> an absolute device path."""

    def open_channel(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> Channel:
        """Start `argv` and keep it running, talking over its stdin/stdout (a session)."""
        raise NotImplementedError(f"{type(self).__name__} has no channels")

    def reconnect(self) -> None:
        """Drop the current connection and open a new one (after `ConnectionLost`)."""
        return None

    def close(self) -> None:
        """Release the connection."""
        return None

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
