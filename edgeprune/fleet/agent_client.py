"""The host's side of docs/agent-contract.md: each agent command as a method returning plain data.

Every call is `<python> -m device_agents <command> ... --spool <spool> --json` through the
device's transport, so the `local` device and a board over SSH are driven by the same code.
The calls go through one agent session (agent_session.py) opened on first use and kept for
the client's life, so the board starts the agent once per host command; an agent too old for
sessions (or EDGEPRUNE_AGENT_SESSION=0) gets one process per call, as before.
Commands that are safe to repeat (doctor, has, status, wait, result, ack) are retried after a
dropped connection; `submit` is retried only when the job id shows it did not arrive.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from device_agents.protocol import BenchOptions, ProtocolError, Result
from edgeprune.errors import DeviceError
from edgeprune.fleet.agent_session import (
    AgentSession,
    ProgressSink,
    Reply,
    SessionUnavailable,
)
from edgeprune.fleet.cancel import CANCEL_WAIT_S
from edgeprune.fleet.retry import retry_on_drop
from edgeprune.fleet.transport import CommandResult, ConnectionLost, Transport

AGENT_MODULE = "device_agents"
SESSION_ENV = "EDGEPRUNE_AGENT_SESSION"
"""Set to 0 to make every agent call its own process (what benchmarks compare against)."""
# Running these twice changes nothing on the device: retried after a dropped connection.
IDEMPOTENT = frozenset({"doctor", "has", "part", "status", "wait", "result", "ack"})


@dataclass(frozen=True)
class GroupMember:
    """One model of a group job: its member job id, sha256 and label (all as the agent checks)."""

    job_id: str
    sha256: str
    label: str


@dataclass(frozen=True)
class UploadPart:
    """An upload part in incoming/ that this command now owns: where, how long, its hash."""

    path: str
    length: int
    sha256: str


class AgentError(DeviceError):
    """The agent ran and said no (bad input, job failed, result not there yet)."""

    def __init__(self, message: str, agent_exit_code: int = 1) -> None:
        super().__init__(message)
        self.agent_exit_code = agent_exit_code


class AgentNotInstalled(DeviceError):
    """No agent (or no interpreter for it) on the device."""


def bench_option_args(options: BenchOptions) -> list[str]:
    """The contract's bench options as command-line words (identical for submit and run)."""
    options.validate()
    args = ["--threads=" + ",".join(str(t) for t in options.threads)]
    if options.runs is not None:
        args.append(f"--runs={options.runs}")
    if options.min_seconds is not None:
        args.append(f"--min-seconds={float(options.min_seconds)!r}")
    args.append(f"--warmup={options.warmup}")
    args.append("--xnnpack" if options.xnnpack else "--no-xnnpack")
    if options.cpus:
        args.append("--cpus=" + ",".join(str(c) for c in options.cpus))
    if options.delay_ms:
        args.append(f"--delay-ms={float(options.delay_ms)!r}")
    args += [f"--timeout={float(options.timeout_s)!r}", f"--seed={options.seed}"]
    if options.runtime:
        args.append(f"--runtime={options.runtime}")
    if options.round_runs != BenchOptions.round_runs:
        args.append(f"--round-runs={options.round_runs}")
    if options.precision is not None:
        args.append(f"--precision={float(options.precision)!r}")
    if options.max_seconds is not None:
        args.append(f"--max-seconds={float(options.max_seconds)!r}")
    if options.rounds_per_process != BenchOptions.rounds_per_process:
        args.append(f"--rounds-per-process={options.rounds_per_process}")
    return args


