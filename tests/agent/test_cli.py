"""`edgeprune-agent` commands: the contract's JSON, exit codes and one-line errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device_agents.protocol import Result

from .conftest import REPO, agent_env, run_agent

DOCTOR_KEYS = {
    "agent_version",
    "python",
    "platform",
    "runtime",
    "runtimes_available",
    "sparse_path",
    "device",
    "spool",
    "daemon",
    "problems",
}


def test_doctor_json(agent, spool):
    outcome = agent("doctor", "--spool", spool, "--json")
    assert outcome.code == 0, outcome.err
    report = outcome.json
    assert set(report) >= DOCTOR_KEYS
    assert report["runtime"]["name"] == "ai_edge_litert"
    assert report["runtimes_available"][0] == "ai_edge_litert"
    assert set(report["sparse_path"]) >= {"capable", "reason"}
    assert {"path", "free_bytes", "writable", "queued", "running", "results"} <= set(
        report["spool"]
    )
    assert report["daemon"] == {"running": False, "pid": None}
    assert not spool.exists()  # doctor looks, it does not create
    human = agent("doctor", "--spool", spool)
    assert "runtime    ai_edge_litert" in human.out


def test_agent_imports_neither_edgeprune_nor_tensorflow(spool):
    """Every agent module, and a doctor run, in a fresh interpreter."""
    code = f"""
import pkgutil, importlib, sys
import device_agents
for mod in pkgutil.walk_packages(device_agents.__path__, 'device_agents.'):
    if mod.name != 'device_agents.__main__':
        importlib.import_module(mod.name)
from device_agents.cli import run
rc = run(['doctor', '--spool', {str(spool)!r}, '--json'])
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('edgeprune', 'tensorflow', 'keras'))
assert not bad, bad
assert 'ai_edge_litert.interpreter' not in sys.modules, 'the agent process imported the runtime'
sys.exit(rc)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=agent_env(), cwd="/"
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["agent_version"]


def test_module_and_console_script_run(spool):
    assert run_agent("--help").code == 0
    script = Path(sys.executable).parent / "edgeprune-agent"
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("edgeprune-agent ")


def test_local_loop_submit_serve_wait_ack(agent, spool, agent_models, tmp_path):
    submitted = agent(
        "submit", agent_models.dense, "--spool", spool, "--runs", "3", "--label", "tiny"
    )
    assert submitted.code == 0, submitted.err
    job_id = submitted.out.strip().splitlines()[-1]  # the id is the last line
    assert agent("result", job_id, "--spool", spool, "--json").code == 1  # not yet
    status = agent("status", "--spool", spool, "--json").json
    assert status["queued"] == [job_id] and status["running"] == [] and status["results"] == []
    assert agent("serve", "--once", "--spool", spool).code == 0
    waited = agent("wait", job_id, "--spool", spool, "--json", "--timeout", "5")
    assert waited.code == 0, waited.err
    result = Result.from_json(waited.out)
    assert result.job_id == job_id and result.status == "ok" and result.label == "tiny"
    assert agent("result", job_id, "--spool", spool).out.startswith(f"job {job_id}")
    assert agent("ack", job_id, "--spool", spool, "--json").json == {"acked": job_id}
    assert agent("status", "--spool", spool, "--json").json["results"] == []


def test_host_style_upload_admit_submit_by_hash(agent, spool, agent_models, tmp_path):
    """What the host does over SSH: upload into incoming/, admit, submit --sha256."""
    assert agent("status", "--spool", spool).code == 0  # creates nothing, fails nothing
    agent("doctor", "--spool", spool)
    from device_agents.spool import Spool

    Spool(str(spool)).ensure()
    data = agent_models.dense.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    upload = spool / "incoming" / f"{digest}.abc.part"
    upload.write_bytes(data)
    admitted = agent("admit", upload, "--sha256", digest, "--spool", spool, "--json")
    assert admitted.code == 0 and admitted.json["already_present"] is False
    np.save(tmp_path / "x.npy", np.zeros((2, 32, 32, 3), np.float32))
    inputs = (tmp_path / "x.npy").read_bytes()
    inputs_sha = hashlib.sha256(inputs).hexdigest()
    (spool / "incoming" / "in.part").write_bytes(inputs)
    assert (
        agent(
            "admit",
            spool / "incoming/in.part",
            "--sha256",
            inputs_sha,
            "--kind",
            "inputs",
            "--spool",
            spool,
        ).code
        == 0
    )
    has = agent("has", digest, "f" * 64, f"{inputs_sha}.npy", "--spool", spool, "--json").json
    assert has == {"present": [digest, f"{inputs_sha}.npy"], "missing": ["f" * 64]}
    submitted = agent(
        "submit",
        "--sha256",
        digest,
        "--inputs",
        f"{inputs_sha}.npy",
        "--id",
        "host-1",
        "--spool",
        spool,
        "--json",
    )
    assert submitted.json == {"job_id": "host-1"}
    assert agent("serve", "--once", "--spool", spool).code == 0
    result = Result.from_json(agent("result", "host-1", "--spool", spool, "--json").out)
    assert result.status == "ok" and result.measurements[0].outputs["samples"] == 2
    assert result.options.inputs == f"{inputs_sha}.npy"


