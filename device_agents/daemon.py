"""`edgeprune-agent serve`: claim a job, benchmark it, write its result; one job at a time.

Restart recovery (the choice, documented in docs/agent-contract.md): a job found in
jobs/running/ at start was interrupted. If its result is already on disk (the agent died
between writing it and clearing running/), the running file is just removed: the job never
runs twice. Otherwise it is re-queued and run again, once; its result then carries the
warning `rerun_after_interruption`. A job that was running during two deaths of the agent
gets an error result (kind "interrupted") instead of a third try, so a job that kills the
agent or the board cannot loop forever. Attempts are counted in jobs/attempts/<id>.

SIGTERM/SIGINT: the running benchmark child is killed, the job goes back to queued/
(without counting an attempt), and the daemon exits 0.

Cancelled jobs (`edgeprune-agent cancel`, cancel.py): the daemon looks for a job's cancel mark
every tick while it runs; when it appears the benchmark's process group is killed and a
`cancelled` result written. A job marked before it is claimed, or found marked in running/ at
restart, gets that result without running: a cancelled job is never re-queued.

A result that cannot be written (disk full) is kept in memory and retried every poll for
`write_retry_s`; after that a short error result (kind "write_failed") is tried instead.
Until one is written the job stays in running/ and no new job starts.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional

from . import __version__
from .bench import BenchInterrupted
from .cancel import cancelled_result
from .errors import AgentError
from .job_runner import result_for_job_text, sha256_in
from .locks import LockBusy, acquire_daemon_lock, bench_lock
from .protocol import Result, Warning_, error_result
from .runtimes import describe_runtime
from .safe_files import open_regular
from .spool import Spool

log = logging.getLogger("edgeprune.agent")

MAX_ATTEMPTS = 2
PRUNE_EVERY_S = 3600.0
LOG_BYTES = 1 << 20


class _SpoolLogHandler(logging.handlers.RotatingFileHandler):
    """A rotating log opened 0600 without following a symlink planted at its name."""

    def __init__(self, path: str, spool_root: str, **kwargs: Any) -> None:
        self.spool_root = spool_root
        super().__init__(path, **kwargs)

    def _open(self) -> Any:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        fd = open_regular(self.baseFilename, flags, root=self.spool_root)
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=getattr(self, "errors", None))


def setup_logging(spool: Spool, to_stderr: bool = True) -> None:
    """logs/agent.log (rotated, 0600) and stderr (the journal under systemd)."""
    logging.raiseExceptions = False  # a full disk must not turn log lines into tracebacks
    log.setLevel(logging.INFO)
    log.propagate = False
    for old in list(log.handlers):
        log.removeHandler(old)
        old.close()
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    path = spool.path("logs", "agent.log")
    try:
        handler: logging.Handler = _SpoolLogHandler(
            path, spool.root, maxBytes=LOG_BYTES, backupCount=3
        )
        handler.setFormatter(formatter)
        log.addHandler(handler)
    except OSError as exc:
        print(f"warning: cannot write {path}: {exc.strerror}", file=sys.stderr)
    except AgentError as exc:
        print(f"warning: not logging to a file: {exc}", file=sys.stderr)
    if to_stderr:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        log.addHandler(stream)


class Daemon:
    def __init__(
        self,
        spool: Spool,
        poll_s: float = 1.0,
        once: bool = False,
        write_retry_s: float = 30.0,
        stop_check: Optional[Callable[[], bool]] = None,
    ) -> None:
        self.spool = spool
        self.poll_s = poll_s
        self.once = once
        self.write_retry_s = write_retry_s
        self._stop_check = stop_check  # a session's: the host asked this request to stop
        self._stopping = False
        self.pending: Optional[Result] = None
        self.pending_since = 0.0
        self._last_prune = 0.0

    @property
    def stopping(self) -> bool:
        return self._stopping or (self._stop_check is not None and self._stop_check())

    @stopping.setter
    def stopping(self, value: bool) -> None:
        self._stopping = value

    # ------------------------------------------------------------------ lifecycle

    def serve(self) -> int:
        self.spool.ensure()
        try:
            lock_fd = acquire_daemon_lock(self.spool.root)
        except LockBusy as busy:
            raise AgentError(
                f"another agent (pid {busy.pid or '?'}) already serves {self.spool.root}"
            ) from None
        replaced: Dict[int, Any] = {}
        try:
            setup_logging(self.spool)
            replaced = self._install_signals()
            log.info("agent %s serving %s (pid %d)", __version__, self.spool.root, os.getpid())
            if os.getuid() == 0:
                log.warning("running as root: run the agent as an ordinary user")
            self.recover()
            return self._loop()
        finally:
            for sig, handler in replaced.items():  # a caller that embeds us gets its own back
                signal.signal(sig, handler)
            os.close(lock_fd)

    def _install_signals(self) -> Dict[int, Any]:
        """SIGTERM and SIGINT stop the loop; returns the handlers they replaced."""
        if threading.current_thread() is not threading.main_thread():
            return {}  # a session's request thread: the session handles signals and stops us

        def stop(signum: int, _frame: Any) -> None:
            if not self.stopping:
                log.info("received %s: stopping", signal.Signals(signum).name)
            self.stopping = True

        return {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _loop(self) -> int:
        while not self.stopping:
            if self.pending is not None:
                if not self._deliver(self.pending):
                    if self.once and self._gave_up():
                        log.error("exiting with a result still unwritten; it stays in running/")
                        return 1
                    self._sleep(self.poll_s)
                continue
            try:
                self._maybe_prune()
                self.spool.check()  # a directory swapped for a link since start: stop here
                job_id = self.spool.claim_next()
                if job_id is None:
                    if self.once:
                        break
                    self._sleep(self.poll_s)
                    continue
                self._process(job_id)
            except OSError as exc:  # e.g. the spool's disk went away: keep serving, say why
                log.error("spool error: %s (%s); retrying", exc.strerror or exc, exc.filename)
                self._sleep(max(self.poll_s, 5.0))
        log.info("agent stopped")
        return 0

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))

    def _maybe_prune(self) -> None:
        if time.monotonic() - self._last_prune >= PRUNE_EVERY_S:
            self._last_prune = time.monotonic()
            removed = self.spool.prune_acked()
            if removed:
                log.info("pruned %d acknowledged result(s)", removed)

    # ------------------------------------------------------------------ jobs

    def recover(self) -> None:
        """Deal with jobs a previous agent left in running/ (see the module docstring)."""
        if self.spool.clear_stale_attempt_writes():
            log.info("removed half-written attempt counts left by a killed agent")
        for job_id in self.spool.list_ids("running"):
            if self.spool.has_result(job_id):
                self.spool.finish(job_id)
                log.info("job %s had finished before the restart; cleared running/", job_id)
                continue
            if self.spool.cancel_requested(job_id):
                log.info("job %s was cancelled while the agent was down; not re-queued", job_id)
                self._deliver(cancelled_result(job_id, self.spool.read_claimed(job_id)[0]))
                continue
            attempts = self.spool.attempts(job_id)
            if attempts >= MAX_ATTEMPTS:
                text, _ = self.spool.read_claimed(job_id)
                log.error("job %s was interrupted %d times; reporting it failed", job_id, attempts)
                self._deliver(
                    error_result(
                        job_id,
                        sha256_in(text),
                        f"the agent was killed {attempts} times while running this job (it may "
                        "crash the agent or the board); not retried",
                        error_kind="interrupted",
                        agent_version=__version__,
                        runtime=describe_runtime(),
                    )
                )
                continue
            self.spool.requeue(job_id)
            log.warning(
                "job %s was running when the agent stopped; re-queued (attempt %d of %d next)",
                job_id,
                attempts + 1,
                MAX_ATTEMPTS,
            )

    def _process(self, job_id: str) -> None:
        if self.spool.cancel_requested(job_id):
            log.info("job %s was cancelled before it started", job_id)
            self._deliver(cancelled_result(job_id, self.spool.read_claimed(job_id)[0]))
            return
        attempt = self.spool.attempts(job_id) + 1
        try:
            self.spool.set_attempts(job_id, attempt)
        except OSError as exc:  # a full disk: run the job anyway, uncounted
            log.warning("cannot record the attempt of job %s: %s", job_id, exc.strerror)
        text, problem = self.spool.read_claimed(job_id)
        log.info("running job %s (attempt %d)", job_id, attempt)
        started = time.time()

        def should_stop() -> bool:
            return self.stopping or self.spool.cancel_requested(job_id)

        try:
            with bench_lock(self.spool.root):
                result = result_for_job_text(
                    self.spool, job_id, text, problem, should_stop=should_stop
                )
        except BenchInterrupted:
            if self.spool.cancel_requested(job_id):
                log.info("job %s cancelled: its benchmark process was killed", job_id)
                self._deliver(cancelled_result(job_id, text, started_at=started))
                return
            self.spool.requeue(job_id)
            with contextlib.suppress(OSError):
                self.spool.set_attempts(job_id, attempt - 1)
            log.info("job %s interrupted by the stop request; re-queued", job_id)
            return
        except Exception as exc:  # an agent bug must still end in a result, not a lost job
            log.exception("agent error while running job %s", job_id)
            result = error_result(
                job_id,
                sha256_in(text),
                f"agent error: {type(exc).__name__}: {exc}",
                error_kind="runtime_error",
                agent_version=__version__,
                runtime=describe_runtime(),
            )
        if attempt > 1:
            for target in [result, *result.members]:  # a group's members are stored one by one
                target.warnings.append(
                    Warning_(
                        "rerun_after_interruption",
                        f"the agent stopped while this job ran; these numbers are from attempt "
                        f"{attempt}",
                    )
                )
        self._deliver(result)

    def _deliver(self, result: Result) -> bool:
        """Write the result and clear the job; on failure keep it pending (see module doc)."""
        try:
            self.spool.write_result(result)
        except OSError as exc:
            if self.pending is not result:
                self.pending, self.pending_since = result, time.monotonic()
                log.error(
                    "cannot write the result of job %s: %s; retrying", result.job_id, exc.strerror
                )
            if not self._gave_up():
                return False
            short = error_result(
                result.job_id,
                result.model_sha256,
                f"the result could not be written ({exc.strerror}); the benchmark ran but its "
                "numbers are lost: free space on the device and submit again",
                error_kind="write_failed",
                label=result.label,
                agent_version=__version__,
                runtime=result.runtime,
            )
            try:
                self.spool.write_result(short)
            except OSError:
                return False
            log.error("wrote a short error result for job %s instead", result.job_id)
        self.pending = None
        # logged before running/ is cleared: a kill in between leaves the job to `recover`,
        # which says so in its own words, so each job has one "finished job" line
        log.info(
            "finished job %s: %s%s",
            result.job_id,
            result.status,
            f" ({result.error_kind}: {result.error})" if result.error else "",
        )
        self.spool.finish(result.job_id)
        return True

    def _gave_up(self) -> bool:
        return time.monotonic() - self.pending_since >= self.write_retry_s
