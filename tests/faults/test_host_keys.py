"""Host keys as OpenSSH reads them: every known_hosts source, each checked against real `ssh`.

A server at a device's address shows its key; the real board's key is pinned somewhere
`ssh` looks (a pattern entry, a negation list, a hashed name, the second file of
`UserKnownHostsFile A B`, `GlobalKnownHostsFile`). The same files and ssh_config go to
OpenSSH's `ssh` and to edgeprune, strict and with accept-new: both must connect or both
refuse, and record the same. Revoked keys are refused always; a `@cert-authority` line is
refused with one clear line (where `ssh` would fall back to recording the plain key); a
malformed line is skipped with a warning naming file:line. A server with RSA and ed25519
keys, known by its RSA key only, is reached on the recorded type as `ssh` does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support.sshd import DeviceSpec, sshd_available

from edgeprune.fleet.inventory import load_inventory
from edgeprune.fleet.ssh_transport import SshTransport
from edgeprune.fleet.transport import ConnectionRefusedByPolicy

SSH = shutil.which("ssh")
pytestmark = pytest.mark.skipif(
    not (sshd_available() and SSH), reason="OpenSSH client and server not installed"
)
GARBAGE = (
    "{name} ssh-ed25519 !!!not-base64\n"
    "@bogus {name} {seen}\n"
    "{name} ssh-ed25519\n"
    "{name} ssh-rsa {seen_base64}\n"  # the key data says ed25519
)


def hashed(name: str) -> str:
    salt = os.urandom(20)
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


@dataclass
class Case:
    """Files (by role: user1, user2, global1, global2) and what edgeprune must say."""

    name: str
    files: dict[str, str]
    strict: str  # "connected" or a regex of the refusal
    accept_new: str
    ssh_differs: bool = False  # with accept-new, edgeprune is deliberately stricter than ssh


CASES = [
    Case("unknown", {}, "is not in known_hosts", "connected"),
    Case("exact pin", {"user1": "{name} {real}\n"}, "HOST KEY CHANGED", "HOST KEY CHANGED"),
    Case("wildcard pin", {"user1": "[127.0.0.*]:{port} {real}\n"}, "CHANGED", "CHANGED.*pattern"),
    Case(
        "negation list pin",
        {"user1": "[127.0.0.?]:{port},!192.0.2.1 {real}\n"},
        "CHANGED",
        "CHANGED",
    ),
    Case(
        "negation excludes the host",
        {"user1": "*,!{name} {real}\n"},
        "is not in known_hosts",
        "connected",
    ),
    Case("hashed pin", {"user1": "{hashed} {real}\n"}, "CHANGED", "CHANGED.*ssh-keygen -R"),
    Case("second user file pin", {"user2": "{name} {real}\n"}, "CHANGED", "CHANGED"),
    Case("global file pin", {"global1": "{name} {real}\n"}, "CHANGED", "CHANGED"),
    Case("second global file pin", {"global2": "{name} {real}\n"}, "CHANGED", "CHANGED"),
    Case("known by wildcard", {"user1": "[127.0.0.*]:{port} {seen}\n"}, "connected", "connected"),
    Case("known in a hashed line", {"user1": "{hashed} {seen}\n"}, "connected", "connected"),
    Case("known in the second user file", {"user2": "{name} {seen}\n"}, "connected", "connected"),
    Case("known in the global file", {"global1": "{name} {seen}\n"}, "connected", "connected"),
    Case(
        "revoked and listed",
        {"user1": "@revoked {name} {seen}\n{name} {seen}\n"},
        "@revoked",
        "@revoked",
    ),
    Case("revoked for every host", {"global1": "@revoked * {seen}\n"}, "@revoked", "@revoked"),
    Case(
        "cert-authority",
        {"user1": "@cert-authority [127.0.0.*]:{port} {real}\n"},
        "cert-authority.*does not check host certificates",
        "cert-authority.*does not check host certificates",
        ssh_differs=True,
    ),
    Case(
        "malformed lines, then the key",
        {"user1": GARBAGE + "{name} {seen}\n"},
        "connected",
        "connected",
    ),
    Case(
        "malformed lines, then a pin", {"user1": GARBAGE + "{name} {real}\n"}, "CHANGED", "CHANGED"
    ),
]


class Scenario:
    """One device, its files under `root`, an ssh_config naming them; ssh and edgeprune on it."""

    def __init__(self, fleet, root: Path) -> None:
        self.fleet = fleet
        self.device = fleet["dev1"]
        self.root = root
        root.mkdir()
        self.paths = {role: root / role for role in ("user1", "user2", "global1", "global2")}
        self.name = f"[127.0.0.1]:{self.device.port}"
        seen = self.device.host_public_key
        self.values = {
            "name": self.name,
            "port": str(self.device.port),
            "seen": seen,
            "seen_base64": seen.split()[1],
            "real": fleet["dev2"].host_public_key,  # the real board's key, pinned
        }
        self.config = root / "ssh_config"
        self.config.write_text(
            "Host 127.0.0.1\n"
            f"  Port {self.device.port}\n"
            f"  IdentityFile {self.device.user_key}\n"
            "  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {self.paths['user1']} {self.paths['user2']}\n"
            f"  GlobalKnownHostsFile {self.paths['global1']} {self.paths['global2']}\n"
        )
        entry = self.device.inventory_entry()
        del entry["port"], entry["identity_file"]  # from the ssh_config, as ssh reads them
        self.inventory = root / "devices.yaml"
        self.inventory.write_text(
            yaml.safe_dump({"ssh_config": str(self.config), "devices": [entry]})
        )

    def write(self, case: Case) -> dict[str, str | None]:
        self.hashed = getattr(self, "hashed", None) or hashed(self.name)
        for role, path in self.paths.items():
            path.unlink(missing_ok=True)
            if role in case.files:
                path.write_text(case.files[role].format(**self.values, hashed=self.hashed))
        return self.state()

    def state(self) -> dict[str, str | None]:
        return {r: p.read_text() if p.exists() else None for r, p in self.paths.items()}

    def ssh(self, case: Case, accept_new: bool) -> tuple[str, dict[str, str | None]]:
        self.write(case)
        policy = "accept-new" if accept_new else "yes"
        done = subprocess.run(
            [SSH, "-F", str(self.config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
             "-o", f"StrictHostKeyChecking={policy}", "127.0.0.1", "true"],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert done.returncode in (0, 255), done.stderr
        return ("connected" if done.returncode == 0 else done.stderr), self.state()

    def edgeprune(self, case: Case, accept_new: bool) -> tuple[str, dict[str, str | None]]:
        self.write(case)
        device = load_inventory(self.inventory).devices["dev1"]
        try:
            with SshTransport(device, accept_new_host_key=accept_new) as transport:
                assert transport.run(["true"], timeout=20).ok
        except ConnectionRefusedByPolicy as exc:
            return str(exc), self.state()
        return "connected", self.state()


@pytest.mark.slow
def test_every_known_hosts_source_is_read_as_ssh_reads_it(sshd_fleet, tmp_path, caplog, figures):
    fleet = sshd_fleet(2)
    scenario = Scenario(fleet, tmp_path / "case")
    caplog.set_level(logging.WARNING, logger="edgeprune.fleet.known_hosts")
    agree = differ = refusals = impostor_recorded = 0
    for case in CASES:
        for accept_new, expected in ((False, case.strict), (True, case.accept_new)):
            label = f"{case.name} ({'accept-new' if accept_new else 'strict'})"
            before = scenario.write(case)
            ours, our_files = scenario.edgeprune(case, accept_new)
            theirs, their_files = scenario.ssh(case, accept_new)
            if expected == "connected":
                assert ours == "connected", (label, ours)
            else:
                assert ours != "connected", (label, "edgeprune connected")
                assert re.search(expected, ours), (label, ours)
                assert "\n" not in ours, (label, ours)
                refusals += 1
                impostor_recorded += our_files != before
            if case.ssh_differs and accept_new:
                assert theirs == "connected", (label, "ssh now refuses too", theirs)
                differ += 1
                continue
            assert (ours == "connected") == (theirs == "connected"), (label, ours, theirs)
            assert our_files == their_files, (label, our_files, their_files)
            agree += 1
    malformed = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    user1 = scenario.paths["user1"]
    for lineno in (1, 2, 3, 4):
        assert any(f"{user1}:{lineno} skipped" in m for m in malformed), (lineno, malformed)
    assert impostor_recorded == 0
    figures("host-keys", cases=len(CASES) * 2, agree_with_ssh=agree,
            stricter_than_ssh=differ, refusals=refusals, impostor_keys_recorded=0)  # fmt: skip


def test_inventory_known_hosts_with_a_pattern_pin_refuses_the_opt_in(sshd_fleet, run_cli, figures):
    fleet = sshd_fleet(2)
    port = fleet["dev1"].port
    pinned = f"[127.0.0.*]:{port} {fleet['dev2'].host_public_key}\n"  # the real board's key
    fleet.known_hosts_path.write_text(pinned)
    inv = str(fleet.inventory_path)
    outcome = run_cli("devices", "check", "dev1", "--inventory", inv, "--accept-new-host-key")
    assert outcome.code == 3, outcome.err
    assert "HOST KEY CHANGED" in outcome.err and "Traceback" not in outcome.err
    assert fleet.known_hosts_path.read_text() == pinned
    figures("host-keys", cli_refusals=1, impostor_keys_recorded=0)


def test_a_malformed_line_fails_no_device(ready_fleet, run_cli, caplog, figures):
    fleet = ready_fleet(2)
    good = fleet.known_hosts_path.read_text()
    fleet.known_hosts_path.write_text("garbage-host ssh-ed25519 !!!not-base64\n" + good)
    caplog.set_level(logging.WARNING, logger="edgeprune.fleet.known_hosts")
    outcome = run_cli("devices", "check", "--inventory", str(fleet.inventory_path))
    assert outcome.code == 0, outcome.err
    assert "InvalidHostKey" not in outcome.err
    warnings = [r.getMessage() for r in caplog.records]
    assert any(f"{fleet.known_hosts_path}:1 skipped" in w for w in warnings), warnings
    figures("host-keys", malformed_lines=1, devices_failed=0)


def test_a_server_with_rsa_and_ed25519_is_reached_on_the_recorded_rsa_key(sshd_fleet, figures):
    specs = [DeviceSpec(name=n, more_host_keys=("rsa",)) for n in ("dev1", "dev2")]
    fleet = sshd_fleet(devices=specs)
    name = f"[127.0.0.1]:{fleet['dev1'].port}"
    device = load_inventory(fleet.inventory_path).devices["dev1"]
    cases = {
        "rsa only": (f"{name} {fleet['dev1'].host_public_key_of('rsa')}\n", "connected"),
        "ed25519 only": (f"{name} {fleet['dev1'].host_public_key}\n", "connected"),
        "another rsa key": (f"{name} {fleet['dev2'].host_public_key_of('rsa')}\n", "CHANGED"),
    }
    connected = 0
    for label, (text, expected) in cases.items():
        fleet.known_hosts_path.write_text(text)
        for accept_new in (False, True):
            try:
                with SshTransport(device, accept_new_host_key=accept_new) as transport:
                    assert transport.run(["true"], timeout=20).ok
                got = "connected"
                connected += 1
            except ConnectionRefusedByPolicy as exc:
                got = str(exc)
            assert expected in got, (label, accept_new, got)
            assert fleet.known_hosts_path.read_text() == text, (label, "recorded a key")
    figures("host-keys", key_type_cases=len(cases) * 2, false_changed=0, connected=connected)


@pytest.mark.parametrize(
    "config",
    [
        "Host 127.0.0.1\n  Port 2222\n",
        "Host 127.0.0.1\n  UserKnownHostsFile {tmp}/a {tmp}/b\n",
        "Host 127.0.0.1\n  UserKnownHostsFile {tmp}/a\n  GlobalKnownHostsFile {tmp}/g1 {tmp}/g2\n",
        "Host *\n  GlobalKnownHostsFile {tmp}/g\n",
    ],
)
def test_the_known_hosts_files_read_are_those_of_ssh_G(tmp_path, config, figures):
    cfg = tmp_path / "ssh_config"
    cfg.write_text(config.format(tmp=tmp_path))
    inventory = tmp_path / "devices.yaml"
    inventory.write_text(
        yaml.safe_dump({"ssh_config": str(cfg), "devices": [{"name": "b", "host": "127.0.0.1"}]})
    )
    device = load_inventory(inventory).devices["b"]
    shown = subprocess.run(
        [SSH, "-F", str(cfg), "-G", "127.0.0.1"], capture_output=True, text=True, check=True
    ).stdout
    options = dict(line.split(" ", 1) for line in shown.splitlines() if " " in line)
    assert [device.known_hosts, *device.known_hosts_also] == options["userknownhostsfile"].split()
    assert list(device.global_known_hosts) == options["globalknownhostsfile"].split()
    figures("host-keys", ssh_G_configs=1, ssh_G_differences=0)
