"""A spool that cannot be walked out of, presence that proves content, values that are no flags.

Each attack plants something in a real spool (a symlink, a FIFO, a loose mode, a corrupt copy,
a stale upload) and runs the real agent as a process; nothing outside the spool may change.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.sshd import DeviceSpec, sshd_available

from device_agents.protocol import BenchOptions, Job
from device_agents.spool import PART_GRACE_S, Spool

REPO = Path(__file__).resolve().parents[2]
ZERO_SHA = "0" * 64


def run_agent(*args: object, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.pop("EDGEPRUNE_SPOOL", None)
    return subprocess.run(
        [sys.executable, "-m", "device_agents", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(REPO),
    )


def snapshot(directory: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file below `directory`: (size, mode, content), to prove nothing was written."""
    seen = {}
    for path in sorted(directory.rglob("*")):
        info = path.lstat()
        content = path.read_bytes() if stat.S_ISREG(info.st_mode) else b""
        seen[str(path)] = (info.st_size, stat.S_IMODE(info.st_mode), content)
    return seen


@pytest.fixture
def spool(tmp_path) -> Path:
    root = tmp_path / "spool"
    Spool(str(root)).ensure()
    assert (root / "jobs" / "queued").is_dir()
    return root


@pytest.fixture
def outside(tmp_path) -> Path:
    place = tmp_path / "outside"
    place.mkdir()
    (place / "victim").write_bytes(b"precious\n")
    os.chmod(place / "victim", 0o644)
    return place


def queue_job(root: Path, job_id: str = "j-attack") -> None:
    job = Job(id=job_id, model_sha256=ZERO_SHA, options=BenchOptions(runs=1, warmup=0))
    (root / "jobs" / "queued" / f"{job_id}.json").write_text(job.to_json())


