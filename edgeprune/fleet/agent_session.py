"""The host's side of the agent session protocol (docs/agent-contract.md, "Session protocol").

One `edgeprune-agent session` process per device per command, over a transport channel
(an SSH exec channel or local pipes). Requests from several threads share it: each gets an
id, a reader thread hands every reply (and the progress lines of a `wait`) to the request
it answers. A reply line larger than the transport's output cap is a flood: the session is
closed and every request in flight fails.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edgeprune.errors import DeviceError
from edgeprune.fleet.transport import (
    Channel,
    CommandTimeout,
    ConnectionLost,
    OutputTooLarge,
    Transport,
)

PROTOCOL = "1.1"
HELLO_TIMEOUT_S = 60.0
BYE_TIMEOUT_S = 5.0

ProgressSink = Callable[[dict[str, Any]], None]


class SessionUnavailable(DeviceError):
    """The agent could not start a session; `unsupported` when it is too old to know one."""

    def __init__(self, message: str, exit_code: int | None, stderr: str) -> None:
        super().__init__(message)
        self.agent_exit_code = exit_code
        self.stderr = stderr

    @property
    def unsupported(self) -> bool:
        """An older agent: `session` is an unknown command (argparse's exit 2), or the
        protocol's major version differs."""
        return self.agent_exit_code == 2


@dataclass(frozen=True)
class Reply:
    """What one command answered: as per-call `--json` would have (document, code, line)."""

    exit_code: int
    document: Any
    error: str | None


_EOF = object()


class AgentSession:
    """A live session; `call` from any thread, `close` once."""

    def __init__(self, channel: Channel, device_name: str, max_line_bytes: int) -> None:
        self.channel = channel
        self.device_name = device_name
        self.max_line_bytes = max_line_bytes
        self.hello: dict[str, Any] = {}
        self._has_asked: tuple[str, ...] | None = None
        self.round_trips = 0
        """Requests sent that wait for an answer (hello, commands, batches, ping, bye)."""
        self._ids = itertools.count(1)
        self._pending: dict[int, queue.Queue[Any]] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._dead: DeviceError | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def open(
        cls,
        transport: Transport,
        argv: Sequence[str],
        timeout: float = HELLO_TIMEOUT_S,
        has: Sequence[str] | None = None,
    ) -> AgentSession:
        """Start the agent's session and say hello; SessionUnavailable when it will not.

        `has`: content hashes the command will ask about; an agent of protocol 1.1 answers
        them in its hello (`take_has`), saving the `has` round trip."""
        try:
            channel = transport.open_channel(argv)
        except OSError as exc:  # a local interpreter that is not there
            raise SessionUnavailable(
                f"device {transport.device_name}: cannot run {argv[0]}: {exc.strerror or exc}",
                127,
                "",
            ) from None
        session = cls(channel, transport.device_name, transport.max_output_bytes)
        try:
            session.hello = session._hello(timeout, has)
        except BaseException:
            session.abort()
            raise
        return session

    def _hello(self, timeout: float, has: Sequence[str] | None) -> dict[str, Any]:
        message: dict[str, Any] = {"op": "hello", "protocol": PROTOCOL}
        if has:
            message["has"] = list(has)
            self._has_asked = tuple(has)
        try:
            answer = self._exchange(message, timeout, None)
        except ConnectionLost:
            code = self.channel.exit_code(5.0)
            if code is None:
                raise
            stderr = self.channel.stderr_text()
            raise SessionUnavailable(
                f"device {self.device_name}: the agent started no session (exit {code})",
                code,
                stderr,
            ) from None
        except CommandTimeout:
            raise
        except DeviceError as exc:  # not the protocol (a wrong `python:`, a flood): per call
            raise SessionUnavailable(
                f"device {self.device_name}: no agent session ({exc})", None, ""
            ) from None
        if answer.get("op") != "hello" or answer.get("error"):
            raise SessionUnavailable(
                f"device {self.device_name}: the agent refused the session: "
                f"{answer.get('error') or answer}",
                int(answer.get("exit_code") or 2),
                "",
            )
        return answer

    def take_has(self, sha256s: Sequence[str]) -> Reply | None:
        """The hello's answer to `has -- SHA256S`, once; None when the hello asked other
        hashes, or the agent (protocol 1.0) answers no `has` in its hello."""
        with self._lock:
            asked, self._has_asked = self._has_asked, None
            answer = self.hello.pop("has", None)
        if asked != tuple(sha256s) or not isinstance(answer, dict):
            return None
        return _reply(answer)

    # ------------------------------------------------------------------ requests

    @property
    def alive(self) -> bool:
        return self._dead is None

    def call(
        self, argv: Sequence[str], timeout: float, on_progress: ProgressSink | None = None
    ) -> Reply:
        """Run one agent command (its words, as per call) in the session."""
        answer = self._exchange({"argv": list(argv)}, timeout, on_progress)
        return _reply(answer)

    def batch(self, argvs: Sequence[Sequence[str]], timeout: float) -> list[Reply]:
        """Several commands in one request, run one after the other; one Reply each."""
        answer = self._exchange({"batch": [list(a) for a in argvs]}, timeout, None)
        replies = answer.get("replies")
        if not isinstance(replies, list) or len(replies) != len(argvs):
            raise DeviceError(f"device {self.device_name}: the agent sent a bad batch reply")
        return [_reply(item) for item in replies]

    def ping(self, timeout: float = 10.0) -> float:
        """Round-trip seconds (answered even while a wait blocks)."""
        start = time.monotonic()
        self._exchange({"op": "ping"}, timeout, None)
        return time.monotonic() - start

    def _exchange(
        self, message: dict[str, Any], timeout: float, on_progress: ProgressSink | None
    ) -> dict[str, Any]:
        ident = next(self._ids)
        inbox: queue.Queue[Any] = queue.Queue()
        with self._lock:
            if self._dead is not None:
                raise self._dead
            self._pending[ident] = inbox
            self.round_trips += 1
        try:
            self._send(dict(message, id=ident))
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                try:
                    item = inbox.get(timeout=max(0.0, left))
                except queue.Empty:
                    self._interrupt(ident)
                    what = " ".join(message.get("argv", [message.get("op", "batch")])[:2])
                    raise CommandTimeout(
                        f"device {self.device_name}: {what} ran longer than {timeout:g} s "
                        "and was stopped"
                    ) from None
                if item is _EOF:
                    assert self._dead is not None
                    raise self._dead
                if "progress" in item:
                    if on_progress is not None and isinstance(item["progress"], dict):
                        on_progress(item["progress"])
                    continue
                return dict(item)
        finally:
            with self._lock:
                self._pending.pop(ident, None)

    def _interrupt(self, target: int) -> None:
        with contextlib.suppress(DeviceError):
            self._send({"id": next(self._ids), "op": "interrupt", "target": target})

    def _send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode("utf-8")
        with self._send_lock:
            try:
                self.channel.send(data)
            except ConnectionLost as exc:
                self._die(exc)
                raise

    # ------------------------------------------------------------------ reader

    def _read(self) -> None:
        buffer = bytearray()
        try:
            while True:
                chunk = self.channel.recv(1 << 16)
                if not chunk:
                    raise ConnectionLost(
                        f"device {self.device_name}: the agent session ended "
                        f"({_last_line(self.channel.stderr_text())})"
                    )
                buffer += chunk
                while (end := buffer.find(b"\n")) >= 0:
                    line = bytes(buffer[:end])
                    del buffer[: end + 1]
                    self._dispatch(line)
                if len(buffer) > self.max_line_bytes:
                    raise OutputTooLarge(
                        f"device {self.device_name}: the agent session sent a line longer than "
                        f"{self.max_line_bytes / (1 << 20):.1f} MB and was stopped; check its agent version"
                    )
        except DeviceError as exc:
            self._die(exc)
        except Exception as exc:  # a bug here must still wake the requests waiting
            self._die(ConnectionLost(f"device {self.device_name}: session reader failed: {exc}"))

    def _dispatch(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            raise DeviceError(
                f"device {self.device_name}: the agent session sent a line that is not JSON "
                f"({line[:120]!r})"
            ) from None
        if not isinstance(message, dict):
            raise DeviceError(f"device {self.device_name}: the agent session sent {line[:120]!r}")
        with self._lock:
            inbox = self._pending.get(message.get("id"))  # type: ignore[arg-type]
        if inbox is not None:
            inbox.put(message)
        elif message.get("id") is None and message.get("error"):
            raise DeviceError(
                f"device {self.device_name}: the agent ended the session: {message['error']}"
            )

    def _die(self, reason: DeviceError) -> None:
        with self._lock:
            if self._dead is None:
                self._dead = reason
            waiting = list(self._pending.values())
        for inbox in waiting:
            inbox.put(_EOF)

    # ------------------------------------------------------------------ end

    def close(self) -> None:
        """`bye` (the agent finishes what is in flight), then let go of the channel."""
        if self.alive:
            with contextlib.suppress(DeviceError):
                self._exchange({"op": "bye"}, BYE_TIMEOUT_S, None)
        self.abort()

    def abort(self) -> None:
        """Let go without a goodbye (a dropped link, a failed hello)."""
        self._die(ConnectionLost(f"device {self.device_name}: the agent session was closed"))
        with contextlib.suppress(Exception):
            self.channel.close()


def _reply(answer: dict[str, Any]) -> Reply:
    code = answer.get("exit_code")
    error = answer.get("error")
    return Reply(
        int(code) if isinstance(code, int) else 1,
        answer.get("document"),
        str(error) if error is not None else None,
    )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no message"
