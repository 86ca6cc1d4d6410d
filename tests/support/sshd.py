"""Real OpenSSH `sshd` "devices" on 127.0.0.1 for tests: the fleet code talks to them for real.

    fleet = SshdFleet.start(tmp_path, count=2)            # or SshdFleet.start(..., devices=[...])
    fleet.inventory_path, fleet.known_hosts_path           # give these to edgeprune
    fleet["dev1"].kill_connections()                      # fault injection: drop live sessions
    fleet["dev1"].stop(); fleet["dev1"].start()           # a board going away and coming back
    fleet.proxy("dev1").plan_cut(after_bytes=3_000_000)   # a link that breaks (support.tcp_proxy)
    fleet.close()

Each device has its own host key, its own user key (its `identity_file`), its own spool
directory and, if asked, its own `python` (e.g. a wrapper script that runs an emulated
arm64 interpreter) and a spool on a size-limited tmpfs (a "full disk"). Logins are as the
current user (root in CI), key-only. Nothing here is mocked: the bytes go through sshd.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"


def sshd_available() -> bool:
    """True when OpenSSH's server and ssh-keygen are installed (apt-get install openssh-server)."""
    return os.path.exists(SSHD) and os.path.exists(SSH_KEYGEN)


@dataclass
class DeviceSpec:
    """What a test asks for: a name, tags, the device's python, a spool size limit, session env."""

    name: str
    tags: list[str] = field(default_factory=list)
    python: str | None = None
    kind: str = "linux"
    spool_size_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # set in every session (sshd SetEnv)
    more_host_keys: tuple[str, ...] = ()  # further host key types, e.g. ("rsa",)


def _keygen(path: Path, comment: str, key_type: str = "ed25519") -> None:
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", key_type, "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Direct child pids of `pid` (from /proc; no psutil needed)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


