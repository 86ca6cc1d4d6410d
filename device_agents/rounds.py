"""Measure several models in alternating rounds, each in its own long-lived child process.

Why rounds: a board's speed drifts (heat, clocks, a neighbour's load) on the scale of
seconds. Timing A fully, then B, puts the drift between them; asking every model for a few
runs in turn (A B C, B C A, ...) lands it on all of them alike, and the host can pair round
i of A with round i of B. Why a process per model: a runtime that crashes or hangs on one
model takes down only that member; the others carry on. Why a fresh process every
`rounds_per_process` rounds: one process's memory layout and cache placement give it a
fixed offset (two copies of one architecture came out 1.09x apart in one pair of processes
and 1.00x in the next), which no resampling of rounds can see; several process generations
let the host resample whole generations. The same loop serves a single model whose options
ask for `precision` (a group of one).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from array import array
from typing import Any, Callable, Dict, List, Optional

from .progress import Report, no_report
from .protocol import LatencySummary, Measurement, kept_latencies

MAX_TIMED_RUNS = 1_000_000  # per thread count, as for a single measurement; shared by a group
# A member that does not answer a round within max(HANG_FLOOR_S, HANG_FACTOR x the time
# its runs should take) is taken as hung and killed; the job's own deadline bounds it too.
HANG_FLOOR_S = 60.0
HANG_FACTOR = 50.0
# With `precision`, the median's interval is recomputed once a member's runs grew by this
# fraction (and by at least one round) since the last check: sorting every round would cost
# more than the runs of a fast model.
RECHECK_GROWTH = 0.05


class ChildFailed(Exception):
    """A member's child crashed, hung, or reported an error; `kind` is a protocol error kind."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Watch:
    """What the rounds loop needs from the agent while it waits: the deadline, the job's
    timeout (for messages), a tick (thermal samples) and a stop check (SIGTERM)."""

    def __init__(
        self,
        deadline: float,
        timeout_s: float,
        tick: Callable[[], None],
        should_stop: Callable[[], bool],
        interrupted: Callable[[], Exception],
        tick_s: float,
    ) -> None:
        self.deadline = deadline
        self.timeout_s = timeout_s
        self.tick = tick
        self.should_stop = should_stop
        self.interrupted = interrupted
        self.tick_s = tick_s


class RoundsChild:
    """One member's `bench_child --rounds` process and the JSON lines it answers with.

    `spawn(argv)` -> (stderr file, process) starts it another way (zygote.ChildStarter:
    forked from the job's fork server); the process needs only Popen's pid, stdin, stdout,
    poll() and wait()."""

    def __init__(
        self,
        argv: List[str],
        env: Dict[str, str],
        spawn: Optional[Callable[[List[str]], Any]] = None,
    ) -> None:
        if spawn is not None:
            self.stderr, self.proc = spawn(argv)
        else:
            self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                start_new_session=True,
                env=env,
                cwd="/",
            )
        self.buffer = b""
        self.closed = False

    def ask(
        self, command: Dict[str, Any], watch: Watch, limit_s: Optional[float]
    ) -> Dict[str, Any]:
        """Send one command, wait for its one-line answer (ChildFailed on anything else)."""
        try:
            stdin = self.proc.stdin
            assert stdin is not None
            stdin.write((json.dumps(command) + "\n").encode())
            stdin.flush()
        except OSError:
            pass  # it died: reading says how
        reply = self._read_line(watch, limit_s)
        if reply.get("status") == "error":
            self.kill()
            raise ChildFailed(
                str(reply.get("error_kind") or "runtime_error"),
                str(reply.get("error") or "the benchmark process failed"),
            )
        return reply

    def _read_line(self, watch: Watch, limit_s: Optional[float]) -> Dict[str, Any]:
        stdout = self.proc.stdout
        assert stdout is not None
        fd = stdout.fileno()
        now = time.monotonic()
        own_deadline = now + limit_s if limit_s is not None else watch.deadline
        deadline = min(watch.deadline, own_deadline)
        while b"\n" not in self.buffer:
            if watch.should_stop():
                self.kill()
                raise watch.interrupted()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                if deadline >= watch.deadline:
                    raise ChildFailed(
                        "timeout",
                        f"timed out after the job's {watch.timeout_s:g} s (timeout_s) and was "
                        "killed",
                    )
                raise ChildFailed(
                    "timeout",
                    f"stopped answering (no reply within {limit_s:.0f} s) and was killed: the "
                    "runtime hangs on this model",
                )
            ready, _, _ = select.select([fd], [], [], min(watch.tick_s, remaining))
            if not ready:
                watch.tick()
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise self._died(watch)
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            reply = json.loads(line.decode("utf-8"))
            if not isinstance(reply, dict):
                raise ValueError("not an object")
        except ValueError:
            self.kill()
            raise ChildFailed("runtime_error", "the benchmark process answered nonsense") from None
        return reply

    def _died(self, watch: Watch) -> Exception:
        from .bench import _signal_name

        code = self.proc.wait()
        tail = self.stderr_tail()
        if code < 0:
            if watch.should_stop():
                return watch.interrupted()
            name = _signal_name(-code)
            hint = " (out of memory?)" if name == "SIGKILL" else ""
            return ChildFailed(
                "crashed",
                f"the benchmark process died from {name}{hint}: the runtime cannot run this "
                "model" + (f"; last message: {tail}" if tail else ""),
            )
        return ChildFailed(
            "runtime_error",
            f"the benchmark process exited with code {code} without a result"
            + (f": {tail}" if tail else ""),
        )

    def stderr_tail(self) -> str:
        from .bench import _last_line

        try:
            self.stderr.seek(0, os.SEEK_END)
            size = self.stderr.tell()
            self.stderr.seek(max(0, size - 4000))
            return _last_line(self.stderr.read())
        except (OSError, ValueError):
            return ""

    def kill(self) -> None:
        from .bench import _kill_group

        if self.closed:
            return
        if self.proc.poll() is None:
            _kill_group(self.proc)
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            from .bench import _kill_group

            _kill_group(self.proc)
            self.proc.wait()
        self.stderr.close()


