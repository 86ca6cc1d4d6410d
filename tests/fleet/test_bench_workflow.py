"""The library behind `bench`, `bench --sparse-ab` and `agent install`, called from Python."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from edgeprune.errors import DeviceError, UserError
from edgeprune.fleet.options import BenchOptions
from edgeprune.results.store import ResultsStore
from edgeprune.workflows.bench import bench_models

QUICK = BenchOptions(runs=2, warmup=0)


def broken_copy(model: Path, folder: Path) -> Path:
    broken = folder / "broken.tflite"
    data = bytearray(model.read_bytes())
    data[64:] = bytes(len(data) - 64)  # keeps the TFL3 identifier, loses the model
    broken.write_bytes(bytes(data))
    return broken


def test_bench_models_in_memory_on_local_by_default(tiny_tflite, tiny_tflite_b, tmp_path: Path):
    steps: list[tuple[str, str]] = []
    run = bench_models(
        [tiny_tflite, tiny_tflite_b],
        options=QUICK,
        store=None,
        progress=lambda device, what, done, total: steps.append((device, what)),
    )
    assert run.db is None and not run.store.persistent
    assert run.ok and run.failures == [] and run.failed_devices == []
    run.raise_for_failures()
    assert [r["device"] for r in run.rows] == ["local", "local"]
    assert [r["baseline"] for r in run.rows] == [True, False]
    assert all(r["status"] == "ok" and r["p50_ms"] > 0 for r in run.rows)
    assert ("local", "stored") in steps
    document = json.loads(json.dumps(run.to_dict()))
    assert document["db"] is None and document["run_id"] == run.run_id
    assert document["devices"][0]["device"] == "local" and document["devices"][0]["ok"]
    assert not (tmp_path / "xdg-data" / "edgeprune" / "results.db").exists()  # nothing written


def test_bench_models_default_and_given_stores(tiny_tflite, tmp_path: Path):
    run = bench_models([tiny_tflite], ["local"], QUICK)
    default = tmp_path / "xdg-data" / "edgeprune" / "results.db"
    assert run.db == default and default.is_file()
    stored = ResultsStore(default, create=False).measurements([run.run_id])
    assert [r["model_name"] for r in stored] == [tiny_tflite.name]

    given = tmp_path / "given.db"
    again = bench_models([tiny_tflite], options=QUICK, store=given)
    assert again.db == given and again.run_id == 1
    info = ResultsStore(given).run_info(1)
    assert (info["command"], info["kind"], info["status"], info["error"]) == (
        "bench",
        "bench",
        "ok",
        None,
    )


def test_what_counts_as_failure_is_decided_by_the_run(tiny_tflite, tmp_path: Path):
    broken = broken_copy(tiny_tflite, tmp_path)
    run = bench_models([tiny_tflite, broken], options=QUICK, store=None)
    assert not run.ok and run.failed_devices == []
    assert [r["model"] for r in run.failures] == ["broken.tflite"]
    with pytest.raises(
        DeviceError, match=r"1 of 2 measurement\(s\) failed.*broken.tflite on local"
    ):
        run.raise_for_failures()


def test_bench_models_checks_its_input_before_any_device(tmp_path: Path):
    with pytest.raises(UserError, match="give at least one model"):
        bench_models([], store=None)
    with pytest.raises(UserError, match="does not exist"):
        bench_models([tmp_path / "absent.tflite"], store=None)
    assert not (tmp_path / "xdg-data" / "edgeprune" / "local-spool").exists()


def test_the_in_memory_store_reads_like_a_file_store(tiny_tflite):
    store = ResultsStore.in_memory()
    run = bench_models([tiny_tflite], options=QUICK, store=store)
    assert run.store is store
    assert store.runs()[0]["id"] == run.run_id and store.resolve_run("latest") == run.run_id
    (row,) = store.measurements([run.run_id], with_json=True)
    assert row["result"]["status"] == "ok" and row["device"] == "local"


def test_install_agents_checks_the_runtime_then_fans_out(tmp_path: Path):
    from edgeprune.fleet.install import install_agents
    from edgeprune.fleet.inventory import local_device

    with pytest.raises(UserError) as caught:
        install_agents([local_device()], runtime="pip")
    assert caught.value.in_flags().startswith("--runtime 'pip' is unknown")
    group = install_agents([local_device()], runtime="system")
    (outcome,) = list(group)
    assert outcome.ok and outcome.value.runtime_source == "host"
    assert outcome.value.agent_version


def test_sparse_ab_module_moved_and_the_old_name_warns():
    from edgeprune.workflows import sparse_ab

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from edgeprune.xnnpack import sparse_ab as old

        assert old.make_pairs is sparse_ab.make_pairs
    assert any("use edgeprune.workflows.sparse_ab" in str(w.message) for w in caught)


def test_results_store_does_not_need_the_fleet():
    import subprocess
    import sys

    code = (
        "import sys; import edgeprune.results.store, edgeprune.results.tables; "
        "bad = [m for m in sys.modules if m.startswith(('paramiko', 'edgeprune.fleet'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_devices_by_name_or_object_each_once():
    from edgeprune.fleet.inventory import local_device
    from edgeprune.workflows.bench import resolve_devices

    assert [d.name for d in resolve_devices(None)] == ["local"]
    assert [d.name for d in resolve_devices(["local", local_device(), "local"])] == ["local"]
    with pytest.raises(UserError, match="unknown device 'pi9'"):
        resolve_devices(["local,pi9"])


def test_a_device_that_fails_fails_alone_and_fails_the_run(tiny_tflite, tmp_path: Path):
    import yaml
    from support.sshd import free_port

    from edgeprune.fleet.inventory import load_inventory

    inventory = tmp_path / "devices.yaml"
    dead = {"name": "dead", "host": "127.0.0.1", "port": free_port(), "retries": 0}
    inventory.write_text(yaml.safe_dump({"devices": [dead]}))
    devices = load_inventory(str(inventory)).select(["dead", "local"])
    run = bench_models([tiny_tflite], devices, QUICK, store=None)
    assert run.failed_devices == ["dead"] and run.failures == [] and not run.ok
    assert [r["device"] for r in run.rows] == ["local"]
    by_device = {d["device"]: d for d in run.to_dict()["devices"]}
    assert by_device["local"]["ok"] and not by_device["dead"]["ok"] and by_device["dead"]["error"]
    with pytest.raises(DeviceError, match=r"bench failed on 1 of 2 device\(s\): dead"):
        run.raise_for_failures()
