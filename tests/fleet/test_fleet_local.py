"""The built-in `local` device: the same deploy/bench code, the agent as a subprocess here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from device_agents.integrity import sha256_file


def host_top1(model: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    predictions = []
    for row in x:
        interpreter.set_tensor(inp["index"], row.reshape(inp["shape"]).astype(np.float32))
        interpreter.invoke()
        predictions.append(int(interpreter.get_tensor(out["index"]).argmax()))
    return np.array(predictions)


def test_local_deploy_bench_with_inputs_gives_on_device_accuracy(
    run_cli, tiny_tflite, tmp_path: Path
):
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, size=(24, 4)).astype(np.float32)
    predicted = host_top1(tiny_tflite, x)
    y = predicted.copy()
    y[:6] = (y[:6] + 1) % 3  # a quarter of the labels disagree with the model: accuracy 0.75
    inputs = tmp_path / "samples.npz"
    np.savez(inputs, x=x, y=y)

    outcome = run_cli("deploy", tiny_tflite, "--device", "local", "--json")
    assert outcome.code == 0, outcome.err
    spool = tmp_path / "xdg-data" / "edgeprune" / "local-spool"
    assert (spool / "models" / f"{sha256_file(tiny_tflite)}.tflite").is_file()

    db = tmp_path / "r.db"
    outcome = run_cli(
        "bench",
        tiny_tflite,
        "--device",
        "local",
        "--runs",
        "3",
        "--warmup",
        "0",
        "--inputs",
        inputs,
        "--db",
        db,
        "--json",
    )
    assert outcome.code == 0, outcome.err
    (row,) = json.loads(outcome.out)["rows"]
    assert row["accuracy_source"] == "device"
    assert row["accuracy"] == np.mean(predicted == y) == 0.75
    # the inputs were admitted into the spool by hash, once
    assert (spool / "inputs" / f"{sha256_file(inputs)}.npz").is_file()

    outcome = run_cli("results", "report", "--db", db)
    assert outcome.code == 0 and "tiny" in outcome.out and "75.00*" in outcome.out, outcome.out


def test_bench_rejects_bad_options_before_touching_devices(run_cli, tiny_tflite, tmp_path: Path):
    for args, message in (
        (["--threads", "0"], "--threads: 0 is below the minimum 1"),
        (["--threads", "a,b"], "is not a whole number"),
        (["--device", "nope"], "unknown device 'nope'"),
        (["--tag", "gpu"], "no device has tag 'gpu'"),
        (["--inputs", str(tmp_path / "absent.npz")], "does not exist"),
        (["--inputs", str(tiny_tflite)], "must be a .npz or .npy"),
    ):
        device = [] if "--device" in args or "--tag" in args else ["--device", "local"]
        outcome = run_cli("bench", tiny_tflite, *device, *args, "--db", tmp_path / "r.db")
        assert outcome.code == 2 and message in outcome.err, (args, outcome.err)
    assert not (tmp_path / "xdg-data" / "edgeprune" / "local-spool").exists()
    assert not (tmp_path / "r.db").exists()


def test_bench_uses_a_running_daemon(run_cli, tiny_tflite, tmp_path: Path):
    import subprocess
    import sys
    import time

    spool = tmp_path / "xdg-data" / "edgeprune" / "local-spool"
    spool.mkdir(parents=True)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "device_agents", "serve", "--spool", str(spool), "--poll", "0.2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = run_cli("devices", "check", "local", "--json")
            if json.loads(status.out)["devices"][0].get("daemon_running"):
                break
            time.sleep(0.3)
        else:
            raise AssertionError("the agent daemon did not start")
        outcome = run_cli(
            "bench",
            tiny_tflite,
            "--device",
            "local",
            "--runs",
            "3",
            "--db",
            tmp_path / "r.db",
            "--json",
        )
        assert outcome.code == 0, outcome.err
        result = json.loads(outcome.out)
        assert result["devices"][0]["daemon_running"] is True
        assert result["rows"][0]["status"] == "ok"
        assert daemon.poll() is None  # still serving: bench did not run its own serve --once
    finally:
        daemon.terminate()
        daemon.wait(30)


def test_a_model_the_runtime_rejects_is_stored_as_an_error_and_fails_the_command(
    run_cli, tiny_tflite, tmp_path: Path
):
    broken = tmp_path / "broken.tflite"
    data = bytearray(tiny_tflite.read_bytes())
    data[64:] = bytes(len(data) - 64)  # keeps the TFL3 identifier, loses the model
    broken.write_bytes(bytes(data))
    db = tmp_path / "r.db"
    outcome = run_cli(
        "bench", tiny_tflite, broken, "--device", "local", "--runs", "2", "--db", db, "--json"
    )
    assert outcome.code == 3
    assert "1 of 2 measurement(s) failed" in outcome.err and "broken.tflite on local" in outcome.err
    rows = {r["model"]: r for r in json.loads(outcome.out)["rows"]}
    assert rows[tiny_tflite.name]["status"] == "ok"
    assert rows["broken.tflite"]["status"] == "error" and rows["broken.tflite"]["error"]
    spool = tmp_path / "xdg-data" / "edgeprune" / "local-spool"
    assert [p for p in (spool / "results").glob("*.json")] == []  # both results acknowledged


def test_bench_without_a_device_or_inventory_measures_on_local(
    run_cli, tiny_tflite, tmp_path: Path
):
    db = tmp_path / "r.db"
    outcome = run_cli("bench", tiny_tflite, "--runs", "2", "--warmup", "0", "--db", db, "--json")
    assert outcome.code == 0, outcome.err
    note = "no --device given and no inventory: measuring on local"
    assert [line for line in outcome.err.splitlines() if "no --device" in line] == [note]
    (row,) = json.loads(outcome.out)["rows"]
    assert row["device"] == "local" and row["status"] == "ok"


def test_bench_with_an_inventory_still_asks_which_devices(run_cli, tiny_tflite, tmp_path: Path):
    import yaml

    inventory = tmp_path / "xdg-config" / "edgeprune" / "devices.yaml"
    inventory.parent.mkdir(parents=True)
    inventory.write_text(yaml.safe_dump({"devices": [{"name": "pi4", "host": "10.0.0.4"}]}))
    outcome = run_cli("bench", tiny_tflite, "--db", tmp_path / "r.db")
    assert outcome.code == 2
    assert "choose devices: give --device NAME, --tag TAG or --all" in outcome.err
    assert "measuring on local" not in outcome.err and not (tmp_path / "r.db").exists()
