"""Pytest fixtures around `support.sshd`, importable by any conftest:

    from support.fixtures import sshd_fleet, tiny_tflite  # noqa: F401  (in a conftest.py)

`sshd_fleet(count=2, devices=[...], trust=True)` starts real sshd devices for one test and
stops them afterwards; `tiny_tflite` is a real, tiny .tflite (built once, cached).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_agents.locks import daemon_state
from support.sshd import DeviceSpec, SshDevice, SshdFleet, sshd_available

TINY_MODEL_KEY_SOURCE = b"tiny-dense-v1: Input(4) -> Dense(3, softmax), seed 0"


@pytest.fixture(autouse=True)
def isolated_host_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test's inventory, local spool, results DB and known_hosts inside tmp_path.

    Autouse wherever a conftest imports it: `from support.fixtures import isolated_host_state`.
    """
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("EDGEPRUNE_INVENTORY", raising=False)
    monkeypatch.delenv("EDGEPRUNE_RESULTS_DB", raising=False)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture
def sshd_fleet(tmp_path: Path) -> Iterator:
    """Factory: sshd_fleet(count=2, *, devices=None, trust=True) -> SshdFleet (closed at teardown)."""
    if not sshd_available():
        pytest.skip("OpenSSH server not installed (apt-get install -y openssh-server)")
    started: list[SshdFleet] = []

    def start(
        count: int = 2, *, devices: list[DeviceSpec] | None = None, trust: bool = True
    ) -> SshdFleet:
        fleet = SshdFleet.start(
            tmp_path / f"fleet{len(started)}", count, devices=devices, trust=trust
        )
        started.append(fleet)
        return fleet

    yield start
    for fleet in started:
        fleet.close()


def build_tiny_tflite(path: Path, units: int = 3, inputs: int = 4, seed: int = 0) -> None:
    """A real float32 TFLite model (Dense + softmax), converted by TensorFlow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edgeprune._tf import keras, tf

    k = keras()
    k.utils.set_random_seed(seed)
    model = k.Sequential([k.Input((inputs,)), k.layers.Dense(units, activation="softmax")])
    converter = tf().lite.TFLiteConverter.from_keras_model(model)
    path.write_bytes(converter.convert())


@pytest.fixture(scope="session")
def tiny_tflite(cached_artifact) -> Path:
    key = hashlib.sha256(TINY_MODEL_KEY_SOURCE).hexdigest()[:16]
    return cached_artifact("tiny-dense.tflite", key, build_tiny_tflite)


@pytest.fixture(scope="session")
def tiny_tflite_b(cached_artifact) -> Path:
    """A second, different tiny model (more units): a second row in every table."""
    key = hashlib.sha256(TINY_MODEL_KEY_SOURCE + b"-b").hexdigest()[:16]
    return cached_artifact(
        "tiny-dense-b.tflite", key, lambda p: build_tiny_tflite(p, units=64, inputs=4, seed=1)
    )


@pytest.fixture(scope="session")
def large_tflite(cached_artifact) -> Path:
    """A real ~10 MB float32 model (Dense 1280→2048): big enough to cut an upload midway."""
    key = hashlib.sha256(TINY_MODEL_KEY_SOURCE + b"-large").hexdigest()[:16]
    return cached_artifact(
        "large-dense.tflite", key, lambda p: build_tiny_tflite(p, units=2048, inputs=1280, seed=2)
    )


def preinstall_agent(device: SshDevice) -> Path:
    """What `edgeprune agent install` leaves behind, made in a blink: `<spool>/venv/bin/python`.

    It is a wrapper that runs this repository's interpreter on this checkout, so the board
    runs the real device_agents code (the same files, even from a second worktree), without copying the package and building a venv for
    every fault test. `agent install` itself is tested in tests/fleet and tests/faults/test_security.
    """
    bin_dir = Path(device.spool) / "venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for part in (Path(device.spool), Path(device.spool) / "venv", bin_dir):
        part.chmod(0o700)
    wrapper = bin_dir / "python"
    checkout = Path(__file__).resolve().parents[2]  # this checkout's device_agents, always
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={checkout} exec {sys.executable} "$@"\n')
    wrapper.chmod(0o700)
    return wrapper


def agent_of_protocol_1_0(root: Path) -> Path:
    """A copy of this checkout's agent under `root` that speaks session protocol 1.0 (no
    `hello-has`): what a board installed before 1.1 answers. Its interpreter wrapper."""
    import shutil

    checkout = Path(__file__).resolve().parents[2]
    if not (root / "device_agents").exists():
        shutil.copytree(checkout / "device_agents", root / "device_agents")
        module = root / "device_agents" / "session.py"
        text = module.read_text()
        for old, new in (
            ('PROTOCOL = "1.1"', 'PROTOCOL = "1.0"'),
            ('HELLO_FEATURES = ("hello-has",)', "HELLO_FEATURES = ()"),
        ):
            assert old in text, f"device_agents/session.py no longer holds {old}"
            text = text.replace(old, new)
        module.write_text(text)
    wrapper = root / "python"
    # from its own directory: `-m` puts the working directory (maybe this checkout) first
    wrapper.write_text(f'#!/bin/sh\ncd {root} && PYTHONPATH={root} exec {sys.executable} "$@"\n')
    wrapper.chmod(0o700)
    return wrapper


def install_wrapper(device: SshDevice, wrapper: Path) -> None:
    """Make `wrapper` the device's agent interpreter (`<spool>/venv/bin/python`)."""
    target = Path(device.spool) / "venv" / "bin" / "python"
    target.write_text(wrapper.read_text())
    target.chmod(0o700)


