"""The link under an agent session breaks: the host reconnects and opens a new session.

A real sshd behind support.tcp_proxy; the cut lands while a `wait` blocks in the session.
"""

from __future__ import annotations

import threading
import time

import pytest
from support.sshd import sshd_available

from device_agents.protocol import BenchOptions
from edgeprune.fleet import DeviceSession, load_model
from edgeprune.fleet.deploy import deploy_to_session
from edgeprune.fleet.transport import EXEC_COUNTS

from .test_link_faults import device_of

pytestmark = pytest.mark.skipif(not sshd_available(), reason="OpenSSH server not installed")


def test_a_cut_during_a_session_wait_reconnects_and_reopens_the_session(
    ready_fleet, tiny_tflite, figures
):
    fleet = ready_fleet(1, retries=2, connect_timeout=3)
    proxy = fleet.proxy("dev1")
    model = load_model(tiny_tflite)
    EXEC_COUNTS.clear()
    with DeviceSession.open(device_of(fleet)) as session:
        agent = session.agent
        deploy_to_session(session, [model])
        agent.submit(model.sha256, BenchOptions(runs=5, warmup=0), job_id="j-cut")
        assert EXEC_COUNTS["dev1"] == 1  # has, admit and submit: one session
        outcome: list = []
        waiting = threading.Thread(
            target=lambda: outcome.append(agent.wait("j-cut", timeout=4, pending_ok=True))
        )
        started = time.monotonic()
        waiting.start()  # nobody serves the spool: the wait blocks in the session
        time.sleep(1.0)
        assert proxy.cut_all() >= 1
        waiting.join(60)
        assert not waiting.is_alive()
        assert outcome == [None]  # still queued: a pending answer, not an error
        assert EXEC_COUNTS["dev1"] == 2  # the dropped session was opened again once
        assert "j-cut" in agent.status()["queued"]  # and the new one answers
        assert time.monotonic() - started < 30
    figures("session cut", injected=1, survived=1, lost=0)
