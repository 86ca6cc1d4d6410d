"""Path traversal and shell metacharacters in every name that reaches a device.

Names that become paths on the board (job ids, model and input names, upload files) are
refused by the agent unless they stay inside the spool; names the host sends (spool and
interpreter paths, model file names used as labels, inputs files, every argv word) are
quoted for the remote shell, so nothing in them ever runs. Checked with a canary file
outside the spool (never touched) and a marker file that a shell injection would create.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.sshd import sshd_available

from device_agents.spool import Spool
from edgeprune.fleet import load_inventory, open_transport

from .harness import edgeprune, listing

needs_sshd = pytest.mark.skipif(not sshd_available(), reason="OpenSSH server not installed")

TRAVERSALS = [
    "../victim",
    "../../outside/victim",
    "..",
    ".",
    "/etc/passwd",
    "a/../../victim",
    "incoming/../../outside/victim",
    "-rf",
    "--spool",
    "x\nname",
    "x;touch INJECTED",
    "$(touch INJECTED)",
    "`touch INJECTED`",
    "a b",
    "~root",
    "\\..\\victim",
    "x" * 200,
    "",
]


def agent(*args: object) -> tuple[int, str, str]:
    """The agent CLI in-process (each call still does real file work in the spool)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from device_agents.cli import run

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_agent_refuses_names_that_leave_the_spool(tmp_path, monkeypatch, figures):
    monkeypatch.chdir(tmp_path)
    spool = tmp_path / "box" / "spool"
    Spool(str(spool)).ensure()
    outside = tmp_path / "box" / "outside"
    outside.mkdir()
    victim = outside / "victim.json"
    victim.write_text('{"schema": 1}')  # looks like a result, a job and an upload at once
    (spool / "victim.json").write_text("{}")  # one level up from results/ and incoming/
    sha = hashlib.sha256(victim.read_bytes()).hexdigest()
    before = snapshot(tmp_path / "box")
    tried = 0
    for name in TRAVERSALS:
        for args in (
            ["result", name],
            ["ack", name],
            ["wait", name, "--timeout", "0"],
            ["has", name],
            ["admit", name, "--sha256", sha],
            ["admit", f"{spool}/incoming/{name}", "--sha256", sha],
            ["admit", name + ".json", "--sha256", sha, "--kind", "inputs"],
            ["submit", "--sha256", sha, "--id", name],
            ["submit", "--sha256", name],
            ["submit", "--sha256", sha, "--inputs", name],
        ):
            code, _, err = agent(*args, "--spool", spool, "--json")
            tried += 1
            assert code in (1, 2), (args, code, err)
            assert err.count("error:") == 1 and "Traceback" not in err, (args, err)
    assert snapshot(tmp_path / "box") == before  # not one byte moved, made or removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box"]  # no INJECTED, no strays
    figures("names", agent_names_refused=tried)


@given(job_id=st.text(max_size=120))
@example(job_id="abc\n")
@example(job_id="a" * 64 + "\n")
@settings(max_examples=300, deadline=None, database=None)
def test_any_job_id_the_protocol_accepts_is_one_plain_file_name(job_id):
    from device_agents.protocol import (
        SHA256_PATTERN,
        ProtocolError,
        validate_job_id,
        validate_sha256,
    )

    if SHA256_PATTERN.match(job_id):
        assert validate_sha256(job_id) == job_id and len(job_id) == 64
    try:
        validate_job_id(job_id)
    except ProtocolError:
        return
    assert "/" not in job_id and "\\" not in job_id and not job_id.startswith((".", "-"))
    assert job_id.isascii() and job_id.strip() == job_id and len(job_id) <= 100


@needs_sshd
def test_every_argv_word_reaches_the_device_exactly_as_sent(sshd_fleet, tmp_path, figures):
    """Any text (but NUL) as argv and env over a real sshd and its login shell: no word is
    split, globbed, expanded or run."""
    fleet = sshd_fleet(1)
    marker = tmp_path / "INJECTED"
    device = load_inventory(fleet.inventory_path).devices["dev1"]
    words = st.text(
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30
    )
    nasty = st.sampled_from(
        [f"$(touch {marker})", f"`touch {marker}`", f"; touch {marker}", "*", "~", "'", '"',
         "\\", "\n", "-n", "--", "a b", "$HOME", "!!", "{a,b}", "&& id", "| id", f"> {marker}"]
    )  # fmt: skip
    examples = 0
    with open_transport(device) as transport:

        @settings(
            max_examples=120,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(argv=st.lists(words | nasty, min_size=1, max_size=6), value=words | nasty)
        def round_trip(argv, value):
            nonlocal examples
            examples += 1
            result = transport.run(
                ["sh", "-c", 'printf "%s\\0" "$@"; printf "%s" "$EP_VALUE" >&2', "sh", *argv],
                timeout=60,
                env={"EP_VALUE": value},
            )
            assert result.ok, result.stderr
            assert result.stdout.split("\x00")[:-1] == argv
            assert result.stderr == value

        round_trip()
    assert not marker.exists()
    figures("names", shell_argv_examples=examples)


@needs_sshd
def test_metacharacters_in_spool_python_model_and_inputs_names_run_nothing(
    sshd_fleet, tiny_tflite, tmp_path, figures
):
    """A whole deploy + bench where every host-chosen name is hostile."""
    fleet = sshd_fleet(1)
    # an injected command would run in the login's home (the session's working directory)
    marker = Path.home() / f"EP-INJECTED-{secrets.token_hex(4)}"
    inject = f"$(touch {marker.name});`touch {marker.name}`"
    base = fleet["dev1"].root / f"sp ool {inject} 'q\" x"
    spool = base / "spool"
    bin_dir = spool / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    spool.chmod(0o700)
    wrapper_dir = fleet["dev1"].root / f"py thon;{inject}"
    wrapper_dir.mkdir()
    python = wrapper_dir / "python3"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    (bin_dir / "python").symlink_to(python)
    fleet["dev1"].spec.extra.update({"spool": str(spool), "python": str(python)})
    fleet.write_inventory()
    model = tmp_path / f"m\u00e9 {inject} ;'\".tflite"
    shutil.copy(tiny_tflite, model)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 4)).astype(np.float32)
    inputs = tmp_path / f"in {inject}.npz"
    np.savez(inputs, x=x, y=np.zeros(4, dtype=np.int64))
    db = tmp_path / "r.db"
    inv = fleet.inventory_path
    run = edgeprune(
        "bench", model, "--device", "dev1", "--runs", "2", "--inputs", inputs, "--db", db,
        "--inventory", inv, "--json",
    )  # fmt: skip
    assert run.code == 0, run.err
    (row,) = run.json["rows"]
    assert row["model"] == model.name and row["status"] == "ok"
    with sqlite3.connect(db) as conn:
        (result_json,) = conn.execute("SELECT result_json FROM measurements").fetchone()
    assert json.loads(result_json)["label"] == model.name  # the label arrived as sent
    assert listing(spool / "models", ".tflite") == [f"{row['model_sha256']}.tflite"]
    assert not marker.exists(), "a name reached the remote shell unquoted"
    figures("names", hostile_names_end_to_end=4)
