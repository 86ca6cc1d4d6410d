"""One agent session per device per command: local pipes and a real sshd, and the fallback to
one process per call when the board's agent is older (a real copy of the agent without
`session`, run through the same transport)."""

from __future__ import annotations

import dataclasses
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.fixtures import (
    agent_of_protocol_1_0,
    board_processes,
    install_wrapper,
    preinstall_agent,
)
from support.sshd import sshd_available

from device_agents.protocol import BenchOptions
from edgeprune.fleet import DeviceSession, load_inventory, load_model
from edgeprune.fleet.agent_session import AgentSession
from edgeprune.fleet.deploy import deploy_to_session
from edgeprune.fleet.inventory import local_device
from edgeprune.fleet.local_transport import LocalTransport
from edgeprune.fleet.remote_bench import bench_on_session
from edgeprune.fleet.transport import EXEC_COUNTS, OutputTooLarge

REPO = Path(__file__).resolve().parent.parent.parent
OPTIONS = BenchOptions(runs=30, warmup=0, round_runs=5)


def bench(device, models, steps=None):
    EXEC_COUNTS.clear()
    stored = []
    with DeviceSession.open(device) as session:
        bench_on_session(
            session,
            [load_model(m) for m in models],
            OPTIONS,
            on_result=lambda _d, model, result: stored.append((model.name, result.status)),
            step=(lambda *args: steps.append(args)) if steps is not None else None,
        )
        client = session.agent
    return stored, EXEC_COUNTS[device.name], client


def local(tmp_path: Path, python: str = sys.executable):
    return dataclasses.replace(local_device(), python=python, spool=str(tmp_path / "spool"))


def test_local_bench_runs_one_agent_process_and_streams_job_progress(
    tmp_path, tiny_tflite, tiny_tflite_b
):
    steps: list = []
    stored, processes, client = bench(local(tmp_path), [tiny_tflite, tiny_tflite_b], steps)
    assert [status for _, status in stored] == ["ok", "ok"]
    assert processes == 1  # has, admit x2, submit, status, serve --once, wait, ack: one process
    assert client.use_session
    names = (load_model(tiny_tflite).name, load_model(tiny_tflite_b).name)
    runs = [
        (what, done, total)
        for _, what, done, total in steps
        if what.startswith("measuring ") and what.endswith(names)
    ]
    assert runs, steps  # the board's own progress reached `step`, naming the model
    assert {total for _, _, total in runs} == {2 * OPTIONS.runs}  # the group's runs
    assert max(done for _, done, _ in runs) >= OPTIONS.runs


def test_per_call_mode_still_works_and_starts_a_process_per_call(
    tmp_path, tiny_tflite, monkeypatch
):
    monkeypatch.setenv("EDGEPRUNE_AGENT_SESSION", "0")
    stored, processes, client = bench(local(tmp_path), [tiny_tflite])
    assert [status for _, status in stored] == ["ok"]
    assert not client.use_session
    assert processes >= 6


