"""Fixtures for the agent: tiny real models, a spool, the CLI in- and out-of-process, a daemon."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RECORDED = HERE / "recorded"


@dataclass
class AgentModels:
    dense: Path
    sparse: Path
    int8: Path
    two_inputs: Path


@pytest.fixture(scope="session")
def agent_models(cached_artifact) -> AgentModels:
    """Four tiny .tflite models, built once per version of model_factory.py."""
    from .model_factory import build_models

    key = hashlib.sha256((HERE / "model_factory.py").read_bytes()).hexdigest()[:16]
    directory = cached_artifact("agent-models", key, build_models)
    return AgentModels(
        *(directory / f"{n}.tflite" for n in ("dense", "sparse", "int8", "two_inputs"))
    )


def agent_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.pop("EDGEPRUNE_SPOOL", None)
    env.update(extra)
    return env


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def json(self):
        return json.loads(self.out)


def run_agent(*args: object, timeout: float = 120, env: dict | None = None) -> Outcome:
    """`python -m device_agents ARGS` as a real process."""
    proc = subprocess.run(
        [sys.executable, "-m", "device_agents", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or agent_env(),
        cwd=str(REPO),
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def agent(capsys):
    """The agent CLI in-process (fast); benchmarks still run in real child processes."""
    from device_agents.cli import run

    def invoke(*args: object) -> Outcome:
        capsys.readouterr()
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


class DaemonProcess:
    """A real `serve` process on a spool; stopped (and reaped) when the test ends."""

    def __init__(
        self, spool: Path, log_dir: Path, *extra: str, env: dict | None = None, preexec=None
    ) -> None:
        self.spool = spool
        self.log = log_dir / f"daemon-{time.monotonic_ns()}.log"
        self._log_handle = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "device_agents", "serve", "--spool", str(spool), *extra],
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            env=env or agent_env(),
            cwd=str(REPO),
            preexec_fn=preexec,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_until(self, predicate, timeout: float = 60.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}):\n{self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_handle.close()
        return self.proc.returncode


@pytest.fixture
def start_daemon(tmp_path_factory) -> Iterator:
    started: list[DaemonProcess] = []
    log_dir = tmp_path_factory.mktemp("daemon-logs")

    def start(spool: Path, *extra: str, **kwargs) -> DaemonProcess:
        daemon = DaemonProcess(spool, log_dir, *extra, **kwargs)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def process_name(pid: int) -> str:
    """/proc/PID/comm: a job's zygote is "ep-zygote", a child forked from it its member id."""
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def bench_children(job_id: str | None = None) -> list[int]:
    """Pids of live benchmark children (optionally of one job), from /proc; not the job's
    zygote (see `zygotes`), whose command line its forked children share."""
    return [pid for pid in bench_processes(job_id) if process_name(pid) != "ep-zygote"]


def zygotes(job_id: str | None = None) -> list[int]:
    """Pids of live fork servers (device_agents/zygote.py), optionally of one job."""
    return [pid for pid in bench_processes(job_id) if process_name(pid) == "ep-zygote"]


def member_of(pid: int) -> str | None:
    """The group member a benchmark child measures: --member, or (forked) its name."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return None
    if b"--member" in argv:
        return argv[argv.index(b"--member") + 1].decode()
    if b"--zygote" in argv:
        return process_name(pid)
    return None


def bench_processes(job_id: str | None = None) -> list[int]:
    """Pids of every live bench_child process (zygotes too), optionally of one job."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or b"device_agents.bench_child" not in argv:
            continue
        if job_id is None or job_id.encode() in argv:
            pids.append(int(entry))
    return pids