class AgentClient:
    """Talks to the agent of one device: `python -m device_agents ... --spool SPOOL --json`."""

    def __init__(
        self,
        transport: Transport,
        python: str,
        spool: str,
        command_timeout: float = 600.0,
        retries: int = 0,
        use_session: bool | None = None,
    ) -> None:
        self.transport = transport
        self.python = python
        self.spool = spool
        self.command_timeout = command_timeout
        self.retries = retries
        if use_session is None:
            use_session = os.environ.get(SESSION_ENV, "1").strip() not in ("0", "no", "off")
        self.use_session = use_session
        self._session: AgentSession | None = None
        self._session_lock = threading.Lock()

    @property
    def device_name(self) -> str:
        return self.transport.device_name

    def argv(self, command: str, *args: str) -> list[str]:
        """Options first, as `--name=value`; callers end `args` with `--` before positionals,
        so no value (a label, a path, a job id) can ever be read as a flag."""
        return [self.python, "-m", AGENT_MODULE, command, f"--spool={self.spool}", "--json", *args]

    # ----------------------------------------------------------------- session

    def session(self, has: Sequence[str] | None = None) -> AgentSession | None:
        """The open agent session, opened now if need be; None when calls go one by one.

        `has`: hashes to ask about in the hello, when this call opens the session."""
        with self._session_lock:
            if self._session is not None and not self._session.alive:
                self._session.abort()  # its link dropped: the next call opens a new one
                self._session = None
            if self._session is None and self.use_session:
                argv = [self.python, "-m", AGENT_MODULE, "session", f"--spool={self.spool}"]
                try:
                    self._session = AgentSession.open(self.transport, argv, has=has)
                except SessionUnavailable as refused:
                    if refused.unsupported:  # an older agent: per call from now on
                        self.use_session = False
                    return None  # not installed: this call fails per call, with its message
                except NotImplementedError:
                    self.use_session = False
            return self._session

    def close(self) -> None:
        """End the agent session, if one is open (the transport stays open)."""
        with self._session_lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def run_command(
        self,
        command: str,
        *args: str,
        timeout: float,
        on_progress: ProgressSink | None = None,
    ) -> CommandResult:
        """One agent command, in the session when there is one (else its own process)."""
        session = self.session()
        if session is None:
            return self.transport.run(self.argv(command, *args), timeout=timeout)
        words = [command, "--json", *args]
        try:
            reply = session.call(words, timeout, on_progress)
        except ConnectionLost:
            with contextlib.suppress(Exception):
                session.abort()
            raise
        return _as_result(words, reply)

    # ----------------------------------------------------------------- calls

    def call(
        self,
        command: str,
        *args: str,
        timeout: float | None = None,
        report_key: str | None = None,
        on_progress: ProgressSink | None = None,
    ) -> Any:
        """Run one agent command; its JSON on success, else AgentError with the agent's line.

        `report_key`: some commands exit 1 with a full document (doctor when nothing can be
        benchmarked; wait/result for an error Result); a document holding this key is
        returned rather than raised. `on_progress` gets the progress lines a session's
        `wait` streams.
        """

        def once() -> CommandResult:
            return self.run_command(
                command, *args, timeout=timeout or self.command_timeout, on_progress=on_progress
            )

        retries = self.retries if command in IDEMPOTENT else 0
        result = retry_on_drop(self.transport, retries, once)
        return self._outcome(command, result, report_key)

    def _outcome(self, command: str, result: CommandResult, report_key: str | None) -> Any:
        """A command's JSON document, or the AgentError its failure means."""
        self._check_installed(result)
        payload = self._parse(command, result)
        if (
            report_key
            and result.exit_code == 1
            and isinstance(payload, dict)
            and report_key in payload
        ):
            return payload
        if not result.ok:
            message = (
                payload.get("error") if isinstance(payload, dict) and payload.get("error") else None
            )
            raise AgentError(
                f"device {self.device_name}: agent {command} failed: {message or result.last_error_line()}",
                result.exit_code,
            )
        return payload

    def _check_installed(self, result: CommandResult) -> None:
        missing_python = result.exit_code == 127 or (
            "No such file or directory" in result.stderr and self.python in result.stderr
        )
        missing_module = f"No module named {AGENT_MODULE}" in result.stderr
        if missing_python or missing_module:
            raise AgentNotInstalled(
                f"device {self.device_name}: the agent is not installed "
                f"(run: edgeprune agent install {self.device_name})"
            )

    def _parse(self, command: str, result: CommandResult) -> Any:
        text = result.stdout.strip()
        if not text:
            if result.ok:
                raise DeviceError(f"device {self.device_name}: agent {command} printed nothing")
            return None
        try:
            return json.loads(text)
        except ValueError:
            if result.ok:
                raise DeviceError(
                    f"device {self.device_name}: agent {command} printed no JSON "
                    f"({text.splitlines()[-1][:200]!r}); is the agent version right?"
                ) from None
            return None

    # ----------------------------------------------------------------- commands

    def doctor(self) -> dict[str, Any]:
        return self.call("doctor", timeout=120, report_key="agent_version")

    def has(self, sha256s: Sequence[str]) -> set[str]:
        """Which of these models the device holds (verified at admission)."""
        if not sha256s:
            return set()
        wanted = list(sha256s)
        answered = self._has_in_hello(wanted)
        if answered is not None:
            payload = self._outcome("has", answered, None)
        else:
            payload = self.call("has", "--", *wanted, timeout=60)
        return set(payload.get("present", []))

    def _has_in_hello(self, wanted: list[str]) -> CommandResult | None:
        """When `has` is the command's first agent call: open the session asking it in the
        hello (protocol 1.1), one round trip for both. None: ask by an ordinary call (the
        session is open already, per-call mode, an agent of protocol 1.0, a dropped link)."""
        with self._session_lock:
            if not self.use_session or (self._session is not None and self._session.alive):
                return None
        try:
            session = self.session(has=wanted)
        except ConnectionLost:
            if self.retries < 1:
                raise  # no retries asked for: a cut during the hello fails as one during `has`
            return None  # the ordinary call reconnects and retries
        reply = session.take_has(wanted) if session is not None else None
        return None if reply is None else _as_result(["has", "--json", "--", *wanted], reply)

    def admit(self, path: str, sha256: str, kind: str = "model") -> dict[str, Any]:
        args = [f"--sha256={sha256}"]
        if kind != "model":
            args.append(f"--kind={kind}")
        args += ["--", path]
        return self.call("admit", *args, timeout=300)

    def claim_part(self, sha256: str, token: str) -> UploadPart:
        """Take over the longest idle upload part of `sha256` in incoming/ as
        `<sha256>.<token>.part` (renamed atomically); its length and the sha256 of its bytes.
        Length 0 when there is none (nothing is created)."""
        payload = self.call("part", f"--sha256={sha256}", f"--claim={token}", timeout=300)
        try:
            return UploadPart(str(payload["path"]), int(payload["length"]), str(payload["sha256"]))
        except (KeyError, TypeError, ValueError):
            raise DeviceError(
                f"device {self.device_name}: agent part printed an unexpected document; is the "
                "agent version right?"
            ) from None

    def submit(
        self,
        sha256: str,
        options: BenchOptions,
        *,
        job_id: str | None = None,
        label: str = "",
        inputs: str | None = None,
    ) -> str:
        """Queue one model's job; its id."""
        args = [f"--sha256={sha256}", *bench_option_args(options)]
        if inputs:
            args.append(f"--inputs={inputs}")
        if job_id:
            args.append(f"--id={job_id}")
        if label:
            args.append(f"--label={label}")
        return self._submit(args, job_id)

    def submit_group(
        self,
        members: Sequence[GroupMember],
        options: BenchOptions,
        *,
        job_id: str,
        inputs: str | None = None,
    ) -> str:
        """Queue one group job measuring `members` (2 or more) in alternating rounds; its id.

        Each member gets its own Result (job id = its member id) inside the group's.
        """
        if len(members) < 2:
            raise ValueError("a group job needs two or more members")
        args = [f"--sha256={m.sha256}" for m in members]
        args += bench_option_args(options)
        if inputs:
            args.append(f"--inputs={inputs}")
        args.append(f"--id={job_id}")
        args += [f"--label={m.label}" for m in members]
        args += [f"--member-id={m.job_id}" for m in members]
        return self._submit(args, job_id)

    def _submit(self, args: list[str], job_id: str | None) -> str:
        if job_id is None:
            return str(self.call("submit", *args, timeout=120)["job_id"])
        attempt = 0
        while True:  # a dropped link may or may not have queued it: the id tells
            try:
                return str(self.call("submit", *args, timeout=120)["job_id"])
            except ConnectionLost:
                attempt += 1
                if attempt > self.retries:
                    raise
            if self.knows(job_id):
                return job_id

    def knows(self, job_id: str) -> bool:
        """Is this job queued, running or finished on the device?"""
        status = self.status()
        return any(job_id in status.get(key, []) for key in ("queued", "running", "results"))

    def status(self) -> dict[str, Any]:
        return self.call("status", timeout=60)

    def wait(
        self,
        job_id: str,
        timeout: float,
        pending_ok: bool = False,
        on_progress: ProgressSink | None = None,
    ) -> Result | None:
        """The job's Result once it exists; with `pending_ok`, None if it is still queued or
        running when `timeout` runs out (else that is an AgentError, as is an unknown job).
        In a session, `on_progress` gets the job's progress documents as the board runs it."""
        try:
            payload = self.call(
                "wait",
                f"--timeout={float(timeout)!r}",
                "--",
                job_id,
                timeout=timeout + 60,
                report_key="job_id",
                on_progress=on_progress,
            )
        except AgentError as exc:
            if not pending_ok or exc.agent_exit_code != 1:
                raise
            if self.pending(job_id):
                return None
            finished = self.result(job_id)  # it may have finished since the wait gave up
            if finished is None:
                raise
            return finished
        return self._result(payload)

    def pending(self, job_id: str) -> bool:
        """Is this job still queued or running on the device?"""
        status = self.status()
        return any(job_id in status.get(key, []) for key in ("queued", "running"))

    def result(self, job_id: str) -> Result | None:
        try:
            payload = self.call("result", "--", job_id, timeout=60, report_key="job_id")
        except AgentError as exc:
            if exc.agent_exit_code == 1:
                return None
            raise
        return self._result(payload)

    def ack(self, job_id: str) -> None:
        self.call("ack", "--", job_id, timeout=60)

    def cancel(self, job_ids: Sequence[str], wait_s: float = CANCEL_WAIT_S) -> list[dict[str, Any]]:
        """Cancel jobs (docs/agent-contract.md `cancel`): one record per id saying what became
        of it (`outcome`: cancelled, stopping, finished or unknown). Safe to repeat."""
        if not job_ids:
            return []
        payload = self.call(
            "cancel", f"--wait={float(wait_s)!r}", "--", *job_ids, timeout=wait_s + 30
        )
        return list(payload.get("jobs", [])) if isinstance(payload, dict) else []

    def serve_once(self, timeout: float) -> None:
        """Drain the queue in the foreground (a device with no daemon running)."""
        result = self.run_command("serve", "--once", timeout=timeout)
        self._check_installed(result)
        if not result.ok:
            raise AgentError(
                f"device {self.device_name}: agent serve --once failed: {result.last_error_line()}",
                result.exit_code,
            )

    def _result(self, payload: Any) -> Result:
        try:
            return Result.from_json(payload)
        except ProtocolError as exc:
            raise DeviceError(
                f"device {self.device_name}: the agent sent a bad result: {exc}"
            ) from None


def _as_result(words: list[str], reply: Reply) -> CommandResult:
    """A session's reply as the CommandResult its per-call process would have given."""
    stdout = "" if reply.document is None else json.dumps(reply.document)
    stderr = f"error: {reply.error}" if reply.error else ""
    return CommandResult(tuple(words), reply.exit_code, stdout, stderr)