class SshDevice:
    """One sshd on 127.0.0.1 with its own keys and spool."""

    def __init__(self, root: Path, spec: DeviceSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.host_key = root / "host_ed25519"
        self.user_key = root / "user_ed25519"
        _keygen(self.host_key, f"host-{spec.name}")
        self.more_host_keys = {t: root / f"host_{t}" for t in spec.more_host_keys}
        for key_type, path in self.more_host_keys.items():
            _keygen(path, f"host-{spec.name}", key_type)
        _keygen(self.user_key, f"user-{spec.name}")
        self.authorized_keys = root / "authorized_keys"
        shutil.copy(self.user_key.with_suffix(".pub"), self.authorized_keys)
        self.spool = root / "spool"
        self._tmpfs = False
        if spec.spool_size_bytes is not None:
            self.spool.mkdir(mode=0o700)
            subprocess.run(
                [
                    "mount",
                    "-t",
                    "tmpfs",
                    "-o",
                    f"size={spec.spool_size_bytes},mode=0700",
                    "tmpfs",
                    str(self.spool),
                ],
                check=True,
                capture_output=True,
            )
            self._tmpfs = True
        self.python = spec.python or sys.executable
        self.port = free_port()
        # The port the host dials when it differs from sshd's (a fault-injecting proxy in between).
        self.dial_port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root / "sshd.log"

    @property
    def host_public_key(self) -> str:
        """`ssh-ed25519 AAAA...` (no comment)."""
        return " ".join(self.host_key.with_suffix(".pub").read_text().split()[:2])

    def host_public_key_of(self, key_type: str) -> str:
        """`ssh-rsa AAAA...` for one of `more_host_keys` (no comment)."""
        return " ".join(self.more_host_keys[key_type].with_suffix(".pub").read_text().split()[:2])

    @property
    def public_port(self) -> int:
        """The port in the inventory and known_hosts: sshd's own, or the proxy's in front of it."""
        return self.dial_port or self.port

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.public_port} {self.host_public_key}\n"

    def _config(self) -> Path:
        config = self.root / "sshd_config"
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            *(f"HostKey {path}" for path in self.more_host_keys.values()),
            f"PidFile {self.root / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "StrictModes no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin prohibit-password",
            "Subsystem sftp internal-sftp",
            "MaxStartups 200",
            "MaxSessions 100",
            "LogLevel ERROR",
            # Bash sources ~/.bashrc for ssh commands only at shell level 1; starting at 1
            # keeps this host's interactive profile (pyenv init etc.) out of every command,
            # as on a board whose .bashrc returns early for non-interactive shells.
            "SetEnv "
            + " ".join(
                f'"{key}={value}"' for key, value in {"SHLVL": "1", **self.spec.env}.items()
            ),
        ]
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart, on the same port) and wait until it answers with an SSH banner."""
        if self.process is not None and self.process.poll() is None:
            return
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self._config())],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd for {self.name} exited: {self.log.read_text()[-500:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock,
            ):
                if sock.recv(64).startswith(b"SSH-"):
                    return
            time.sleep(0.02)
        raise RuntimeError(f"sshd for {self.name} did not answer on port {self.port}")

    def stop(self) -> None:
        """Stop the listener and every live session (the board went away)."""
        if self.process is None:
            return
        self.kill_connections()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def kill_connections(self) -> int:
        """SIGKILL every session process of this sshd: live SSH connections drop mid-flight."""
        if self.process is None:
            return 0
        killed = 0
        for pid in _children(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        return killed

    def inventory_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.name,
            "host": "127.0.0.1",
            "port": self.public_port,
            "user": _current_user(),
            "identity_file": str(self.user_key),
            "kind": self.spec.kind,
            "tags": list(self.spec.tags),
            "python": self.python,
            "spool": str(self.spool),
            "connect_timeout": 5,
        }
        entry.update(self.spec.extra)
        return entry

    def close(self) -> None:
        self.stop()
        if self._tmpfs:
            subprocess.run(["umount", "-l", str(self.spool)], check=False, capture_output=True)
            self._tmpfs = False


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


class SshdFleet:
    """N sshd devices plus the inventory and known_hosts files that describe them."""

    def __init__(self, root: Path, devices: list[SshDevice]) -> None:
        self.root = root
        self.devices = devices
        self.inventory_path = root / "devices.yaml"
        self.known_hosts_path = root / "known_hosts"
        self.trusted: list[SshDevice] = []
        self.proxies: list[Any] = []

    @classmethod
    def start(
        cls,
        root: Path,
        count: int = 2,
        *,
        devices: list[DeviceSpec] | None = None,
        trust: bool = True,
    ) -> SshdFleet:
        """Start the devices; `trust=False` leaves known_hosts empty (hosts unknown)."""
        if not sshd_available():
            raise RuntimeError("OpenSSH server not installed: apt-get install -y openssh-server")
        specs = devices or [
            DeviceSpec(name=f"dev{i + 1}", tags=["sshd", f"group{i % 2}"]) for i in range(count)
        ]
        root.mkdir(parents=True, exist_ok=True)
        fleet = cls(root, [SshDevice(root / spec.name, spec) for spec in specs])
        try:
            for device in fleet.devices:
                device.start()
        except BaseException:
            fleet.close()
            raise
        fleet.write_known_hosts(fleet.devices if trust else [])
        fleet.write_inventory()
        return fleet

    def __getitem__(self, name: str) -> SshDevice:
        for device in self.devices:
            if device.name == name:
                return device
        raise KeyError(name)

    def write_known_hosts(self, devices: list[SshDevice]) -> None:
        self.trusted = list(devices)
        self.known_hosts_path.write_text("".join(d.known_hosts_line() for d in devices))
        self.known_hosts_path.chmod(0o600)

    def proxy(self, name: str) -> Any:
        """Put a fault-injecting TCP proxy (support.tcp_proxy) in front of device `name`.

        The inventory (and known_hosts, if the device was trusted) now name the proxy's port,
        so edgeprune's every byte to that device goes through it. Closed with the fleet.
        """
        from support.tcp_proxy import TcpProxy

        device = self[name]
        proxy = TcpProxy(device.port).start()
        self.proxies.append(proxy)
        device.dial_port = proxy.port
        if device in self.trusted:
            self.write_known_hosts(self.trusted)
        self.write_inventory()
        return proxy

    def write_inventory(
        self, extra_devices: list[dict[str, Any]] | None = None, **top: Any
    ) -> Path:
        """(Re)write devices.yaml: every device plus `extra_devices`; `top` adds top-level keys."""
        document: dict[str, Any] = {"known_hosts": str(self.known_hosts_path)}
        document.update(top)
        document["devices"] = [d.inventory_entry() for d in self.devices] + list(
            extra_devices or []
        )
        self.inventory_path.write_text(yaml.safe_dump(document, sort_keys=False))
        return self.inventory_path

    def close(self) -> None:
        for proxy in self.proxies:
            with contextlib.suppress(Exception):
                proxy.close()
        for device in self.devices:
            with contextlib.suppress(Exception):
                device.close()

    def __enter__(self) -> SshdFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
