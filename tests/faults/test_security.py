"""Security: host keys, secrets, spool permissions, and the agent's systemd unit.

- A changed host key (a real impostor sshd behind the same address) and an unknown host are
  refused by every command that connects, with or without --accept-new-host-key for a
  changed key; the opt-in records exactly the key seen, once, in a 0600 file.
- No private key, passphrase or key bytes end up in any output, log, result, DB or report.
- After a real `agent install` + deploy + bench over SSH (session umask 022), the spool and
  its results are the user's alone (another user cannot read them).
- The systemd unit the installer writes is a user unit: it runs as that user, never root.
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest
from support.sshd import DeviceSpec, sshd_available

from .harness import listing

pytestmark = pytest.mark.skipif(not sshd_available(), reason="OpenSSH server not installed")


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# ----------------------------------------------------------------------------- host keys


def test_an_impostor_behind_the_address_is_refused_by_every_command(
    ready_fleet, run_cli, tiny_tflite, tmp_path, figures
):
    fleet = ready_fleet(2)
    proxy = fleet.proxy("dev1")  # known_hosts: the proxy's address carries dev1's key
    inv = str(fleet.inventory_path)
    assert run_cli("devices", "check", "dev1", "--inventory", inv).code == 0
    proxy.retarget(fleet["dev2"].port)  # now a different server answers at that address
    known_before = fleet.known_hosts_path.read_bytes()
    impostor_before = tree(fleet["dev2"].spool)
    commands = [
        ["devices", "check", "dev1"],
        ["deploy", tiny_tflite, "--device", "dev1"],
        ["bench", tiny_tflite, "--device", "dev1", "--runs", "2", "--db", tmp_path / "r.db"],
        ["agent", "install", "dev1", "--runtime", "system"],
    ]
    refused = 0
    for command in commands:
        for flag in ([], ["--accept-new-host-key"]):
            outcome = run_cli(*command, *flag, "--inventory", inv)
            assert outcome.code == 3, (command, flag, outcome.err)
            assert "HOST KEY CHANGED" in outcome.err and "Traceback" not in outcome.err
            refused += 1
    assert fleet.known_hosts_path.read_bytes() == known_before
    assert tree(fleet["dev2"].spool) == impostor_before  # not one byte reached the impostor
    figures("security", host_key_refusals=refused)


def test_an_unknown_host_is_refused_until_the_opt_in_records_its_key(
    sshd_fleet, run_cli, tiny_tflite, tmp_path, figures
):
    fleet = sshd_fleet(1, trust=False)
    from support.fixtures import preinstall_agent

    preinstall_agent(fleet["dev1"])
    known = tmp_path / "fresh" / "known_hosts"  # does not exist yet
    text = fleet.inventory_path.read_text().replace(str(fleet.known_hosts_path), str(known))
    fleet.inventory_path.write_text(text)
    inv = str(fleet.inventory_path)
    for command in (
        ["devices", "check", "dev1"],
        ["deploy", tiny_tflite, "--device", "dev1"],
        ["bench", tiny_tflite, "--device", "dev1", "--runs", "2", "--db", tmp_path / "r.db"],
    ):
        outcome = run_cli(*command, "--inventory", inv)
        assert outcome.code == 3 and "is not in known_hosts" in outcome.err, outcome.err
    assert not known.exists()
    assert listing(fleet["dev1"].spool / "models") == []
    outcome = run_cli("deploy", tiny_tflite, "--device", "dev1", "--inventory", inv,
                      "--accept-new-host-key")  # fmt: skip
    assert outcome.code == 0, outcome.err
    assert known.read_text() == fleet["dev1"].known_hosts_line()  # exactly the key it saw
    assert mode(known) == 0o600 and mode(known.parent) == 0o700
    for _ in range(2):  # known now: no flag needed, and the opt-in does not record it twice
        outcome = run_cli("devices", "check", "dev1", "--inventory", inv, "--accept-new-host-key")
        assert outcome.code == 0, outcome.err
    assert known.read_text() == fleet["dev1"].known_hosts_line()
    figures("security", unknown_host_refusals=3, opt_in_recorded=1)


# ----------------------------------------------------------------------------- secrets


def key_needles(path: Path, passphrase: str | None = None) -> list[str]:
    """Fragments that would betray a private key: its file body and its raw seed.

    The OpenSSH file also embeds the public key (shown anywhere, legitimately), so body
    windows that occur in the public key's base64 at any alignment are left out.
    """
    key = paramiko.Ed25519Key.from_private_key_file(str(path), password=passphrase)
    blob = key.asbytes()
    public = [base64.b64encode(b"\0" * shift + blob).decode() for shift in range(3)]
    body = "".join(
        line.strip() for line in path.read_text().splitlines() if not line.startswith("-----")
    )
    windows = [body[i : i + 24] for i in range(40, len(body) - 24, 8)]  # after the header
    needles = [w for w in windows if not any(w[4:20] in p for p in public)]
    raw = key._signing_key.encode()  # the 32-byte private seed
    for shift in range(3):  # the seed in base64 at each alignment
        needles.append(base64.b64encode(b"\0" * shift + raw).decode()[4:36])
    needles.append(raw.hex())
    if passphrase:
        needles.append(passphrase)
    return needles


def test_no_key_or_passphrase_reaches_any_output(
    ready_fleet, run_cli, tiny_tflite, tmp_path, figures
):
    fleet = ready_fleet(2)
    passphrase = "Hunter2-pass-phrase-7c1e"
    locked = tmp_path / "locked_ed25519"
    shutil.copy(fleet["dev2"].user_key, locked)
    subprocess.run(
        ["ssh-keygen", "-q", "-p", "-N", passphrase, "-f", str(locked)], check=True,
        capture_output=True,
    )  # fmt: skip
    fleet["dev2"].spec.extra["identity_file"] = str(locked)  # a key only ssh-agent could open
    fleet.write_inventory()
    inv = str(fleet.inventory_path)
    db = tmp_path / "r.db"
    outputs = []
    for command in (
        ["devices", "check", "--tag", "sshd", "--json"],
        ["deploy", tiny_tflite, "--tag", "sshd"],
        ["bench", tiny_tflite, "--tag", "sshd", "--runs", "2", "--db", db, "--json"],
        ["bench", tiny_tflite, "--tag", "sshd", "--runs", "2", "--db", db],
        ["results", "show", "--db", db, "--json"],
        ["results", "export", "--db", db, "--out", tmp_path / "all.json"],
        ["results", "export", "--db", db, "--out", tmp_path / "all.csv"],
        ["results", "report", "--db", db, "--html", tmp_path / "report.html"],
    ):
        extra = [] if command[0] == "results" else ["--inventory", inv]
        outcome = run_cli(*command, *extra)
        outputs += [outcome.out, outcome.err]
    assert any("is encrypted (load it with ssh-add)" in text for text in outputs), outputs[:4]
    haystacks = {f"output {i}": text.encode() for i, text in enumerate(outputs)}
    for path in (*tmp_path.glob("r.db*"), tmp_path / "all.json", tmp_path / "all.csv",
                 tmp_path / "report.html", fleet.known_hosts_path):  # fmt: skip
        haystacks[str(path)] = path.read_bytes()
    for name in ("dev1", "dev2"):
        for rel, data in tree(fleet[name].spool).items():
            if not rel.startswith("venv"):
                haystacks[f"{name}:{rel}"] = data
    assert any("agent.log" in k for k in haystacks) and any("results/acked" in k for k in haystacks)
    needles = key_needles(fleet["dev1"].user_key) + key_needles(locked, passphrase)
    needles += key_needles(fleet["dev1"].host_key)
    # the search works: it finds the key in the key file itself
    assert any(n.encode() in fleet["dev1"].user_key.read_bytes() for n in needles)
    for where, data in haystacks.items():
        for needle in needles:
            assert needle.encode() not in data, f"key material in {where}"
    figures("security", secret_haystacks=len(haystacks), secret_needles=len(needles), leaks=0)


# ----------------------------------------------------------------------------- permissions


def test_spool_and_results_are_the_users_alone(sshd_fleet, run_cli, tiny_tflite, tmp_path, figures):
    """A real install over SSH (sshd's session umask is 022), then deploy and bench."""
    from edgeprune.fleet import load_inventory
    from edgeprune.fleet.install import install_agent
    from edgeprune.fleet.session import DeviceSession

    fleet = sshd_fleet(1)
    device = load_inventory(fleet.inventory_path).devices["dev1"]
    with DeviceSession.open(device) as session:
        assert session.transport.run(["sh", "-c", "umask"], timeout=30).stdout.strip() == "0022"
        install_agent(session, runtime="system", start_service=False)
    inv = str(fleet.inventory_path)
    db = tmp_path / "r.db"
    outcome = run_cli("bench", tiny_tflite, "--device", "dev1", "--runs", "2", "--db", db,
                      "--inventory", inv)  # fmt: skip
    assert outcome.code == 0, outcome.err
    spool = fleet["dev1"].spool
    assert mode(spool) == 0o700
    checked = 0
    for sub in ("incoming", "models", "inputs", "jobs", "results", "logs"):
        for path in [spool / sub, *(spool / sub).rglob("*")]:
            expected = 0o700 if path.is_dir() else 0o600
            assert mode(path) == expected, (path, oct(mode(path)))
            checked += 1
    for lock in ("daemon.lock", "bench.lock"):
        if (spool / lock).exists():
            assert mode(spool / lock) == 0o600
    results = list((spool / "results" / "acked").glob("*.json"))
    assert results, "the bench left no result to check"
    for path in spool.rglob("*"):  # the agent's code and venv may be 0755, but never writable
        assert not mode(path) & (stat.S_IWGRP | stat.S_IWOTH) or path.is_symlink(), path
    if os.geteuid() == 0:  # and the kernel agrees: another user cannot read a result
        peek = subprocess.run(["cat", str(results[0])], user=65534, capture_output=True)
        assert peek.returncode != 0 and b"Permission denied" in peek.stderr
    figures("security", private_paths_checked=checked)


# ----------------------------------------------------------------------------- systemd unit


def test_the_installed_unit_is_a_user_unit_that_never_runs_as_root(tmp_path, figures):
    from edgeprune.fleet.systemd import render_unit, unit_template

    python, spool = sys.executable, str(tmp_path / "spool")  # verify wants a real interpreter
    unit = render_unit(unit_template(), python, spool)
    lines = [line.strip() for line in unit.splitlines()]
    service = lines[lines.index("[Service]") + 1 : lines.index("[Install]")]
    keys = {line.split("=", 1)[0] for line in service if "=" in line and not line.startswith("#")}
    assert not keys & {"User", "Group", "DynamicUser"}  # a user unit: it runs as its user
    assert "UMask=0077" in service and "NoNewPrivileges=yes" in service
    assert "RestrictAddressFamilies=AF_UNIX" in service  # no network port, not even by mistake
    assert f"ExecStart={python} -m device_agents serve --spool {spool}" in service
    assert "WantedBy=default.target" in lines  # the user manager's target, not multi-user
    assert not any(line.startswith("ExecStart=") and "sudo" in line for line in service)
    analyze = shutil.which("systemd-analyze")
    if analyze:
        path = tmp_path / "edgeprune-agent.service"
        path.write_text(unit)
        verify = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stderr
    figures("security", unit_checks=1)


def test_install_puts_the_unit_in_the_users_systemd_and_uses_systemctl_user(
    sshd_fleet, tmp_path, figures
):
    """install_unit over a real SSH session; systemctl is a recorder (no systemd here)."""
    from edgeprune.fleet import load_inventory
    from edgeprune.fleet.probe import probe_device
    from edgeprune.fleet.session import DeviceSession
    from edgeprune.fleet.systemd import UNIT_NAME, install_unit, render_unit, unit_template

    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    calls = tmp_path / "systemctl.calls"
    (fakebin / "systemctl").write_text(
        f'#!/bin/sh\necho "uid=$(id -u) runtime=$XDG_RUNTIME_DIR $*" >> {calls}\n'
    )
    (fakebin / "systemctl").chmod(0o755)
    fleet = sshd_fleet(devices=[DeviceSpec("dev1", env={"PATH": f"{fakebin}:/usr/bin:/bin"})])
    target = Path.home() / ".config" / "systemd" / "user" / UNIT_NAME
    if target.exists():
        pytest.skip(f"{target} exists on this host; not overwriting it")
    made = [p for p in (target.parent, target.parent.parent, target.parent.parent.parent)
            if not p.exists()]  # fmt: skip
    device = load_inventory(fleet.inventory_path).devices["dev1"]
    try:
        with DeviceSession.open(device) as session:
            facts = probe_device(session.transport, device.python, session.spool)
            install_unit(session, facts)
            expected = render_unit(unit_template(), session.agent_python, session.spool)
        assert target.read_text() == expected
        assert not mode(target) & (stat.S_IWGRP | stat.S_IWOTH)
        recorded = calls.read_text().splitlines()
        uid = os.getuid()
        assert recorded == [
            f"uid={uid} runtime=/run/user/{uid} --user daemon-reload",
            f"uid={uid} runtime=/run/user/{uid} --user enable {UNIT_NAME}",
            f"uid={uid} runtime=/run/user/{uid} --user restart {UNIT_NAME}",
        ]
    finally:
        target.unlink(missing_ok=True)
        for folder in made:
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
    figures("security", unit_checks=1)
