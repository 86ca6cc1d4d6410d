"""`edgeprune-agent session`: many commands over one process, as JSON lines on stdin/stdout.

One agent process per device per host command (like `rsync --server`): the host pays the
interpreter's start-up once, not per `has`/`submit`/`wait`/`ack`. Each request carries the
words a per-call command takes and runs the same COMMANDS function in this process; its
reply holds what `--json` would print (document, exit code, error line). The protocol is in
docs/agent-contract.md ("Session protocol").

Concurrency: the main thread reads requests; each command request runs in its own thread
(at most MAX_IN_FLIGHT), so `ping` and `interrupt` (answered by the reader at once) and a
`cancel` command are served while a `wait` or `serve --once` blocks. Replies are written
whole, one line each, under a lock, in the order they finish. stdout carries protocol lines
only: file descriptor 1 is pointed at stderr for the session's life, so anything a command
or a child process prints lands on stderr.

End: `bye` (after the requests in flight finish) or EOF. At EOF, waits are interrupted (no
one is left to read them) while `serve --once` drains the queue as it would per call.
SIGTERM/SIGINT interrupt every request, then the session exits 130.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import IO, Any, Dict, List, Optional

from . import __version__, request_context
from .request_context import RequestContext

PROTOCOL = "1.1"
MAX_REQUEST_BYTES = 1 << 20
MAX_IN_FLIGHT = 16
MAX_BATCH = 64
CONTROL_OPS = ("hello", "ping", "interrupt", "bye")
HELLO_FEATURES = ("hello-has",)
"""Protocol 1.1: the hello may carry `has` (content hashes); its reply answers them."""


class ProtocolViolation(Exception):
    """A request the session cannot go on after (no id, not JSON, wrong major version)."""

    def __init__(self, message: str, ident: Any = None) -> None:
        super().__init__(message)
        self.ident = ident


def capabilities() -> List[str]:
    """What this agent's session offers: its commands, then the protocol's features."""
    from .cli import _command_names

    commands = [name for name in _command_names() if name != "session"]
    return [*commands, "batch", "progress", "ping", "interrupt", *HELLO_FEATURES]


class Session:
    """One session over a pair of byte streams (the process's, or pipes in tests)."""

    def __init__(self, spool: Optional[str], reader: IO[bytes], writer: IO[bytes]) -> None:
        self.spool = spool
        self.reader = reader
        self.writer = writer
        self._write_lock = threading.Lock()
        self._requests: Dict[Any, RequestContext] = {}
        self._threads: Dict[Any, threading.Thread] = {}
        self._table_lock = threading.Lock()
        self._greeted = False
        self.closed = False

    # ------------------------------------------------------------------ wire

    def send(self, message: Dict[str, Any]) -> None:
        """One protocol line; a document JSON cannot hold (NaN) becomes that request's error."""
        try:
            line = json.dumps(message, sort_keys=True, allow_nan=False)
        except ValueError as exc:
            line = json.dumps(
                {"id": message.get("id"), "exit_code": 1, "document": None, "error": str(exc)}
            )
        data = (line + "\n").encode("utf-8")
        with self._write_lock:
            if self.closed:
                return
            try:
                self.writer.write(data)
                self.writer.flush()
            except (BrokenPipeError, ValueError, OSError):  # the host left: stop talking
                self.closed = True

    # ------------------------------------------------------------------ loop

    def serve(self) -> int:
        """Answer requests until `bye` or EOF; the exit code."""
        try:
            while True:
                line = self.reader.readline(MAX_REQUEST_BYTES + 1)
                if not line:
                    self._finish(interrupt_waits=True)
                    return 0
                if len(line) > MAX_REQUEST_BYTES:
                    self.send({"id": None, "exit_code": 2, "error": "request line too long"})
                    self._finish(interrupt_waits=True)
                    return 2
                if not line.strip():
                    continue
                try:
                    if self._handle(line):
                        return 0
                except ProtocolViolation as exc:
                    self.send({"id": exc.ident, "exit_code": 2, "error": str(exc)})
                    self._finish(interrupt_waits=True)
                    return 2
        except KeyboardInterrupt:
            self._finish(interrupt_waits=True, interrupt_all=True)
            return 130

    def _handle(self, line: bytes) -> bool:
        """One request line; True when it was `bye`."""
        try:
            request = json.loads(line.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ProtocolViolation("a request is one JSON object per line") from None
        if not isinstance(request, dict) or "id" not in request:
            raise ProtocolViolation('every request is a JSON object with an "id"')
        ident = request["id"]
        if not isinstance(ident, (int, str)) or isinstance(ident, bool):
            raise ProtocolViolation('"id" must be a number or a string')
        op = request.get("op")
        if not self._greeted:
            if op != "hello":
                raise ProtocolViolation('the first request must be {"op": "hello", ...}')
            self._hello(ident, request)
            self._greeted = True
            return False
        if op is not None:
            return self._control(ident, op, request)
        if "argv" in request:
            batch = [request["argv"]]
        elif "batch" in request:
            batch = request["batch"]
            if not isinstance(batch, list) or not 0 < len(batch) <= MAX_BATCH:
                return self._refuse(ident, f'"batch" must be a list of 1 to {MAX_BATCH} argvs')
        else:
            return self._refuse(ident, 'a request needs "argv", "batch" or "op"')
        for argv in batch:
            if not isinstance(argv, list) or not all(isinstance(w, str) for w in argv):
                return self._refuse(ident, '"argv" must be a list of strings')
        self._start(ident, batch, "batch" in request)
        return False

    def _refuse(self, ident: Any, message: str) -> bool:
        self.send({"id": ident, "exit_code": 2, "document": {"error": message}, "error": message})
        return False

    def _hello(self, ident: Any, request: Dict[str, Any]) -> None:
        wanted = str(request.get("protocol", ""))
        major = wanted.split(".", 1)[0]
        if major != PROTOCOL.split(".", 1)[0]:
            raise ProtocolViolation(
                f"the host speaks session protocol {wanted or '(none given)'}; this agent "
                f"({__version__}) speaks {PROTOCOL}: install a matching agent "
                "(edgeprune agent install DEVICE)",
                ident,
            )
        answer = {
            "id": ident,
            "op": "hello",
            "protocol": PROTOCOL,
            "agent_version": __version__,
            "capabilities": capabilities(),
            "python": ".".join(str(part) for part in sys.version_info[:3]),
            "pid": os.getpid(),
        }
        wanted_has = request.get("has")
        if wanted_has is not None and "hello-has" in HELLO_FEATURES:  # () speaks 1.0 (tests)
            answer["has"] = self._hello_has(wanted_has)
        self.send(answer)

    def _hello_has(self, entries: Any) -> Dict[str, Any]:
        """What `has -- ENTRIES` answers (the same command), saving the host a round trip."""
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            message = '"has" in hello must be a list of strings'
            return {"exit_code": 2, "document": {"error": message}, "error": message}
        from .cli import execute

        try:
            reply = execute(["has", "--json", "--", *entries], self.spool)
        except Exception as exc:  # an agent bug: this answer fails, the session goes on
            error = f"agent error: {type(exc).__name__}: {exc}"
            return {"exit_code": 1, "document": None, "error": error}
        return {"exit_code": reply.code, "document": reply.document, "error": reply.error}

    def _control(self, ident: Any, op: Any, request: Dict[str, Any]) -> bool:
        if op == "ping":
            self.send({"id": ident, "op": "pong"})
        elif op == "interrupt":
            with self._table_lock:
                context = self._requests.get(request.get("target"))
            if context is not None:
                context.stop.set()
            self.send({"id": ident, "op": "interrupt", "interrupted": context is not None})
        elif op == "bye":
            self._finish(interrupt_waits=False)
            self.send({"id": ident, "op": "bye"})
            return True
        else:
            self._refuse(ident, f"unknown op {op!r}; ops are {', '.join(CONTROL_OPS)}")
        return False

    # ------------------------------------------------------------------ requests

    def _start(self, ident: Any, batch: List[List[str]], batched: bool) -> None:
        with self._table_lock:
            if ident in self._requests:
                self._refuse(ident, f"request id {ident!r} is still in flight")
                return
            if len(self._requests) >= MAX_IN_FLIGHT:
                self._refuse(ident, f"more than {MAX_IN_FLIGHT} requests in flight")
                return
            context = RequestContext(lambda doc: self.send({"id": ident, "progress": doc}))
            context.drains = any(argv[:1] == ["serve"] for argv in batch)
            self._requests[ident] = context
            thread = threading.Thread(
                target=self._run, args=(ident, batch, batched, context), daemon=True
            )
            self._threads[ident] = thread
        thread.start()

    def _run(
        self, ident: Any, batch: List[List[str]], batched: bool, context: RequestContext
    ) -> None:
        from .cli import execute

        request_context.enter(context)
        replies = []
        try:
            for argv in batch:
                reply = execute(list(argv), self.spool)
                replies.append(
                    {"exit_code": reply.code, "document": reply.document, "error": reply.error}
                )
        except Exception as exc:  # an agent bug must still answer this id, not kill the session
            replies.append(
                {
                    "exit_code": 1,
                    "document": None,
                    "error": f"agent error: {type(exc).__name__}: {exc}",
                }
            )
        finally:
            request_context.enter(None)
        try:  # answered before it leaves the table: `bye` (which joins it) comes after it
            if batched:
                self.send({"id": ident, "replies": replies})
            else:
                self.send(dict(replies[0], id=ident))
        finally:
            with self._table_lock:
                self._requests.pop(ident, None)
                self._threads.pop(ident, None)

    def _finish(self, interrupt_waits: bool, interrupt_all: bool = False) -> None:
        """Let the requests in flight end (waits interrupted at EOF, all on a signal)."""
        with self._table_lock:
            contexts = list(self._requests.items())
            threads = list(self._threads.values())
        if interrupt_waits or interrupt_all:
            for _, context in contexts:
                if interrupt_all or not context.drains:
                    context.stop.set()
        for thread in threads:
            thread.join()


def serve_stdio(spool: Optional[str]) -> int:
    """The session on this process's stdin/stdout; fd 1 goes to stderr meanwhile."""
    protocol_fd = os.dup(sys.stdout.fileno())
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints (children too) -> stderr
    writer = os.fdopen(protocol_fd, "wb", buffering=0)
    reader = os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    previous = {}

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, interrupt)
    try:
        return Session(spool, reader, writer).serve()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        writer.close()
        reader.close()