def old_agent_python(tmp_path: Path) -> str:
    """An interpreter wrapper running a copy of this agent whose COMMANDS (and parser) lack
    `session`: what a board installed before sessions existed answers."""
    root = tmp_path / "old-agent"
    shutil.copytree(REPO / "device_agents", root / "device_agents")
    commands = root / "device_agents" / "commands.py"
    commands.write_text(commands.read_text().replace('    "session": cmd_session,\n', ""))
    cli = root / "device_agents" / "cli.py"
    text = cli.read_text()
    start = text.index("    command(  # no options of its own")
    end = text.index("    return parser", start)
    cli.write_text(text[:start] + text[end:])
    wrapper = tmp_path / "old-python"
    # from its own directory: `-m` puts the working directory (maybe this checkout) first
    wrapper.write_text(f'#!/bin/sh\ncd {root} && PYTHONPATH={root} exec {sys.executable} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    refused = subprocess.run(
        [str(wrapper), "-m", "device_agents", "session"], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "invalid choice: 'session'" in refused.stderr
    return str(wrapper)


def test_an_older_agent_gets_per_call_commands(tmp_path, tiny_tflite, tiny_tflite_b):
    device = local(tmp_path, python=old_agent_python(tmp_path))
    stored, processes, client = bench(device, [tiny_tflite, tiny_tflite_b])
    assert [status for _, status in stored] == ["ok", "ok"]
    assert not client.use_session  # hello failed once: per call from then on
    assert processes >= 7  # the one refused session, then one process per call


def test_session_mode_and_per_call_mode_answer_alike(tmp_path, tiny_tflite, monkeypatch):
    device = local(tmp_path)
    sha = load_model(tiny_tflite).sha256
    answers = []
    for mode in ("1", "0"):
        monkeypatch.setenv("EDGEPRUNE_AGENT_SESSION", mode)
        with DeviceSession.open(device) as session:
            agent = session.agent
            answers.append(
                (
                    agent.has([sha, sha + ".npz"]),
                    sorted(agent.status()),
                    agent.result("j-never"),
                    _error_of(agent.ack, "j-never"),
                    _error_of(agent.call, "has", "--", "nope"),
                )
            )
    assert answers[0] == answers[1]
    assert "not a sha256" in answers[0][4]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _error_of(action, *args) -> str:
    try:
        action(*args)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


@pytest.mark.skipif(not sshd_available(), reason="OpenSSH server not installed")
def test_over_sshd_a_bench_opens_one_exec_channel(sshd_fleet, tiny_tflite, tiny_tflite_b):
    fleet = sshd_fleet(1)
    preinstall_agent(fleet["dev1"])
    device = load_inventory(fleet.inventory_path).devices["dev1"]
    stored, channels, client = bench(device, [tiny_tflite, tiny_tflite_b])
    assert [status for _, status in stored] == ["ok", "ok"]
    assert channels == 1
    assert client.use_session
    wait_for(lambda: not board_processes(fleet["dev1"]), 10, "the session to end on the board")


def redeploy_round_trips(device, models) -> tuple[list[str], int, int]:
    """Deploy `models` in one DeviceSession: statuses, session round trips before `bye`,
    exec channels opened."""
    EXEC_COUNTS.clear()
    with DeviceSession.open(device) as session:
        files = deploy_to_session(session, models)
        agent_session = session.agent.session()
        assert agent_session is not None
        trips = agent_session.round_trips
    return [f.status for f in files], trips, EXEC_COUNTS[device.name]


@pytest.mark.skipif(not sshd_available(), reason="OpenSSH server not installed")
def test_over_sshd_an_unchanged_redeploy_asks_has_in_the_hello(
    sshd_fleet, tiny_tflite, tiny_tflite_b, tmp_path
):
    """Protocol 1.1: an unchanged re-deploy is one channel and one round trip (hello, which
    answers `has`) before `bye`; an agent of protocol 1.0 gets the `has` call as before."""
    fleet = sshd_fleet(2)
    for board in fleet.devices:
        preinstall_agent(board)
    install_wrapper(fleet["dev2"], agent_of_protocol_1_0(tmp_path / "agent-1.0"))
    inventory = load_inventory(fleet.inventory_path)
    models = [load_model(tiny_tflite), load_model(tiny_tflite_b)]
    for name, unchanged_trips in (("dev1", 1), ("dev2", 2)):
        device = inventory.devices[name]
        statuses, _, _ = redeploy_round_trips(device, models)
        assert statuses == ["sent", "sent"]
        statuses, trips, channels = redeploy_round_trips(device, models)
        assert statuses == ["present", "present"], name
        assert (trips, channels) == (unchanged_trips, 1), name
        fleet[name].spool.joinpath("models", f"{models[0].sha256}.tflite").unlink()
        statuses, _, _ = redeploy_round_trips(device, models)
        assert statuses == ["sent", "present"], name  # the answer in the hello is the truth


def test_a_long_lived_channel_keeps_the_tail_of_a_chatty_stderr():
    """A session logs for a whole command: stderr is bounded by keeping its newest bytes,
    and the channel goes on working (no flood verdict on a log)."""
    transport = LocalTransport("local")
    transport.max_stderr_bytes = 64 << 10
    code = (
        "import sys\n"
        "for i in range(4000): sys.stderr.write(f'log line {i:05d} ' + 'x' * 40 + '\\n')\n"
        "sys.stderr.flush()\n"
        "sys.stdout.write(sys.stdin.readline().upper()); sys.stdout.flush()\n"
    )
    channel = transport.open_channel([sys.executable, "-c", code])
    try:
        channel.send(b"ping\n")
        assert channel.recv() == b"PING\n"
        assert channel.exit_code(10) == 0
        time.sleep(0.2)  # the stderr reader catches up
        tail = channel.stderr_text()
        assert len(tail.encode()) <= 64 << 10
        assert tail.rstrip().endswith("log line 03999 " + "x" * 40)
    finally:
        channel.close()


def test_the_host_refuses_a_flooding_session(tmp_path):
    """A reply line past the transport's stdout cap closes the session with one clear error
    (a wrong `python:` that prints endlessly must not fill the host's memory)."""
    transport = LocalTransport("local")
    transport.max_output_bytes = 64 << 10
    script = tmp_path / "flood.py"
    script.write_text(
        "import json, sys\n"
        "hello = json.loads(sys.stdin.readline())\n"
        "print(json.dumps({'id': hello['id'], 'op': 'hello', 'protocol': '1.0'}), flush=True)\n"
        "sys.stdin.readline()\n"
        "sys.stdout.write('x' * (1 << 20)); sys.stdout.flush()\n"
    )
    session = AgentSession.open(transport, [sys.executable, str(script)])
    try:
        with pytest.raises(OutputTooLarge, match=r"longer than 0\.1 MB"):
            session.call(["status"], timeout=30)
        assert not session.alive
    finally:
        session.abort()