class MemberRun:
    """What one member has measured so far at one thread count."""

    def __init__(self, member_id: str, spec: Dict[str, Any]) -> None:
        self.member_id = member_id
        self.spec = spec
        self.child: Optional[RoundsChild] = None
        self.facts: Dict[str, Any] = {}
        self.latencies = array("d")  # 8 bytes a run: a group may hold many runs per member
        self.last_round: List[float] = []
        self.rounds: List[int] = []
        self.processes: List[int] = []  # rounds per process generation, in order
        self.start_modes: List[str] = []  # how each process was started ("fork", "spawn")
        self.setup_s: Optional[float] = None  # how long the first process took to set up
        self.failure: Optional[ChildFailed] = None
        self.half_width: Optional[float] = None
        self.checked_at = 0  # len(latencies) at the last precision check

    @property
    def live(self) -> bool:
        return self.child is not None and self.failure is None

    def fail(self, failure: ChildFailed) -> None:
        self.failure = failure
        if self.child is not None:
            self.child.kill()
            self.child = None

    def precise_enough(self, target: float, round_runs: int) -> bool:
        grown = len(self.latencies) - self.checked_at
        if self.half_width is None or grown >= max(round_runs, RECHECK_GROWTH * self.checked_at):
            self.half_width = LatencySummary.of(self.latencies).half_width()
            self.checked_at = len(self.latencies)
        return self.half_width is not None and self.half_width <= target

    def expected_s(self, runs: int) -> float:
        """How long `runs` timed runs should take, from what this member has shown so far."""
        if self.last_round:
            per_run_ms = sorted(self.last_round)[len(self.last_round) // 2]
        else:
            per_run_ms = float(self.facts.get("first_invoke_ms") or 1000.0)
        return runs * (per_run_ms + float(self.spec.get("delay_ms") or 0.0)) / 1000.0


def measure_in_rounds(
    members: List[MemberRun],
    options: Any,
    watch: Watch,
    start_child: Callable[[MemberRun], RoundsChild],
    report: Report = no_report,
) -> List[Measurement]:
    """Measure every member at one thread count in alternating rounds; one Measurement each.

    Setup (load, init, first invoke, warmup) runs member by member, so no two inits compete
    for the CPU; each may take its share of the job's time (`_setup_limit`). Then each
    round asks every live member for `options.round_runs` runs, the order rotating by one
    member per round, until every member has `runs` (and `min_seconds` passed) and, with
    `precision`, every median is that precise or the precision time cap is spent. Every
    `options.rounds_per_process` rounds each live member's process is finished and a fresh
    one set up (`_renew`). A member that fails is dropped from later rounds.
    """
    threads = members[0].spec.get("threads") if members else None
    try:
        for position, member in enumerate(members):
            report(
                "setup", member=member.member_id, threads=threads, done=position, total=len(members)
            )
            left = len(members) - position - 1  # members still to set up after this one
            _start(member, watch, _setup_limit(watch, left), start_child)
        started = time.monotonic()
        _rounds(members, options, watch, started, start_child, report)
        elapsed = time.monotonic() - started
        for member in members:
            _finish(member, watch)
    finally:
        for member in members:
            if member.child is not None:
                member.child.kill()
                member.child = None
    measurements = [_measurement(member, options, elapsed) for member in members]
    keep = kept_latencies(len(members), len(options.threads))
    for measurement in measurements:
        measurement.thin(keep)
    return measurements


def _setup_limit(watch: Watch, left: int) -> float:
    """A member's setup (load, init, warmup) may take an equal share of the job's remaining
    time, keeping one share for the rounds (at least HANG_FLOOR_S): a runtime that hangs
    while loading one model leaves time to measure the others."""
    return max(HANG_FLOOR_S, (watch.deadline - time.monotonic()) / (left + 2))


def _start(
    member: MemberRun,
    watch: Watch,
    limit_s: float,
    start_child: Callable[[MemberRun], RoundsChild],
) -> None:
    """A new process for `member`, set up; the first one's facts are the member's facts."""
    first = member.setup_s is None
    begin = time.monotonic()
    try:
        member.child = start_child(member)
    except OSError as exc:
        member.fail(
            ChildFailed(
                "runtime_error", f"cannot start the benchmark process: {exc.strerror or exc}"
            )
        )
        return
    spec = dict(member.spec, first_run=len(member.latencies))
    _ask(member, spec, watch, limit_s, member.facts.update if first else lambda reply: None)
    if first:
        member.setup_s = time.monotonic() - begin
    member.processes.append(0)


def _finish(member: MemberRun, watch: Watch) -> None:
    """End the member's process: the first one reports the outputs, every one its peak."""
    first = len(member.processes) <= 1

    def use(reply: Dict[str, Any]) -> None:
        peak = member.facts.get("peak_rss_kb")
        if first:
            member.facts.update(reply)
        if reply.get("peak_rss_kb") is not None and peak is not None:
            member.facts["peak_rss_kb"] = max(int(peak), int(reply["peak_rss_kb"]))

    _ask(member, {"cmd": "finish", "outputs": first}, watch, None, use)
    if member.child is not None:
        member.child.close()
        member.child = None


def _renew(
    members: List[MemberRun], watch: Watch, start_child: Callable[[MemberRun], RoundsChild]
) -> None:
    """A fresh process for every live member, one member after the other (no two setups
    compete for the CPU). A fresh process may take about as long as the first one took
    (HANG_FACTOR x, at least HANG_FLOOR_S), and never more than its share of the time."""
    live = [m for m in members if m.live]
    for position, member in enumerate(live):
        _finish(member, watch)
        if member.failure is not None:
            continue
        share = _setup_limit(watch, len(live) - position - 1)
        limit = min(share, max(HANG_FLOOR_S, HANG_FACTOR * (member.setup_s or 0.0)))
        _start(member, watch, limit, start_child)


def _rounds(
    members: List[MemberRun],
    options: Any,
    watch: Watch,
    started: float,
    start_child: Callable[[MemberRun], RoundsChild],
    report: Report,
) -> None:
    wanted = options.runs or 1
    target = options.precision
    cap_s = options.precision_seconds()
    if cap_s is not None:  # leave the job time to finish (outputs) and the next thread counts
        cap_s = min(cap_s, max(0.0, 0.8 * (watch.deadline - started)))
    round_runs = options.round_runs
    most = max(wanted, MAX_TIMED_RUNS // len(members))  # a group shares one job's bound
    index = 0
    while True:
        live = [m for m in members if m.live]
        if not live:
            return
        elapsed = time.monotonic() - started
        enough = all(len(m.latencies) >= wanted for m in live) and (
            options.min_seconds is None or elapsed >= options.min_seconds
        )
        if enough and (
            target is None
            or (cap_s is not None and elapsed >= cap_s)
            or all(m.precise_enough(target, round_runs) for m in live)
        ):
            return
        if all(len(m.latencies) >= most for m in live):
            return
        if index and index % options.rounds_per_process == 0:
            _renew(members, watch, start_child)
            if not any(m.live for m in members):
                return
        size = round_runs
        if options.min_seconds is None and target is None:  # `runs` alone: exactly that many
            size = max(1, min(round_runs, wanted - min(len(m.latencies) for m in live)))
        shift = index % len(members)
        for member in members[shift:] + members[:shift]:
            if not member.live:
                continue
            runs = size
            limit = max(HANG_FLOOR_S, HANG_FACTOR * member.expected_s(runs))
            _ask(member, {"cmd": "runs", "n": runs}, watch, limit, member_record(member))
            report(
                "measuring",
                member=member.member_id,
                threads=member.spec.get("threads"),
                done=sum(min(len(m.latencies), wanted) for m in members),
                total=wanted * len(members),
                runs=len(member.latencies),
            )
        index += 1
        watch.tick()  # between rounds, so a thermal sample never lands inside timed runs


def member_record(member: MemberRun) -> Callable[[Dict[str, Any]], None]:
    def record(reply: Dict[str, Any]) -> None:
        latencies = [float(x) for x in reply.get("latencies_ms") or []]
        member.latencies.extend(latencies)
        member.last_round = latencies
        member.rounds.append(len(latencies))
        if member.processes:
            member.processes[-1] += 1

    return record


def _ask(
    member: MemberRun,
    command: Dict[str, Any],
    watch: Watch,
    limit_s: Optional[float],
    use: Callable[[Dict[str, Any]], None],
) -> None:
    """One command to a live member; a failure is recorded on the member, not raised."""
    if not member.live:
        return
    assert member.child is not None
    try:
        use(member.child.ask(command, watch, limit_s))
    except ChildFailed as failure:
        member.fail(failure)


def _measurement(member: MemberRun, options: Any, elapsed: float) -> Measurement:
    spec = member.spec
    if member.failure is not None or not member.latencies:
        failure = member.failure or ChildFailed("runtime_error", "no timed runs were made")
        return Measurement(
            threads=spec["threads"],
            xnnpack=spec["xnnpack"],
            status="error",
            error=str(failure),
            error_kind=failure.kind,
        )
    facts = member.facts
    summary = LatencySummary.of(member.latencies)
    precision = None
    if options.precision is not None:
        half_width = summary.half_width()
        precision = {
            "target": options.precision,
            "reached": half_width is not None and half_width <= options.precision,
            "half_width": half_width,
            "runs": len(member.latencies),
            "seconds": round(elapsed, 3),
        }
    return Measurement(
        threads=spec["threads"],
        xnnpack=spec["xnnpack"],
        status="ok",
        import_ms=facts.get("import_ms"),
        load_ms=facts.get("load_ms"),
        init_ms=facts.get("init_ms"),
        first_invoke_ms=facts.get("first_invoke_ms"),
        latencies_ms=member.latencies.tolist(),
        summary=summary,
        rss_before_model_kb=facts.get("rss_before_model_kb"),
        peak_rss_kb=facts.get("peak_rss_kb"),
        outputs=facts.get("outputs"),
        cpu_affinity=facts.get("cpu_affinity"),
        rounds=member.rounds,
        precision=precision,
        processes=member.processes or None,
        process_start=_process_start(member.start_modes),
    )


def _process_start(modes: List[str]) -> Optional[str]:
    if not modes:
        return None
    return modes[0] if len(set(modes)) == 1 else "mixed"


def child_argv(job_id: str, member_id: Optional[str] = None) -> List[str]:
    """The `bench_child` command line: one-shot, or (with `member_id`) a group member's
    long-lived rounds child."""
    argv = [sys.executable, "-m", "device_agents.bench_child", "--parent", str(os.getpid())]
    argv += ["--job", job_id]
    if member_id is not None:
        argv += ["--member", member_id, "--rounds"]
    return argv
