"""The whole loop against real sshd devices running the real agent: install, deploy, bench, results."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from support.sshd import SshdFleet, sshd_available

from device_agents.integrity import sha256_file

pytestmark = pytest.mark.skipif(not sshd_available(), reason="OpenSSH server not installed")


@pytest.fixture(scope="module")
def installed_fleet(tmp_path_factory) -> SshdFleet:
    """Two sshd devices with the agent installed (through the library), plus a dead third one."""
    from edgeprune.fleet import load_inventory
    from edgeprune.fleet.fanout import fan_out
    from edgeprune.fleet.install import install_agent
    from edgeprune.fleet.session import DeviceSession

    fleet = SshdFleet.start(tmp_path_factory.mktemp("e2e"), 2)
    devices = load_inventory(fleet.inventory_path).select(tags=["sshd"])

    def install(device):  # type: ignore[no-untyped-def]
        with DeviceSession.open(device) as session:
            return install_agent(session, runtime="system", start_service=False)

    group = fan_out(devices, install)
    assert not group.failed, [o.message for o in group.failed]
    yield fleet
    fleet.close()


def spool_files(fleet: SshdFleet, name: str, sub: str) -> list[str]:
    folder = fleet[name].spool / sub
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_install_deploy_bench_and_results(
    installed_fleet, run_cli, tiny_tflite, tiny_tflite_b, tmp_path: Path
):
    fleet = installed_fleet
    inv = str(fleet.inventory_path)
    # re-running install upgrades in place: the old package dir is replaced, the venv kept
    stale = fleet["dev1"].spool / "agent" / "device_agents" / "stale_module.py"
    stale.write_text("raise SystemExit('old agent file')\n")
    outcome = run_cli(
        "agent", "install", "dev1", "--runtime", "system", "--inventory", inv, "--json"
    )
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)["devices"][0]
    assert report["ok"] and report["runtime"]["name"] == "ai_edge_litert"
    assert report["venv_created"] is False and report["runtime_source"] == "system"
    assert report["service"] == "not available" and "serve --spool" in report["hint"]
    assert not stale.exists()

    outcome = run_cli("devices", "check", "--tag", "sshd", "--inventory", inv, "--json")
    assert outcome.code == 0, outcome.err
    checks = {d["device"]: d for d in json.loads(outcome.out)["devices"]}
    assert set(checks) == {"dev1", "dev2"}
    for health in checks.values():
        assert health["ok"] and health["agent_version"] and health["runtime"] == "ai_edge_litert"
        assert health["daemon_running"] is False and health["free_bytes"] > 0

    outcome = run_cli(
        "deploy", tiny_tflite, tiny_tflite_b, "--tag", "sshd", "--inventory", inv, "--json"
    )
    assert outcome.code == 0, outcome.err
    first = json.loads(outcome.out)["devices"]
    assert all(f["status"] == "sent" and f["bytes_sent"] > 0 for d in first for f in d["files"])
    shas = {sha256_file(tiny_tflite), sha256_file(tiny_tflite_b)}
    for name in ("dev1", "dev2"):
        assert set(spool_files(fleet, name, "models")) == {f"{s}.tflite" for s in shas}
        assert spool_files(fleet, name, "incoming") == []
    mtimes = {p: p.stat().st_mtime_ns for p in (fleet["dev1"].spool / "models").iterdir()}

    outcome = run_cli(
        "deploy", tiny_tflite, tiny_tflite_b, "--device", "dev1,dev2", "--inventory", inv, "--json"
    )
    assert outcome.code == 0, outcome.err
    again = json.loads(outcome.out)["devices"]
    assert all(f["status"] == "present" and f["bytes_sent"] == 0 for d in again for f in d["files"])
    assert {p: p.stat().st_mtime_ns for p in (fleet["dev1"].spool / "models").iterdir()} == mtimes

    db = tmp_path / "results.db"
    outcome = run_cli(
        "bench",
        tiny_tflite,
        tiny_tflite_b,
        "--tag",
        "sshd",
        "--threads",
        "1,2",
        "--runs",
        "5",
        "--warmup",
        "1",
        "--db",
        db,
        "--inventory",
        inv,
        "--json",
    )
    assert outcome.code == 0, outcome.err
    bench = json.loads(outcome.out)
    rows = bench["rows"]
    assert len(rows) == 2 * 2 * 2  # models × devices × threads
    assert {(r["device"], r["threads"]) for r in rows} == {
        (d, t) for d in ("dev1", "dev2") for t in (1, 2)
    }
    for row in rows:
        assert row["status"] == "ok" and 0 < row["p50_ms"] <= row["p90_ms"]
        assert (
            row["size_bytes"]
            == Path(tiny_tflite if row["baseline"] else tiny_tflite_b).stat().st_size
        )
        if row["baseline"]:
            assert row["speedup"] == pytest.approx(1.0)
        else:
            base = next(
                r
                for r in rows
                if r["baseline"] and r["device"] == row["device"] and r["threads"] == row["threads"]
            )
            assert row["speedup"] == pytest.approx(base["p50_ms"] / row["p50_ms"])
    for name in ("dev1", "dev2"):  # every result was acknowledged after it was stored
        assert [p for p in spool_files(fleet, name, "results") if p.endswith(".json")] == []
    with sqlite3.connect(db) as conn:
        assert (
            conn.execute(
                "SELECT COUNT(*) FROM measurements WHERE run_id = ?", (bench["run_id"],)
            ).fetchone()[0]
            == 8
        )

    outcome = run_cli("results", "show", "latest", "--db", db, "--json")
    assert outcome.code == 0 and len(json.loads(outcome.out)["rows"]) == 8
    outcome = run_cli("results", "report", "--db", db, "--html", tmp_path / "report.html")
    assert outcome.code == 0, outcome.err
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 1 and "dev2" in page


def test_unreachable_device_fails_alone(installed_fleet, run_cli, tiny_tflite, tmp_path: Path):
    fleet = installed_fleet
    dead = {
        "name": "dead",
        "host": "127.0.0.1",
        "port": fleet["dev1"].port + 0,
        "tags": ["sshd"],
        "retries": 0,
    }
    from support.sshd import free_port

    dead["port"] = free_port()  # nothing listens there
    fleet.write_inventory(extra_devices=[dead])
    try:
        inv = str(fleet.inventory_path)
        outcome = run_cli("deploy", tiny_tflite, "--tag", "sshd", "--inventory", inv, "--json")
        assert outcome.code == 3
        devices = {d["device"]: d for d in json.loads(outcome.out)["devices"]}
        assert devices["dev1"]["ok"] and devices["dev2"]["ok"]
        assert not devices["dead"]["ok"] and "cannot connect" in devices["dead"]["error"]
        assert (
            "error: device dead" in outcome.err and "dev1" not in outcome.err.split("failed on")[0]
        )
        db = tmp_path / "r.db"
        outcome = run_cli(
            "bench",
            tiny_tflite,
            "--tag",
            "sshd",
            "--runs",
            "3",
            "--db",
            db,
            "--inventory",
            inv,
            "--json",
        )
        assert outcome.code == 3
        bench = json.loads(outcome.out)
        assert {r["device"] for r in bench["rows"]} == {"dev1", "dev2"}
        assert [d["device"] for d in bench["devices"] if not d["ok"]] == ["dead"]
    finally:
        fleet.write_inventory()


def test_killed_upload_retries_and_never_leaves_a_partial_model(installed_fleet, large_tflite):
    from dataclasses import replace

    from edgeprune.fleet import deploy, load_inventory, load_model

    fleet = installed_fleet
    model = load_model(large_tflite)
    target = fleet["dev2"].spool / "models" / f"{model.sha256}.tflite"
    device = load_inventory(fleet.inventory_path).devices["dev2"]
    kills: list[int] = []
    starts: list[int] = []  # where this deploy's upload starts: its first report

    def kill_once(name: str, label: str, done: int, total: int) -> None:
        # a resumed upload first reports its offset before any byte moves: cut only once
        # bytes of this upload are in flight (else the transport just reconnects)
        starts.append(done)
        if not kills and done > max(total // 3, starts[0]):
            kills.append(fleet["dev2"].kill_connections())
            assert not target.exists()

    # no retries allowed: the deploy fails; nothing usable is left, only the part to resume
    group = deploy([replace(device, retries=0)], [model], progress=kill_once)
    assert kills and kills[0] > 0 and group.failed and "connection lost" in group.failed[0].message
    assert not target.exists()
    (part,) = spool_files(fleet, "dev2", "incoming")
    assert part.startswith(model.sha256 + ".") and part.endswith(".part")
    # with retries the same cut is survived: the upload resumes and the agent admits it
    kills.clear()
    starts.clear()
    group = deploy([device], [model], progress=kill_once)
    assert kills and kills[0] > 0 and not group.failed, [o.message for o in group.failed]
    sent = group["dev2"].value[0]
    assert sent.status == "sent" and sent.retries == 1
    assert sha256_file(target) == model.sha256
    assert spool_files(fleet, "dev2", "incoming") == []
    target.unlink()  # leave the shared fleet as it was


def test_agent_missing_unknown_host_and_no_runtime(sshd_fleet, run_cli, tiny_tflite):
    import shutil

    fleet = sshd_fleet(1, trust=False)
    inv = str(fleet.inventory_path)
    outcome = run_cli("deploy", tiny_tflite, "--device", "dev1", "--inventory", inv)
    assert (
        outcome.code == 3
        and "is not in known_hosts" in outcome.err
        and "--accept-new-host-key" in outcome.err
    )
    assert "Traceback" not in outcome.err
    outcome = run_cli(
        "deploy", tiny_tflite, "--device", "dev1", "--inventory", inv, "--accept-new-host-key"
    )
    assert (
        outcome.code == 3
        and "the agent is not installed (run: edgeprune agent install dev1)" in outcome.err
    )
    assert fleet.known_hosts_path.read_text() == fleet["dev1"].known_hosts_line()

    system_python = shutil.which("python3", path="/usr/bin")
    if system_python is None:
        pytest.skip("no /usr/bin/python3 to play a board without a runtime")
    import subprocess

    probe = subprocess.run([system_python, "-c", "import numpy"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("/usr/bin/python3 has numpy here; cannot play a board without a runtime")
    fleet.write_inventory()
    text = fleet.inventory_path.read_text().replace(str(fleet["dev1"].python), system_python)
    fleet.inventory_path.write_text(text)
    outcome = run_cli("agent", "install", "dev1", "--runtime", "system", "--inventory", inv)
    assert outcome.code == 3
    assert (
        "device dev1 has no TFLite runtime" in outcome.err
        and "pip install ai-edge-litert" in outcome.err
    )
    assert not (fleet["dev1"].spool / "agent").exists()  # refused before anything was written
    outcome = run_cli("devices", "check", "dev1", "--inventory", inv, "--json")
    health = json.loads(outcome.out)["devices"][0]
    assert health["ok"], health
    assert health["runtime"] is None and health["agent_version"] is None
    assert any("not installed" in p for p in health["problems"])
    assert any("install ai-edge-litert" in p for p in health["problems"])


def test_full_disk_is_refused_with_free_space_and_nothing_left(sshd_fleet, run_cli, large_tflite):
    import os

    from support.sshd import DeviceSpec

    if os.geteuid() != 0:
        pytest.skip("a size-limited tmpfs spool needs root")
    fleet = sshd_fleet(
        devices=[DeviceSpec("tiny-disk", tags=["sshd"], spool_size_bytes=4 * 1024 * 1024)]
    )
    inv = str(fleet.inventory_path)
    outcome = run_cli("agent", "install", "tiny-disk", "--runtime", "system", "--inventory", inv)
    assert outcome.code == 0, outcome.err
    outcome = run_cli("deploy", large_tflite, "--device", "tiny-disk", "--inventory", inv)
    assert outcome.code == 3
    assert "device tiny-disk: not enough disk for large-dense.tflite" in outcome.err.replace(
        large_tflite.name, "large-dense.tflite"
    )
    assert "MB free" in outcome.err and "MB needed" in outcome.err
    assert spool_files(fleet, "tiny-disk", "incoming") == []
    assert [p for p in spool_files(fleet, "tiny-disk", "models") if p.endswith(".tflite")] == []


def test_model_names_never_reach_the_remote_shell(
    installed_fleet, run_cli, tiny_tflite, tmp_path: Path
):
    import shutil

    marker = Path.home() / "EDGEPRUNE-INJECTED"  # a remote shell would run in the login's home
    marker.unlink(missing_ok=True)
    evil = (
        tmp_path / f"a b;touch {marker.name};$(touch {marker.name})`touch {marker.name}`'x\".tflite"
    )
    shutil.copy(tiny_tflite, evil)
    inv = str(installed_fleet.inventory_path)
    outcome = run_cli(
        "bench",
        evil,
        "--device",
        "dev1",
        "--runs",
        "2",
        "--db",
        tmp_path / "r.db",
        "--inventory",
        inv,
        "--json",
    )
    assert outcome.code == 0, outcome.err
    (row,) = json.loads(outcome.out)["rows"]
    assert row["model"] == evil.name and row["status"] == "ok"
    assert not marker.exists()


@pytest.mark.slow
def test_offline_install_pushes_wheels_to_a_bare_board(
    sshd_fleet, run_cli, tiny_tflite, tmp_path: Path
):
    """A board whose python has no numpy and no runtime: the host downloads the wheels for it."""
    import shutil
    import subprocess

    from support.sshd import DeviceSpec

    bare_python = shutil.which("python3", path="/usr/bin")
    if (
        bare_python is None
        or subprocess.run([bare_python, "-c", "import numpy"], capture_output=True).returncode == 0
    ):
        pytest.skip("needs a /usr/bin/python3 without numpy to play a bare board")
    fleet = sshd_fleet(devices=[DeviceSpec("bare", python=bare_python)])
    inv = str(fleet.inventory_path)
    outcome = run_cli("agent", "install", "bare", "--offline", "--inventory", inv, "--json")
    if outcome.code != 0 and "cannot download" in outcome.err:
        pytest.skip(f"no package index reachable from this host: {outcome.err.strip()}")
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)["devices"][0]
    assert report["runtime_source"] == "offline" and report["runtime"]["name"] == "ai_edge_litert"
    assert not list((fleet["bare"].spool / "wheels").glob("*.whl"))  # unpacked, then removed
    outcome = run_cli(
        "bench",
        tiny_tflite,
        "--device",
        "bare",
        "--runs",
        "2",
        "--db",
        tmp_path / "r.db",
        "--inventory",
        inv,
        "--json",
    )
    assert outcome.code == 0, outcome.err
    assert json.loads(outcome.out)["rows"][0]["runtime"] == "ai_edge_litert"
