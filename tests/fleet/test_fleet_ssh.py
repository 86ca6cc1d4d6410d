"""The SSH transport against real sshd devices: host keys, auth, quoting, files, drops."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from edgeprune.errors import DeviceError
from edgeprune.fleet.inventory import load_inventory
from edgeprune.fleet.session import ConnectOptions, open_transport
from edgeprune.fleet.ssh_transport import SshTransport
from edgeprune.fleet.transport import (
    CommandTimeout,
    ConnectionLost,
    ConnectionRefusedByPolicy,
)


def device_of(fleet, name="dev1", **changes):
    device = load_inventory(fleet.inventory_path).devices[name]
    if changes:
        from dataclasses import replace

        device = replace(device, **changes)
    return device


def test_known_host_connects_and_runs_quoted_commands(sshd_fleet, tmp_path: Path):
    fleet = sshd_fleet(1)
    marker = tmp_path / "injected"
    with open_transport(device_of(fleet)) as transport:
        tricky = f"a b; touch {marker}; $(touch {marker}) `touch {marker}` 'q' \"d\" \\ *"
        result = transport.run(["printf", "%s|", tricky, ""], timeout=20)
        assert result.ok, result.stderr
        assert result.stdout == f"{tricky}||"
        assert not marker.exists(), "a shell metacharacter reached the remote shell unquoted"
        env_result = transport.run(
            ["sh", "-c", 'printf %s "$EP_VALUE"'], timeout=20, env={"EP_VALUE": "x; y $z"}
        )
        assert env_result.stdout == "x; y $z"
        piped = transport.run(["cat"], timeout=20, stdin=b"from stdin\n")
        assert piped.stdout == "from stdin\n"
        failing = transport.run(["sh", "-c", "echo oops >&2; exit 7"], timeout=20)
        assert (failing.exit_code, failing.stderr.strip()) == (7, "oops")


def test_unknown_host_refused_unless_accept_new_then_recorded(sshd_fleet):
    fleet = sshd_fleet(1, trust=False)
    device = device_of(fleet)
    with pytest.raises(
        ConnectionRefusedByPolicy, match=r"is not in known_hosts.*--accept-new-host-key"
    ) as info:
        SshTransport(device)
    assert "SHA256:" in str(info.value)
    assert fleet.known_hosts_path.read_text() == ""
    with SshTransport(device, accept_new_host_key=True) as transport:
        assert transport.run(["true"], timeout=20).ok
    recorded = fleet.known_hosts_path.read_text()
    assert recorded == fleet["dev1"].known_hosts_line()
    with SshTransport(device) as transport:  # now known: no flag needed
        assert transport.run(["true"], timeout=20).ok
    assert fleet.known_hosts_path.read_text() == recorded  # not recorded twice


def test_changed_host_key_is_refused_even_with_accept_new(sshd_fleet):
    fleet = sshd_fleet(2)
    # known_hosts claims dev1's port belongs to dev2's key: a changed key
    wrong = f"[127.0.0.1]:{fleet['dev1'].port} {fleet['dev2'].host_public_key}\n"
    fleet.known_hosts_path.write_text(wrong)
    device = device_of(fleet)
    for accept_new in (False, True):
        start = time.perf_counter()
        with pytest.raises(ConnectionRefusedByPolicy, match="HOST KEY CHANGED.*ssh-keygen -R"):
            SshTransport(device, accept_new_host_key=accept_new)
        assert time.perf_counter() - start < 3, "a refused host key must not be retried"
    assert fleet.known_hosts_path.read_text() == wrong


def test_wrong_identity_is_refused_without_retry(sshd_fleet):
    fleet = sshd_fleet(2)
    device = device_of(fleet, identity_files=(str(fleet["dev2"].user_key),))
    start = time.perf_counter()
    with pytest.raises(ConnectionRefusedByPolicy, match="login refused.*authorized_keys"):
        SshTransport(device)
    assert time.perf_counter() - start < 3
    missing = device_of(fleet, identity_files=("/nonexistent/key",))
    with pytest.raises(
        ConnectionRefusedByPolicy, match="identity_file '/nonexistent/key' does not exist"
    ):
        SshTransport(missing)


def test_unreachable_device_fails_with_a_clear_message(sshd_fleet):
    fleet = sshd_fleet(1)
    fleet["dev1"].stop()
    device = device_of(fleet, retries=1)
    start = time.perf_counter()
    with pytest.raises(
        ConnectionLost, match=r"device dev1 \(.*\): cannot connect: Connection refused"
    ):
        SshTransport(device)
    assert time.perf_counter() - start < 5


def test_command_timeout_stops_the_command(sshd_fleet):
    fleet = sshd_fleet(1)
    with open_transport(device_of(fleet)) as transport:
        start = time.perf_counter()
        with pytest.raises(CommandTimeout, match="ran longer than 0.5 s"):
            transport.run(["sleep", "30"], timeout=0.5)
        assert time.perf_counter() - start < 5
        assert transport.run(["true"], timeout=20).ok  # the connection is still usable


def test_upload_stat_rename_remove_and_free_space(sshd_fleet, tmp_path: Path):
    fleet = sshd_fleet(1)
    device = device_of(fleet)
    payload = os.urandom(3 * 1024 * 1024 + 17)
    local = tmp_path / "blob.bin"
    local.write_bytes(payload)
    seen: list[int] = []
    with open_transport(device, ConnectOptions()) as transport:
        incoming = f"{device.spool}/incoming"
        transport.makedirs(incoming)
        part = f"{incoming}/blob.part"
        transport.upload(str(local), part, progress=lambda done, total: seen.append(done))
        assert seen[-1] == len(payload) and seen == sorted(seen)
        assert transport.file_size(part) == len(payload)
        assert Path(part).read_bytes() == payload
        assert oct(Path(part).stat().st_mode & 0o777) == oct(0o600)
        # resume: cut the remote copy short, upload the rest from the offset
        with open(part, "r+b") as handle:
            handle.truncate(1_000_000)
        transport.upload(str(local), part, offset=1_000_000)
        assert Path(part).read_bytes() == payload
        transport.rename(part, f"{incoming}/blob.done")
        assert transport.file_size(part) is None
        transport.remove(f"{incoming}/blob.done")
        transport.remove(f"{incoming}/blob.done")  # already gone: no error
        stats = os.statvfs(incoming)
        assert (
            abs(transport.free_bytes(incoming) - stats.f_bavail * stats.f_frsize) < 64 * 1024 * 1024
        )
        assert transport.expand_path("~/x") == os.path.join(os.path.expanduser("~"), "x")


def test_killed_connection_mid_upload_is_reported_and_resumable(sshd_fleet, tmp_path: Path):
    fleet = sshd_fleet(1)
    device = device_of(fleet)
    payload = os.urandom(24 * 1024 * 1024)
    local = tmp_path / "big.bin"
    local.write_bytes(payload)
    part = f"{device.spool}/big.part"
    killed = []

    def kill_midway(done: int, total: int) -> None:
        if not killed and done > total // 3:
            killed.append(fleet["dev1"].kill_connections())

    with open_transport(device) as transport:
        transport.makedirs(device.spool)
        with pytest.raises(ConnectionLost, match="connection lost during upload"):
            transport.upload(str(local), part, progress=kill_midway)
        assert killed and killed[0] >= 1
        transport.reconnect()
        have = transport.file_size(part) or 0
        assert 0 < have < len(payload)
        assert Path(part).read_bytes() == payload[:have]  # what arrived is a clean prefix
        transport.upload(str(local), part, offset=have)
        assert Path(part).read_bytes() == payload


def test_errors_are_device_errors():
    assert issubclass(ConnectionLost, DeviceError) and issubclass(
        ConnectionRefusedByPolicy, DeviceError
    )
