"""`edgeprune-agent session`: the JSON-lines protocol, in-process (pipes) and as a process.

In-process tests drive `Session` over real OS pipes; the subprocess tests run
`python -m device_agents session` and a real benchmark job through it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from device_agents.session import PROTOCOL, Session

from .conftest import REPO, agent_env, run_agent

SHA = "a" * 64


class PipeSession:
    """A Session on a thread, fed and read through two real pipes."""

    def __init__(self, spool: Path) -> None:
        to_agent_r, self._to_agent = os.pipe()
        self._from_agent, from_agent_w = os.pipe()
        self.reader = os.fdopen(self._from_agent, "rb")
        self.writer = os.fdopen(self._to_agent, "wb", buffering=0)
        session = Session(
            str(spool), os.fdopen(to_agent_r, "rb"), os.fdopen(from_agent_w, "wb", buffering=0)
        )
        self.code: list[int] = []
        self.thread = threading.Thread(target=lambda: self.code.append(session.serve()))
        self.thread.start()

    def send(self, **message) -> None:
        self.writer.write((json.dumps(message) + "\n").encode())

    def line(self) -> dict:
        data = self.reader.readline()
        assert data, "the session ended"
        return json.loads(data)

    def until(self, ident) -> tuple[dict, list[dict]]:
        """The reply to `ident`, and every other line read before it."""
        others = []
        while True:
            message = self.line()
            if message.get("id") == ident and "progress" not in message:
                return message, others
            others.append(message)

    def hello(self) -> dict:
        self.send(id=0, op="hello", protocol=PROTOCOL)
        return self.line()

    def close(self) -> int:
        self.writer.close()
        self.thread.join(30)
        self.reader.close()
        return self.code[0]


@pytest.fixture
def piped(spool):
    sessions = []

    def start() -> PipeSession:
        sessions.append(PipeSession(spool))
        return sessions[-1]

    yield start
    for session in sessions:
        if not session.writer.closed:
            session.close()


def test_hello_states_versions_and_capabilities(piped):
    session = piped()
    hello = session.hello()
    assert hello["op"] == "hello" and hello["protocol"] == PROTOCOL
    assert hello["agent_version"]
    assert {"has", "submit", "wait", "ack", "doctor", "batch", "progress", "ping"} <= set(
        hello["capabilities"]
    )
    assert "session" not in hello["capabilities"]
    assert session.close() == 0


def test_a_hello_carrying_has_is_answered_as_the_has_command(piped):
    """Protocol 1.1: the hashes the host will need ride in the hello (no `has` round trip)."""
    session = piped()
    session.send(id=0, op="hello", protocol=PROTOCOL, has=[SHA, SHA + ".npz"])
    hello = session.line()
    assert "hello-has" in hello["capabilities"]
    assert hello["has"] == {
        "exit_code": 0,
        "document": {"present": [], "missing": [SHA, SHA + ".npz"]},
        "error": None,
    }
    session.send(id=1, argv=["has", "--json", "--", SHA, SHA + ".npz"])
    reply = session.line()
    assert {k: reply[k] for k in hello["has"]} == hello["has"]  # the very same answer
    assert session.close() == 0


def test_a_bad_has_in_hello_fails_that_answer_not_the_session(piped):
    session = piped()
    session.send(id=0, op="hello", protocol="1.0", has=["nope"])
    hello = session.line()
    assert hello["op"] == "hello" and hello["has"]["exit_code"] == 2
    assert "not a sha256" in hello["has"]["error"]
    session.send(id=1, op="ping")
    assert session.line() == {"id": 1, "op": "pong"}
    assert session.close() == 0


def test_a_hello_without_has_gets_no_has_answer(piped):
    hello = piped().hello()
    assert "has" not in hello


def test_unknown_major_version_is_refused_with_one_line(piped):
    session = piped()
    session.send(id=0, op="hello", protocol="2.0")
    refusal = session.line()
    assert refusal["id"] == 0 and refusal["exit_code"] == 2
    assert f"speaks {PROTOCOL}" in refusal["error"] and "2.0" in refusal["error"]
    session.thread.join(10)
    assert session.code == [2]


def test_requests_before_hello_are_refused(piped):
    session = piped()
    session.send(id=1, argv=["status"])
    assert "hello" in session.line()["error"]
    session.thread.join(10)
    assert session.code == [2]


@pytest.mark.parametrize(
    "argv",
    [
        ["has", "--", SHA],
        ["has", "--", "not-a-sha"],
        ["status"],
        ["wait", "--timeout=0", "--", "j-unknown"],
        ["ack", "--", "../../etc"],
        ["nonsense"],
    ],
)
def test_reply_is_what_per_call_json_prints(piped, spool, argv):
    """Document, exit code and error line: the same as a per-call `--json` process."""
    run_agent("status", "--spool", spool)  # the same spool state for both (maybe absent)
    per_call = run_agent(*argv[:1], "--spool", spool, "--json", *argv[1:])
    session = piped()
    session.hello()
    session.send(id=7, argv=[*argv[:1], "--json", *argv[1:]])
    reply, _ = session.until(7)
    assert reply["exit_code"] == per_call.code
    assert reply["document"] == json.loads(per_call.out)
    errors = [
        line[len("error: ") :] for line in per_call.err.splitlines() if line.startswith("error: ")
    ]
    assert reply["error"] == (errors[-1] if errors else None)
    session.close()


def test_batch_runs_in_order_and_answers_once(piped, spool):
    session = piped()
    session.hello()
    session.send(id=3, batch=[["has", "--", SHA], ["status"], ["result", "--", "j-none"]])
    reply, _ = session.until(3)
    codes = [item["exit_code"] for item in reply["replies"]]
    assert codes == [0, 0, 1]
    assert reply["replies"][0]["document"] == {"present": [], "missing": [SHA]}
    assert "j-none" in reply["replies"][2]["error"]
    session.close()


def test_ping_and_interrupt_are_answered_while_a_wait_blocks(piped, spool, agent_models, agent):
    assert agent("submit", "--spool", spool, "--id", "j-held", "--", agent_models.dense).code == 0
    session = piped()
    session.hello()
    session.send(id=1, argv=["wait", "--json", "--", "j-held"])  # no daemon: it would block
    time.sleep(0.3)
    started = time.monotonic()
    session.send(id=2, op="ping")
    pong, _ = session.until(2)
    assert pong["op"] == "pong" and time.monotonic() - started < 2
    session.send(id=3, op="interrupt", target=1)
    replies = [session.line(), session.line()]
    by_id = {r["id"]: r for r in replies}
    assert by_id[3]["interrupted"] is True
    assert by_id[1]["exit_code"] == 130 and "interrupted" in by_id[1]["error"]
    assert session.close() == 0


def test_eof_interrupts_a_blocked_wait_and_ends_the_session(piped, spool, agent_models, agent):
    assert agent("submit", "--spool", spool, "--id", "j-left", "--", agent_models.dense).code == 0
    session = piped()
    session.hello()
    session.send(id=1, argv=["wait", "--json", "--", "j-left"])
    time.sleep(0.2)
    assert session.close() == 0  # returns: the wait did not keep the session alive


def _session_process(spool: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "device_agents", "session", "--spool", str(spool)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=agent_env(),
        cwd=str(REPO),
    )


def test_a_real_job_through_one_process_streams_progress(spool, agent_models):
    """submit, serve --once and wait side by side, in one agent process; stdout holds
    protocol lines only although the daemon logs and the benchmark children run."""
    proc = _session_process(spool)
    assert proc.stdin is not None and proc.stdout is not None

    def send(**message) -> None:
        proc.stdin.write((json.dumps(message) + "\n").encode())
        proc.stdin.flush()

    send(id=0, op="hello", protocol=PROTOCOL)
    send(id=1, argv=["submit", "--json", "--runs=60", "--id=j-s1", "--", str(agent_models.dense)])
    lines = [json.loads(proc.stdout.readline()) for _ in range(2)]
    assert lines[1]["document"] == {"job_id": "j-s1"}
    send(id=2, argv=["wait", "--json", "--timeout=120", "--", "j-s1"])
    send(id=3, argv=["serve", "--json", "--once", "--poll=0.1"])
    replies: dict = {}
    progress = []
    while len(replies) < 2:
        message = json.loads(proc.stdout.readline())  # every stdout line is protocol JSON
        if "progress" in message:
            progress.append(message["progress"])
        else:
            replies[message["id"]] = message
    send(id=4, op="bye")
    assert json.loads(proc.stdout.readline()) == {"id": 4, "op": "bye"}
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out == b""
    assert replies[2]["exit_code"] == 0, replies[2]["error"]
    result = replies[2]["document"]
    assert result["job_id"] == "j-s1" and result["status"] == "ok"
    assert replies[3]["exit_code"] == 0 and replies[3]["document"] is None
    assert b"running job j-s1" in err  # the daemon's log went to stderr
    assert progress and all(p["job_id"] == "j-s1" for p in progress)
    assert {p["phase"] for p in progress} & {"checking", "measuring"}
    assert progress[-1]["done"] == progress[-1]["total"], progress  # the final count
    assert (spool / "progress" / "j-s1.json").exists()  # kept until the result is acknowledged


def test_status_shows_a_running_jobs_progress(spool, agent, agent_models):
    from device_agents.progress import ProgressFile
    from device_agents.spool import Spool

    assert agent("submit", "--spool", spool, "--id", "j-p", "--", agent_models.dense).code == 0
    assert agent("status", "--spool", spool, "--json").json["progress"] == {}
    assert Spool(str(spool)).claim_next() == "j-p"  # as the daemon claims it
    ProgressFile(str(spool), "j-p")("measuring", member="j-p", done=20, total=50)
    shown = agent("status", "--spool", spool, "--json").json["progress"]["j-p"]
    assert (shown["phase"], shown["done"], shown["total"]) == ("measuring", 20, 50)


def test_has_imports_neither_numpy_nor_a_runtime(spool):
    """The common commands import neither numpy nor a TFLite runtime (lazy imports)."""
    code = (
        "import sys; from device_agents.cli import run; "
        f"run(['has', '--spool', {str(spool)!r}, '--json', '--', {SHA!r}]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'tflite_runtime', 'ai_edge_litert') or m == 'device_agents.bench'))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=agent_env(), cwd=REPO
    )
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stderr
