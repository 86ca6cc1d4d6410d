"""The `local` device: the same operations as over SSH, done with subprocesses and files here.

Each command runs in its own session, as it would behind sshd, so a Ctrl-C at the terminal
reaches only the host command, which cancels its jobs (fleet/cancel.py) as for a board.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence

from edgeprune.fleet.transport import (
    Channel,
    CommandResult,
    CommandTimeout,
    ConnectionLost,
    DiskFull,
    OutputCap,
    Progress,
    StderrTail,
    Transport,
    count_exec,
)

_CHUNK = 1 << 20


class LocalTransport(Transport):
    """Runs commands as subprocesses of this host; no shell is involved."""

    def __init__(self, device_name: str = "local") -> None:
        self.device_name = device_name

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        try:
            proc = self._spawn(argv, env)
        except OSError as exc:
            return CommandResult(
                tuple(argv), 127, "", f"error: cannot run {argv[0]}: {exc.strerror}"
            )
        out, err = self.output_caps(argv)
        try:
            _pump(proc, stdin or b"", out, err, time.monotonic() + timeout)
        except CommandTimeout:
            raise CommandTimeout(
                f"device {self.device_name}: {argv[0]} ran longer than {timeout:g} s and was stopped"
            ) from None
        finally:
            if proc.poll() is None:
                proc.kill()
            code = proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        return CommandResult(
            tuple(argv),
            code,
            bytes(out.data).decode("utf-8", "replace"),
            bytes(err.data).decode("utf-8", "replace"),
        )

    def open_channel(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> Channel:
        """OSError when `argv[0]` cannot be run (as `run` reports exit code 127)."""
        return PipeChannel(self._spawn(argv, env), StderrTail(self.max_stderr_bytes))

    def _spawn(self, argv: Sequence[str], env: Mapping[str, str] | None) -> subprocess.Popen[bytes]:
        full_env = dict(os.environ)
        full_env.update(env or {})
        count_exec(self.device_name)
        return subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            # as over SSH, a Ctrl-C at the terminal reaches the host command only: it
            # decides (fleet/cancel.py) what becomes of the agent's jobs
            start_new_session=True,
        )

    def upload(
        self,
        local_path: str,
        remote_path: str,
        *,
        offset: int = 0,
        progress: Progress | None = None,
    ) -> None:
        total = os.path.getsize(local_path)
        flags = os.O_WRONLY | os.O_CREAT | (0 if offset else os.O_TRUNC)
        try:
            fd = os.open(remote_path, flags, 0o600)
            with open(local_path, "rb") as src, os.fdopen(fd, "wb") as dst:
                src.seek(offset)
                dst.seek(offset)
                dst.truncate(offset)
                done = offset
                while chunk := src.read(_CHUNK):
                    dst.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(
                    f"device {self.device_name}: no space left for {os.path.basename(remote_path)}"
                ) from None
            raise

    def read_bytes(self, remote_path: str, limit: int = 1 << 20) -> bytes:
        with open(remote_path, "rb") as handle:
            return handle.read(limit)

    def file_size(self, remote_path: str) -> int | None:
        try:
            return os.stat(remote_path).st_size
        except FileNotFoundError:
            return None

    def list_names(self, remote_path: str) -> list[str] | None:
        try:
            return os.listdir(remote_path)
        except FileNotFoundError:
            return None

    def remove(self, remote_path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(remote_path)

    def makedirs(self, remote_path: str, mode: int = 0o700) -> None:
        os.makedirs(remote_path, mode=mode, exist_ok=True)

    def rename(self, source: str, target: str) -> None:
        os.replace(source, target)

    def free_bytes(self, remote_path: str) -> int:
        path = remote_path
        while not os.path.exists(path) and os.path.dirname(path) != path:
            path = os.path.dirname(path)
        stats = os.statvfs(path)
        return stats.f_bavail * stats.f_frsize

    def expand_path(self, path: str) -> str:
        return os.path.abspath(os.path.expanduser(path))


def _pump(
    proc: subprocess.Popen[bytes], stdin: bytes, out: OutputCap, err: OutputCap, deadline: float
) -> None:
    """Feed stdin and read both outputs through their caps until EOF (no unbounded buffer)."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    with selectors.DefaultSelector() as selector:
        if stdin:
            os.set_blocking(proc.stdin.fileno(), False)
            selector.register(proc.stdin, selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
        selector.register(proc.stdout, selectors.EVENT_READ, out)
        selector.register(proc.stderr, selectors.EVENT_READ, err)
        sent = 0
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise CommandTimeout("timed out")
            for key, _ in selector.select(min(left, 1.0)):
                if key.fileobj is proc.stdin:
                    try:
                        sent += os.write(proc.stdin.fileno(), stdin[sent : sent + _CHUNK])
                    except BrokenPipeError:
                        sent = len(stdin)
                    if sent >= len(stdin):
                        selector.unregister(proc.stdin)
                        proc.stdin.close()
                    continue
                chunk = os.read(key.fd, 65536)
                if chunk:
                    key.data.add(chunk)
                else:
                    selector.unregister(key.fileobj)
        left = deadline - time.monotonic()
        try:
            proc.wait(max(left, 0.0))
        except subprocess.TimeoutExpired:
            raise CommandTimeout("timed out") from None


class PipeChannel(Channel):
    """A subprocess's pipes; a thread drains its stderr through the cap."""

    def __init__(self, proc: subprocess.Popen[bytes], err: StderrTail) -> None:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self.proc = proc
        self._err = err
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(fd, 65536):
                self._err.add(chunk)

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            raise ConnectionLost("the agent session's stdin closed") from None

    def recv(self, size: int = 65536) -> bytes:
        assert self.proc.stdout is not None
        try:
            data = os.read(self.proc.stdout.fileno(), size)
        except (OSError, ValueError):
            data = b""
        return data

    def exit_code(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stderr_text(self) -> str:
        return self._err.text()

    def close(self) -> None:
        for pipe in (self.proc.stdin,):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if self.exit_code(5.0) is None:
            self.proc.kill()
            self.proc.wait()
        self._drain.join(1.0)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