class BoardDaemon:
    """The agent daemon of one device, started outside sshd as systemd would start it.

    `kill9()` is a crash, `reboot()` a power cycle (daemon and its children die, sshd's sessions
    drop, then both come back from clean processes); `start()` again after either.
    """

    def __init__(self, device: SshDevice, poll: float = 0.1) -> None:
        self.device = device
        self.poll = poll
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log = Path(device.root) / "daemon.out"

    def start(self) -> BoardDaemon:
        python = Path(self.device.spool) / "venv" / "bin" / "python"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(python),
                    *("-m", "device_agents", "serve", "--spool", str(self.device.spool)),
                    *("--poll", str(self.poll)),
                ],
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1
        return self

    def wait_serving(self, timeout: float = 60.0) -> None:
        """Until the daemon holds its lock (what `status` reports as running)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited: {self.log.read_text()[-800:]}")
            if daemon_state(str(self.device.spool))["running"]:
                return
            time.sleep(0.05)
        raise AssertionError(f"daemon did not start: {self.log.read_text()[-800:]}")

    def kill9(self) -> None:
        """SIGKILL to the daemon alone (its benchmark child dies by PDEATHSIG)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def reboot(self, down_seconds: float = 1.0) -> None:
        """Power cycle: kill -9 every agent process of this board, drop sshd, wait, start sshd."""
        for pid in board_processes(self.device):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)
        self.device.stop()
        time.sleep(down_seconds)
        self.device.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def board_processes(device: SshDevice) -> list[int]:
    """Pids whose command line names this device's spool: its daemon, `serve --once`, children."""
    needle = str(device.spool).encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read()
        except OSError:
            continue
        if needle in argv and b"device_agents" in argv:
            pids.append(int(entry))
    return pids


def padded_model_variants(base: Path, count: int, directory: Path) -> list[Path]:
    """`count` distinct valid models (different sha256): `base` plus i+1 zero bytes of padding.

    A flatbuffer may carry trailing bytes; every runtime loads these as `base`, so a load test
    gets many models (one job each) without converting hundreds of them.
    """
    directory.mkdir(parents=True, exist_ok=True)
    data = base.read_bytes()
    paths = []
    for index in range(count):
        path = directory / f"m{index:03d}.tflite"
        path.write_bytes(data + b"\0" * (4 * (index + 1)))
        paths.append(path)
    return paths
