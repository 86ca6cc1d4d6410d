"""Fault, bad-input, security and load tests: real sshd devices, real agents, real files.

The heavy part (the 200-job load run, the long black-hole timeouts, the big fuzz run) is
marked `faults`: `make test-faults` runs it; the default `make test` leaves it out.
"""

from __future__ import annotations

import time

import pytest
from support.fixtures import (  # noqa: F401
    BoardDaemon,
    isolated_host_state,
    large_tflite,
    preinstall_agent,
    sshd_fleet,
    tiny_tflite,
    tiny_tflite_b,
)
from support.sshd import DeviceSpec

from .figures import latest_rows, record, table

_SESSION_START = time.time()


@pytest.fixture
def ready_fleet(sshd_fleet):  # noqa: F811
    """Factory: ready_fleet(count, **inventory_fields) -> SshdFleet whose agents can be called.

    Each device gets support.fixtures.preinstall_agent; `inventory_fields` (e.g. retries=1,
    connect_timeout=3) go into every device's inventory entry.
    """

    def start(count: int = 1, *, devices: list[DeviceSpec] | None = None, **fields):
        specs = devices or [
            DeviceSpec(name=f"dev{i + 1}", tags=["sshd"], extra=dict(fields)) for i in range(count)
        ]
        fleet = sshd_fleet(devices=specs)
        for device in fleet.devices:
            preinstall_agent(device)
        return fleet

    return start


@pytest.fixture
def board_daemons():
    """Factory: board_daemons(device) -> a started BoardDaemon; all stopped at teardown."""
    started: list[BoardDaemon] = []

    def start(device, poll: float = 0.1) -> BoardDaemon:
        daemon = BoardDaemon(device, poll=poll).start()
        started.append(daemon)
        daemon.wait_serving()
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def figures(request, testrun_uid):
    """figures(category, **counts): a row of the closing table for this test."""

    def add(category: str, **counts: float) -> None:
        record(testrun_uid, request.node.nodeid, category, **counts)

    return add


def pytest_terminal_summary(terminalreporter):
    """After a run of tests/faults: the closing table (counts summed over the run's tests)."""
    rows = [r for r in latest_rows() if r["time"] >= _SESSION_START]
    if rows:
        terminalreporter.section("faults: closing table (latest run)")
        terminalreporter.write_line(table(rows))
