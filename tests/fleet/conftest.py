"""Fleet tests: real sshd devices (tests/support), real files, real SQLite."""

from __future__ import annotations

import pytest
from support.fixtures import large_tflite, sshd_fleet, tiny_tflite, tiny_tflite_b  # noqa: F401


@pytest.fixture(autouse=True)
def isolated_host_state(tmp_path, monkeypatch):
    """Keep every test's inventory, local spool, results DB and known_hosts inside tmp_path."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("EDGEPRUNE_INVENTORY", raising=False)
    monkeypatch.delenv("EDGEPRUNE_RESULTS_DB", raising=False)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