def test_run_without_the_daemon(agent, spool, agent_models, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 32, 32, 3), np.float32))
    outcome = agent(
        "run",
        agent_models.dense,
        "--inputs",
        tmp_path / "x.npy",
        "--runs",
        "2",
        "--threads",
        "1,2",
        "--spool",
        spool,
        "--json",
    )
    assert outcome.code == 0, outcome.err
    result = Result.from_json(outcome.out)
    assert [m.threads for m in result.measurements] == [1, 2]
    assert result.measurements[0].outputs["samples"] == 3
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"nope")
    failed = agent("run", broken, "--spool", spool, "--json")
    assert failed.code == 1 and Result.from_json(failed.out).error_kind == "bad_model"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit"], "either a MODEL file or --sha256"),
        (["submit", "MODEL", "--sha256", "a" * 64], "either a MODEL file or --sha256"),
        (["submit", "MODEL", "--threads", "0"], "threads must be whole numbers from 1"),
        (["submit", "MODEL", "--threads", "-4"], "threads must be whole numbers from 1"),
        (["submit", "MODEL", "--threads", "one"], "not a list of whole numbers"),
        (["submit", "MODEL", "--runs", "0"], "runs must be from 1"),
        (["submit", "MODEL", "--warmup", "-1"], "warmup must be from 0"),
        (["submit", "MODEL", "--cpus", "-1"], "cpus must be CPU numbers"),
        (["submit", "MODEL", "--timeout", "0"], "--timeout must be > 0"),
        (["submit", "MODEL", "--min-seconds", "nan"], "--min-seconds must be > 0"),
        (["submit", "MODEL", "--runtime", "onnx"], "invalid choice"),
        (["submit", "MODEL", "--id", "../../etc/passwd"], "--id '../../etc/passwd' is not allowed"),
        (["submit", "MODEL", "--label", "x" * 300], "label must be a string of at most 200"),
        (["submit", "MODEL", "--inputs", "/no/such.npy"], "does not exist"),
        (["submit", "--sha256", "a" * 64], "is not in"),
        (["submit", "--sha256", "../../etc/passwd"], "not a sha256"),
        (["submit", "/no/such/model.tflite"], "does not exist"),
        (["run", "/no/such/model.tflite"], "does not exist"),
        (["run", "MODEL", "--inputs", "MODEL"], "neither a .npy nor a .npz"),
        (["has", "xyz"], "is not a sha256"),
        (["admit", "/etc/passwd", "--sha256", "a" * 64], "is not inside"),
        (["admit", "x", "--sha256", "bad"], "not a sha256"),
        (["wait", "../x"], "is not allowed"),
        (["wait", "j1", "--timeout", "-1"], "--timeout must be >= 0"),
        (["serve", "--poll", "0"], "--poll must be > 0"),
        (["frobnicate"], "invalid choice"),
        ([], "give a command"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(agent, spool, agent_models, args, message):
    args = [str(agent_models.dense) if a == "MODEL" else a for a in args]
    outcome = agent(*args, "--spool", spool, "--json")
    assert outcome.code == 2, (outcome.code, outcome.err)
    assert outcome.err.startswith("error: ") and outcome.err.count("\n") == 1
    assert message in outcome.err and "Traceback" not in outcome.err
    assert message in json.loads(outcome.out)["error"]
    assert not (spool / "jobs" / "queued").exists() or os.listdir(spool / "jobs" / "queued") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["result", "nojob"], "no result for job nojob yet"),
        (["wait", "nojob", "--timeout", "1"], "not known"),
        (["ack", "nojob"], "no result for job nojob"),
    ],
)
def test_not_there_is_exit_1(agent, spool, args, message):
    outcome = agent(*args, "--spool", spool, "--json")
    assert outcome.code == 1 and message in outcome.err and json.loads(outcome.out)["error"]


def test_wait_gives_up_at_its_timeout(agent, spool, agent_models):
    job_id = agent("submit", agent_models.dense, "--spool", spool).out.splitlines()[-1]
    outcome = agent("wait", job_id, "--timeout", "0.3", "--spool", spool)
    assert outcome.code == 1
    assert "no daemon is serving" in outcome.err and "after 0.3 s (it is queued)" in outcome.err


def test_errors_as_a_real_process(spool):
    outcome = run_agent("submit", "--threads", "0", "x.tflite", "--spool", spool, "--json")
    assert outcome.code == 2 and outcome.err.count("\n") == 1 and "Traceback" not in outcome.err
    assert json.loads(outcome.out) == {"error": outcome.err.strip()[len("error: ") :]}
    readonly = run_agent("serve", "--once", "--spool", "/proc/edgeprune-spool")
    assert readonly.code == 1 and "cannot create the spool" in readonly.err
    assert str(REPO)  # the CLI ran from the repository, as the host's local device does
