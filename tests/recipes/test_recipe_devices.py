"""A recipe measured on several devices: one that fails does not stop the others, and a
re-run measures only what is missing. The board is a real sshd on 127.0.0.1 running the
real agent; it "fails" by being switched off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.sshd import DeviceSpec, sshd_available

pytestmark = pytest.mark.skipif(not sshd_available(), reason="OpenSSH server not installed")


def test_a_failing_device_lets_the_others_finish_and_a_rerun_resumes(
    sshd_fleet, run_cli, write_recipe, tmp_path: Path
):
    from edgeprune.fleet import load_inventory
    from edgeprune.fleet.install import install_agent
    from edgeprune.fleet.session import DeviceSession

    fleet = sshd_fleet(
        devices=[DeviceSpec("board", tags=["boards"], extra={"retries": 0, "connect_timeout": 3})]
    )
    (board,) = load_inventory(fleet.inventory_path).select(["board"])
    with DeviceSession.open(board) as session:
        install_agent(session, runtime="system", start_service=False)
    fleet["board"].stop()

    recipe = write_recipe(
        """
        name: two-devices
        model: {demo: true, width: 8}   # untrained: this test is about devices
        data: digits
        steps: {}
        devices: [local, boards]   # a name and a tag
        bench: {runs: 3, warmup: 0}
        """
    )
    args = ("--workdir", tmp_path / "work", "--db", tmp_path / "r.db")
    args += ("--inventory", fleet.inventory_path, "--json")

    first = run_cli("run", recipe, *args)
    assert first.code == 3, first.err
    result = json.loads(first.out)
    assert result["grid"]["fp32"] == {
        "base": "done",
        "convert": "done",
        "bench@local": "done",
        "bench@board": "failed",
    }
    assert list(result["device_errors"]) == ["board"]
    assert "board" in result["device_errors"]["board"]
    local, on_board = result["report"]["devices"]
    assert local["recommendation"]["choice"]["variant"] == "fp32"
    assert on_board["rows"] == [] and on_board["missing"] == {"fp32": "no measurement"}
    assert "re-run the same command" in first.err

    fleet["board"].start()
    second = run_cli("run", recipe, *args)
    assert second.code == 0, second.err
    result = json.loads(second.out)
    assert result["stages_built"] == 0 and result["measurements_made"] == 1
    assert result["grid"]["fp32"] == {
        "base": "cached",
        "convert": "cached",
        "bench@local": "cached",
        "bench@board": "done",
    }
    assert [d["recommendation"]["choice"]["variant"] for d in result["report"]["devices"]] == [
        "fp32",
        "fp32",
    ]
    assert (fleet["board"].spool / "models").is_dir()
