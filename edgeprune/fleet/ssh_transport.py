"""A device over SSH (paramiko): strict host keys, key-only auth, timeouts, keepalive, retries.

Only transient failures (a refused or dropped TCP connection, a timeout, a lost banner)
are retried, with exponential backoff; a refused host key or a failed login is final.
No password is ever used: keys come from the identity file or a running ssh-agent.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import paramiko

from edgeprune.errors import DeviceError
from edgeprune.fleet.inventory import Device
from edgeprune.fleet.ssh_connect import open_ssh
from edgeprune.fleet.transport import (
    Channel,
    CommandResult,
    CommandTimeout,
    ConnectionLost,
    DiskFull,
    OutputTooLarge,
    Progress,
    StderrTail,
    Transport,
    count_exec,
    shell_command,
)

_WRITE_CHUNK = 1 << 18
_TRANSIENT = (OSError, EOFError, paramiko.SSHException)
T = TypeVar("T")


class SshTransport(Transport):
    """One SSH connection to one device, reopened on demand after a drop."""

    def __init__(self, device: Device, *, accept_new_host_key: bool = False) -> None:
        self.device = device
        self.device_name = device.name
        self.accept_new_host_key = accept_new_host_key
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._home: str | None = None
        self._lock = threading.RLock()
        self.connect()

    # ------------------------------------------------------------------ connection

    def connect(self) -> None:
        """Open the connection, retrying transient failures with backoff."""
        delay = 0.25
        for attempt in range(self.device.retries + 1):
            try:
                transport = open_ssh(self.device, self.accept_new_host_key)
                with self._lock:
                    self._transport = transport
                return
            except ConnectionLost:
                if attempt == self.device.retries:
                    raise
                time.sleep(delay)
                delay *= 2

    def reconnect(self) -> None:
        self.close()
        self.connect()

    def close(self) -> None:
        with self._lock:
            if self._sftp is not None:
                with contextlib.suppress(Exception):
                    self._sftp.close()
            if self._transport is not None:
                with contextlib.suppress(Exception):
                    self._transport.close()
            self._sftp = None
            self._transport = None

    def _active(self) -> paramiko.Transport:
        with self._lock:
            if self._transport is None or not self._transport.is_active():
                self._sftp = None
                self._transport = None
                self.connect()
            assert self._transport is not None
            return self._transport

    def _sftp_client(self) -> paramiko.SFTPClient:
        transport = self._active()
        with self._lock:
            if self._sftp is None:
                self._sftp = paramiko.SFTPClient.from_transport(transport)
                assert self._sftp is not None
                self._sftp.get_channel().settimeout(max(30.0, self.device.connect_timeout * 3))
            return self._sftp

    def _guard(self, what: str, action: Callable[[], T]) -> T:
        """Run an SFTP action; a dropped connection becomes ConnectionLost."""
        try:
            return action()
        except (TimeoutError, EOFError, ConnectionError, paramiko.SSHException) as exc:
            self._forget_connection()
            raise ConnectionLost(
                f"device {self.device_name}: connection lost during {what}: {exc or type(exc).__name__}"
            ) from None
        except OSError as exc:
            if exc.errno is None and (self._transport is None or not self._transport.is_active()):
                self._forget_connection()
                raise ConnectionLost(
                    f"device {self.device_name}: connection lost during {what}"
                ) from None
            raise

    def _forget_connection(self) -> None:
        with self._lock:
            self._sftp = None
            if self._transport is not None:
                with contextlib.suppress(Exception):
                    self._transport.close()
            self._transport = None

    # ------------------------------------------------------------------ commands

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        try:
            transport, channel = self._exec(argv, env)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            out, err = self._collect(channel, timeout, argv)
            code = channel.recv_exit_status()
            if code == -1 and not transport.is_active():
                # no exit status and the link is gone: the command's fate is unknown
                raise EOFError("the connection closed before the command finished")
        except (CommandTimeout, OutputTooLarge):
            raise
        except _TRANSIENT as exc:
            self._forget_connection()
            raise ConnectionLost(
                f"device {self.device_name}: connection lost while running {argv[0]}: {exc or type(exc).__name__}"
            ) from None
        if code == -1:  # a signal ended it (OOM killer, reboot): as transient as a dropped link
            raise ConnectionLost(
                f"device {self.device_name}: {os.path.basename(argv[0])} was killed on the "
                "device before it finished (no exit status)"
            )
        return CommandResult(
            tuple(argv), code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        )

    def _exec(
        self, argv: Sequence[str], env: Mapping[str, str] | None
    ) -> tuple[paramiko.Transport, paramiko.Channel]:
        """`argv` started on a new exec channel (paramiko's errors pass through)."""
        command = shell_command(argv, env)
        transport = self._active()
        count_exec(self.device_name)
        channel = transport.open_session(timeout=self.device.connect_timeout)
        channel.exec_command(command)
        return transport, channel

    def open_channel(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> Channel:
        """An exec channel on this connection (its keepalive guards the link)."""
        try:
            _, channel = self._exec(argv, env)
        except _TRANSIENT as exc:
            self._forget_connection()
            raise ConnectionLost(
                f"device {self.device_name}: connection lost while starting {argv[0]}: "
                f"{exc or type(exc).__name__}"
            ) from None
        return SshChannel(channel, StderrTail(self.max_stderr_bytes), self.device_name)

    def _collect(
        self, channel: paramiko.Channel, timeout: float, argv: Sequence[str]
    ) -> tuple[bytes, bytes]:
        out, err = self.output_caps(argv)
        deadline = time.monotonic() + timeout
        fd = channel.fileno()
        try:
            while True:
                while channel.recv_ready():
                    out.add(channel.recv(65536))
                while channel.recv_stderr_ready():
                    err.add(channel.recv_stderr(65536))
                if channel.exit_status_ready():
                    # the output's tail and EOF normally arrive with the exit status
                    channel.settimeout(2.0)
                    with contextlib.suppress(socket.timeout):
                        while chunk := channel.recv(65536):
                            out.add(chunk)
                    while channel.recv_stderr_ready():
                        err.add(channel.recv_stderr(65536))
                    return bytes(out.data), bytes(err.data)
                if channel.closed and not channel.exit_status_ready():
                    raise EOFError("channel closed before the command finished")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CommandTimeout(
                        f"device {self.device_name}: {' '.join(argv[:3])} ran longer than {timeout:g} s and was stopped"
                    )
                select.select([fd], [], [], min(left, 0.05))
        finally:
            if not channel.exit_status_ready():
                channel.close()

    # ------------------------------------------------------------------ files

    def upload(
        self,
        local_path: str,
        remote_path: str,
        *,
        offset: int = 0,
        progress: Progress | None = None,
    ) -> None:
        total = os.path.getsize(local_path)

        def send() -> None:
            sftp = self._sftp_client()
            handle = sftp.open(remote_path, "r+b" if offset else "wb")
            try:
                handle.set_pipelined(True)
                if not offset:
                    handle.chmod(0o600)
                handle.seek(offset)
                done = offset
                with open(local_path, "rb") as src:
                    src.seek(offset)
                    while chunk := src.read(_WRITE_CHUNK):
                        handle.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
                # Send the buffered tail now: paramiko's close() waits for the pipelined
                # writes *before* flushing its buffer and ignores errors of the close itself.
                handle.flush()
            finally:
                handle.close()
            # so a link that died around the close could pass silently: check what landed
            landed = sftp.stat(remote_path).st_size
            if landed != total:
                raise OSError(f"{remote_path} holds {landed} of {total} bytes after the upload")

        try:
            self._guard("upload", send)
        except OSError as exc:  # an SFTP status: the server refused the write
            free = self._free_or_none(os.path.dirname(remote_path))
            if free is not None and free < total - offset + (1 << 20):
                raise DiskFull(
                    f"device {self.device_name}: disk full while uploading {os.path.basename(local_path)}: "
                    f"{_mb(free)} free in {os.path.dirname(remote_path)}, {_mb(total)} needed"
                ) from None
            raise DeviceError(
                f"device {self.device_name}: upload to {remote_path} failed: {exc}"
            ) from None

    def _free_or_none(self, path: str) -> int | None:
        try:
            return self.free_bytes(path)
        except Exception:
            return None

    def read_bytes(self, remote_path: str, limit: int = 1 << 20) -> bytes:
        def read() -> bytes:
            with self._sftp_client().open(remote_path, "rb") as handle:
                return handle.read(limit)

        return self._guard("read", read)

    def file_size(self, remote_path: str) -> int | None:
        def size() -> int | None:
            try:
                return self._sftp_client().stat(remote_path).st_size
            except FileNotFoundError:
                return None

        return self._guard("stat", size)

    def list_names(self, remote_path: str) -> list[str] | None:
        def names() -> list[str] | None:
            try:
                return self._sftp_client().listdir(remote_path)
            except FileNotFoundError:
                return None

        return self._guard("listdir", names)

    def remove(self, remote_path: str) -> None:
        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                self._sftp_client().remove(remote_path)

        self._guard("remove", remove)

    def makedirs(self, remote_path: str, mode: int = 0o700) -> None:
        def make() -> None:
            sftp = self._sftp_client()
            try:
                if stat.S_ISDIR(sftp.stat(remote_path).st_mode or 0):
                    return  # the common case: one round trip
            except FileNotFoundError:
                pass
            parts = [p for p in remote_path.split("/") if p]
            current = "/" if remote_path.startswith("/") else ""
            for part in parts:
                current = os.path.join(current, part) if current else part
                try:
                    if not stat.S_ISDIR(sftp.stat(current).st_mode or 0):
                        raise DeviceError(
                            f"device {self.device_name}: {current} exists and is not a directory"
                        )
                except FileNotFoundError:
                    sftp.mkdir(current, mode)

        self._guard("mkdir", make)

    def rename(self, source: str, target: str) -> None:
        self._guard("rename", lambda: self._sftp_client().posix_rename(source, target))

    def free_bytes(self, remote_path: str) -> int:
        def statvfs() -> int:
            sftp = self._sftp_client()
            path = remote_path
            while True:
                try:
                    sftp.stat(path)
                    break
                except FileNotFoundError:
                    parent = os.path.dirname(path)
                    if parent == path:
                        break
                    path = parent
            try:
                # statvfs@openssh.com: f_bsize f_frsize f_blocks f_bfree f_bavail ...
                msg = sftp._request(paramiko.sftp.CMD_EXTENDED, "statvfs@openssh.com", path)[1]
                values = [msg.get_int64() for _ in range(5)]
                return values[1] * values[4]
            except (OSError, paramiko.SSHException, TypeError):
                return -1

        free = self._guard("statvfs", statvfs)
        if free >= 0:
            return free
        result = self.run(["df", "-Pk", remote_path], timeout=30)
        try:
            return int(result.stdout.splitlines()[-1].split()[3]) * 1024
        except (IndexError, ValueError):
            raise DeviceError(
                f"device {self.device_name}: cannot tell free space at {remote_path}"
            ) from None

    def expand_path(self, path: str) -> str:
        if path.startswith("/"):
            return os.path.normpath(path)
        if self._home is None:
            self._home = self._guard("normalize", lambda: self._sftp_client().normalize("."))
        rest = path[2:] if path.startswith("~/") else ("" if path == "~" else path)
        if path.startswith("~") and not path.startswith("~/") and path != "~":
            raise DeviceError(
                f"device {self.device_name}: spool {path!r}: only ~/ (this user's home) is supported"
            )
        return os.path.normpath(os.path.join(self._home, rest))


def _mb(value: int) -> str:
    return f"{value / 1e6:.1f} MB"


class SshChannel(Channel):
    """One exec channel kept open; a thread drains its stderr through the cap."""

    def __init__(self, channel: paramiko.Channel, err: StderrTail, device_name: str) -> None:
        self.channel = channel
        self.device_name = device_name
        self._err = err
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        with contextlib.suppress(*_TRANSIENT):
            while chunk := self.channel.recv_stderr(65536):
                self._err.add(chunk)

    def _lost(self, exc: BaseException | None = None) -> ConnectionLost:
        why = f": {exc}" if exc else ""
        return ConnectionLost(f"device {self.device_name}: the agent session's link dropped{why}")

    def send(self, data: bytes) -> None:
        try:
            self.channel.sendall(data)
        except _TRANSIENT as exc:
            raise self._lost(exc) from None

    def recv(self, size: int = 65536) -> bytes:
        try:
            data = self.channel.recv(size)
        except _TRANSIENT as exc:
            raise self._lost(exc) from None
        if not data and not self.channel.exit_status_ready():
            transport = self.channel.get_transport()
            if transport is None or not transport.is_active():
                raise self._lost()
        return data

    def exit_code(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while not self.channel.exit_status_ready():
            if time.monotonic() >= deadline or self.channel.closed:
                return None
            time.sleep(0.01)
        code = self.channel.recv_exit_status()
        return None if code == -1 else code

    def stderr_text(self) -> str:
        return self._err.text()

    def close(self) -> None:
        with contextlib.suppress(*_TRANSIENT):
            self.channel.shutdown_write()
        self.exit_code(2.0)
        with contextlib.suppress(*_TRANSIENT):
            self.channel.close()
        self._drain.join(1.0)