def replace_with_link(entry: Path, target: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    elif entry.exists() or entry.is_symlink():
        entry.unlink()
    entry.symlink_to(target)


# ----------------------------------------------------------------------------- item: symlinks


def _attack_daemon_lock(root: Path, outside: Path) -> subprocess.CompletedProcess[str]:
    replace_with_link(root / "daemon.lock", outside / "victim")
    return run_agent("serve", "--once", "--poll", "0.05", "--spool", root)


def _attack_log(root: Path, outside: Path) -> subprocess.CompletedProcess[str]:
    replace_with_link(root / "logs" / "agent.log", outside / "victim")
    return run_agent("serve", "--once", "--poll", "0.05", "--spool", root)


def _attack_incoming(root: Path, outside: Path) -> subprocess.CompletedProcess[str]:
    replace_with_link(root / "incoming", outside)
    victim = root / "incoming" / "victim"
    return run_agent("admit", "--spool", root, "--json", f"--sha256={ZERO_SHA}", "--", victim)


def _attack_models(root: Path, outside: Path) -> subprocess.CompletedProcess[str]:
    replace_with_link(root / "models", outside)
    model = root.parent / "model.tflite"
    model.write_bytes(b"TFL3 not really a model")
    return run_agent("submit", model, "--spool", root, "--json", "--runs", "1")


def _attack_results(root: Path, outside: Path) -> subprocess.CompletedProcess[str]:
    replace_with_link(root / "results", outside)
    queue_job(root)
    return run_agent("serve", "--once", "--poll", "0.05", "--spool", root)


ATTACKS = {
    "daemon.lock": _attack_daemon_lock,
    "logs/agent.log": _attack_log,
    "incoming/": _attack_incoming,
    "models/": _attack_models,
    "results/": _attack_results,
}


@pytest.mark.parametrize("entry", list(ATTACKS))
def test_a_symlink_in_the_spool_leads_nowhere(spool, outside, entry, figures):
    before = snapshot(outside)
    done = ATTACKS[entry](spool, outside)
    after = snapshot(outside)
    writes_outside = sum(1 for k in set(before) | set(after) if before.get(k) != after.get(k))
    figures(
        "spool symlink attacks",
        injected=1,
        survived=int(writes_outside == 0),
        writes_outside=writes_outside,
    )
    assert after == before, f"{entry}: {done.stdout} {done.stderr}"
    assert "symlink" in done.stderr and "Traceback" not in done.stderr
    if entry == "logs/agent.log":  # the agent serves on, logging to stderr only, and says why
        assert done.returncode == 0 and "not logging to a file" in done.stderr
    else:
        assert done.returncode != 0
    assert entry.rstrip("/").split("/")[-1] in done.stderr  # the line names the planted link


def test_a_result_linked_to_dev_zero_or_a_fifo_is_refused_quickly(spool, figures):
    results = spool / "results"
    (results / "j-zero.json").symlink_to("/dev/zero")
    os.mkfifo(results / "j-fifo.json")
    big = results / "j-big.json"
    with open(big, "wb") as handle:
        handle.truncate(200 << 20)  # sparse: larger than any result may be
    refused = 0
    for job_id, word in (
        ("j-zero", "symlink"),
        ("j-fifo", "not a regular file"),
        ("j-big", "larger"),
    ):
        start = time.monotonic()
        done = run_agent("result", "--spool", spool, "--json", "--", job_id, timeout=30)
        assert time.monotonic() - start < 20
        assert done.returncode != 0 and word in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and job_id in done.stderr
        refused += 1
    figures("spool symlink attacks", injected=3, survived=refused)


def test_a_loose_spool_mode_is_tightened(tmp_path, figures):
    root = tmp_path / "spool"
    root.mkdir()
    os.chmod(root, 0o777)
    (root / "results").mkdir()
    os.chmod(root / "results", 0o777)
    done = run_agent("submit", "--spool", root, "--json", f"--sha256={ZERO_SHA}")
    assert done.returncode != 0 and "is not in" in done.stderr, done.stderr  # after ensure()
    modes = [stat.S_IMODE(p.stat().st_mode) for p in (root, root / "results")]
    figures("spool symlink attacks", injected=2, survived=modes.count(0o700))
    assert modes == [0o700, 0o700]


def test_a_directory_swapped_for_a_link_after_the_check_still_leads_nowhere(
    spool, outside, figures
):
    """The race: the layout was checked, then a directory becomes a link (no check() now)."""
    import logging

    from device_agents.daemon import setup_logging
    from device_agents.errors import AgentError

    (outside / "j-race.json").write_text("{}")
    replace_with_link(spool / "results", outside)
    with pytest.raises(AgentError, match="symlink"):
        Spool(str(spool)).read_result("j-race")
    replace_with_link(spool / "logs", outside)
    before = snapshot(outside)
    agent_log = logging.getLogger("edgeprune.agent")
    try:
        setup_logging(Spool(str(spool)), to_stderr=False)
        agent_log.error("this line must not land outside the spool")
    finally:
        for handler in list(agent_log.handlers):
            agent_log.removeHandler(handler)
            handler.close()
        agent_log.propagate = True
    replace_with_link(spool / "results", outside)
    from device_agents.protocol import error_result

    with pytest.raises(AgentError, match="symlink"):
        Spool(str(spool)).write_result(error_result("j-race", ZERO_SHA, "x", error_kind="bad_job"))
    assert snapshot(outside) == before
    figures("spool symlink attacks", injected=3, survived=3)


# ----------------------------------------------------------------------------- item: `has`


def _upload(root: Path, data: bytes, name: str = "m.part") -> Path:
    part = root / "incoming" / name
    part.write_bytes(data)
    return part


def test_has_proves_the_content_and_admit_replaces_a_corrupt_copy(spool, figures):
    data = b"TFL3" + os.urandom(4096)
    sha = hashlib.sha256(data).hexdigest()
    assert (
        run_agent(
            "admit", "--spool", spool, f"--sha256={sha}", "--", _upload(spool, data)
        ).returncode
        == 0
    )
    has = run_agent("has", "--spool", spool, "--json", "--", sha)
    assert json.loads(has.stdout)["present"] == [sha]
    stored = spool / "models" / f"{sha}.tflite"
    with open(stored, "r+b") as handle:  # same size, different bytes: a corrupt copy
        handle.seek(100)
        handle.write(b"\xff" * 16)
    has = run_agent("has", "--spool", spool, "--json", "--", sha)
    assert json.loads(has.stdout)["missing"] == [sha], has.stdout
    again = run_agent(
        "admit", "--spool", spool, "--json", f"--sha256={sha}", "--", _upload(spool, data)
    )
    assert again.returncode == 0 and json.loads(again.stdout)["already_present"] is False
    assert stored.read_bytes() == data
    has = run_agent("has", "--spool", spool, "--json", "--", sha)
    assert json.loads(has.stdout)["present"] == [sha]
    figures("presence proves content", injected=1, survived=1)


# ----------------------------------------------------------------------------- item: stale parts


def test_stale_uploads_are_cleaned_at_the_next_contact_but_not_one_in_use(spool, figures):
    old = time.time() - PART_GRACE_S - 3600
    stale = _upload(spool, b"x" * 1000, "a.1.part")
    held = _upload(spool, b"y" * 1000, "b.2.part")
    fresh = _upload(spool, b"z" * 1000, "c.3.part")
    for path in (stale, held):
        os.utime(path, (old, old))
    with open(held, "rb"):
        done = run_agent("has", "--spool", spool, "--json", "--", ZERO_SHA)
    assert done.returncode == 0
    assert not stale.exists() and held.exists() and fresh.exists()
    figures("stale uploads", injected=3, cleaned=1, kept_in_use=2)


# ----------------------------------------------------------------------------- item: flags


@pytest.mark.parametrize("name", ["--help.tflite", "-x.tflite", "--spool=elsewhere.tflite"])
def test_a_value_that_looks_like_a_flag_stays_a_value(spool, name, figures, monkeypatch):
    from edgeprune.fleet.agent_client import AgentClient
    from edgeprune.fleet.local_transport import LocalTransport

    monkeypatch.setenv("PYTHONPATH", str(REPO))
    data = b"TFL3" + name.encode()
    sha = hashlib.sha256(data).hexdigest()
    part = _upload(spool, data, name + ".part")  # an upload path starting with "-" too
    client = AgentClient(LocalTransport(), sys.executable, str(spool))
    monkeypatch.chdir(spool / "incoming")
    assert client.admit(os.path.basename(part), sha)["sha256"] == sha
    assert sha in client.has([sha])
    job_id = client.submit(sha, BenchOptions(runs=1, warmup=0), label=name)
    job = json.loads((spool / "jobs" / "queued" / f"{job_id}.json").read_text())
    assert job["label"] == name
    figures("argv values", injected=1, survived=1)


# ----------------------------------------------------------------------------- item: systemd


def _systemd_words(line: str) -> list[str]:
    """ExecStart words as systemd.unit(5) reads them: quotes, then %% and $$ unescaped."""
    words, word, quote, started = [], "", None, False
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
            else:
                word += ch
        elif ch in "\"'":
            quote, started = ch, True
        elif ch.isspace():
            if started or word:
                words.append(word)
            word, started = "", False
        else:
            word += ch
    if started or word:
        words.append(word)
    out = []
    for w in words:
        assert "%" not in w.replace("%%", ""), f"unescaped specifier in {w!r}"
        assert "$" not in w.replace("$$", ""), f"unescaped variable in {w!r}"
        out.append(w.replace("%%", "%").replace("$$", "$"))
    return out


@pytest.mark.parametrize(
    "spool_path",
    ["/home/pi/100%h/spool", "/home/pi/$HOME/spool", "/home/pi/it's spool", "/home/pi/${X}%%"],
)
def test_the_unit_keeps_the_spool_path_exactly(spool_path, tmp_path, figures):
    from edgeprune.fleet.systemd import render_unit, unit_template

    unit = render_unit(unit_template(), sys.executable, spool_path)
    line = next(x for x in unit.splitlines() if x.startswith("ExecStart="))
    words = _systemd_words(line[len("ExecStart=") :])
    assert words == [sys.executable, "-m", "device_agents", "serve", "--spool", spool_path]
    analyze = shutil.which("systemd-analyze")
    if analyze:  # and systemd itself accepts the escaped line
        path = tmp_path / "edgeprune-agent.service"
        path.write_text(unit)
        verify = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stderr
    figures("systemd unit quoting", injected=1, survived=1)


# ----------------------------------------------------------------------------- over real SSH


@pytest.mark.skipif(not sshd_available(), reason="OpenSSH server not installed")
def test_deploy_resends_a_corrupt_copy_and_clears_a_stale_upload(
    ready_fleet, tiny_tflite, tmp_path, figures
):
    from edgeprune.fleet import deploy, load_inventory, load_model

    # the board runs this checkout's agent (the venv's own copy may be another checkout's)
    board = DeviceSpec(name="dev1", tags=["sshd"], env={"PYTHONPATH": str(REPO)})
    fleet = ready_fleet(devices=[board])
    spool = fleet["dev1"].spool
    device = load_inventory(fleet.inventory_path).devices["dev1"]
    flaggy = tmp_path / "--help.tflite"  # a model file named like a flag
    shutil.copyfile(tiny_tflite, flaggy)
    model = load_model(flaggy)

    def statuses() -> list[str]:
        outcome = deploy([device], [model])["dev1"]
        assert outcome.ok, outcome.message
        return [f.status for f in outcome.value]

    assert statuses() == ["sent"]
    assert statuses() == ["present"]
    stored = spool / "models" / f"{model.sha256}.tflite"
    data = bytearray(stored.read_bytes())
    data[-8:] = b"\0" * 8 if data[-8:] != b"\0" * 8 else b"\1" * 8
    stored.write_bytes(bytes(data))  # corrupted on the board, same size
    stale = spool / "incoming" / f"{model.sha256}.dead.part"
    stale.write_bytes(b"half an upload")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    assert statuses() == ["sent"]
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == model.sha256
    assert not stale.exists()
    figures("presence proves content", injected=1, survived=1)
    figures("stale uploads", injected=1, cleaned=1)
