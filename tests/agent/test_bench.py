"""bench.py with the real runtime: each thread count in its own child process, every failure
an error result, and outputs that match the runtime run directly."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from device_agents.bench import BenchInterrupted, benchmark_model, run_child
from device_agents.integrity import sha256_file
from device_agents.protocol import BenchOptions, LatencySummary, Result

from .conftest import bench_children


def bench(path, job_id="t", inputs_path=None, **options):
    return benchmark_model(
        str(path),
        BenchOptions(**options),
        job_id=job_id,
        model_sha256=sha256_file(str(path)),
        inputs_path=inputs_path,
    )


def test_a_full_measurement(agent_models):
    import ai_edge_litert

    result = bench(agent_models.sparse, threads=[1, 2], runs=7, warmup=2, cpus=[0])
    assert result.status == "ok", result.error
    assert result.runtime == {"name": "ai_edge_litert", "version": ai_edge_litert.__version__}
    assert [m.threads for m in result.measurements] == [1, 2]
    for m in result.measurements:
        assert m.status == "ok" and len(m.latencies_ms) == 7
        assert m.summary == LatencySummary.of(m.latencies_ms)
        assert 0 < m.summary.min <= m.summary.p50 <= m.summary.p90 <= m.summary.p99
        assert m.load_ms > 0 and m.init_ms > 0 and m.first_invoke_ms > 0 and m.import_ms > 0
        assert m.peak_rss_kb >= m.rss_before_model_kb > 10_000
        assert m.cpu_affinity == [0]
        assert m.outputs["source"] == "random" and m.outputs["digest"].startswith("sha256:")
    # same model, same seed, same kernels: the outputs agree across processes
    assert result.measurements[0].outputs == result.measurements[1].outputs
    assert result.sparse_path["model_is_sparse"] is True
    codes = {w.code for w in result.warnings}
    assert "threads_exceed_cpus" in codes  # 2 threads pinned to 1 CPU
    if os.uname().machine == "x86_64":
        assert result.sparse_path["capable"] is False and "sparse_path_unavailable" in codes
    assert result.device["cores"] and "before" in result.thermal and "after" in result.thermal
    again = Result.from_json(result.to_json())
    assert again.measurements[1].latencies_ms == result.measurements[1].latencies_ms


def test_random_inputs_follow_the_seed(agent_models):
    first = bench(agent_models.dense, runs=2, warmup=0, seed=1).measurements[0].outputs
    same = bench(agent_models.dense, runs=2, warmup=0, seed=1).measurements[0].outputs
    other = bench(agent_models.dense, runs=2, warmup=0, seed=2).measurements[0].outputs
    assert first["digest"] == same["digest"] != other["digest"]


def test_shipped_inputs_give_top1_and_digest_equal_to_the_runtime(agent_models, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    samples = np.random.default_rng(3).uniform(-1, 1, (6, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", samples)
    result = bench(agent_models.dense, runs=3, inputs_path=str(tmp_path / "x.npy"))
    assert result.status == "ok", result.error
    outputs = result.measurements[0].outputs
    interpreter = Interpreter(model_path=str(agent_models.dense), num_threads=1)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    out_index = interpreter.get_output_details()[0]["index"]
    expected = []
    for sample in samples:
        interpreter.set_tensor(index, sample[None])
        interpreter.invoke()
        expected.append(interpreter.get_tensor(out_index).copy())
    assert outputs["samples"] == 6
    assert outputs["top1"] == [int(e.argmax()) for e in expected]
    import hashlib

    assert (
        outputs["digest"]
        == "sha256:" + hashlib.sha256(b"".join(e.tobytes() for e in expected)).hexdigest()
    )


def test_int8_and_two_input_models_and_no_xnnpack(agent_models, tmp_path):
    int8 = bench(agent_models.int8, runs=2, xnnpack=False)
    assert int8.status == "ok", int8.error
    assert int8.measurements[0].xnnpack is False
    arrays = {
        "serving_default_a:0": np.ones((3, 8), np.float32),
        "serving_default_b:0": np.ones((3, 4), np.float32),
    }
    np.savez(tmp_path / "ab.npz", **arrays)
    two = bench(agent_models.two_inputs, runs=2, inputs_path=str(tmp_path / "ab.npz"))
    assert two.status == "ok", two.error
    assert two.measurements[0].outputs["samples"] == 3


def test_min_seconds_and_delay(agent_models):
    timed = bench(agent_models.dense, runs=None, min_seconds=0.3, warmup=0)
    assert timed.status == "ok" and timed.finished_at - timed.started_at >= 0.3
    assert len(timed.measurements[0].latencies_ms) > 1
    spaced = bench(agent_models.dense, runs=3, warmup=0, delay_ms=60)
    assert len(spaced.measurements[0].latencies_ms) == 3
    assert spaced.finished_at - spaced.started_at >= 0.12


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a model at all, just some text", "lacks the 'TFL3'"),
        (b"", "only 0 bytes"),
    ],
)
def test_files_that_are_not_models_never_reach_the_runtime(tmp_path, content, message):
    path = tmp_path / "bad.tflite"
    path.write_bytes(content)
    result = bench(path, threads=[1, 2])
    assert result.status == "error" and result.error_kind == "bad_model"
    assert message in result.error and result.measurements == []


def test_truncated_model(agent_models, tmp_path):
    path = tmp_path / "cut.tflite"
    path.write_bytes(agent_models.dense.read_bytes()[:-500])
    result = bench(path)
    assert result.error_kind == "bad_model" and "truncated" in result.error


def test_inputs_of_the_wrong_shape_fail_the_job_once(agent_models, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 28, 28, 1), np.float32))
    result = bench(agent_models.dense, threads=[1, 2, 4], inputs_path=str(tmp_path / "x.npy"))
    assert result.status == "error" and result.error_kind == "bad_inputs"
    assert "(2, 28, 28, 1)" in result.error and len(result.measurements) == 1


def test_cpus_that_do_not_exist(agent_models):
    result = bench(agent_models.dense, cpus=[4000])
    assert result.error_kind == "cpus_unavailable" and "4000" in result.error


def test_a_hanging_benchmark_is_killed_at_its_timeout(agent_models):
    start = time.monotonic()
    result = bench(
        agent_models.dense, job_id="hang-1", threads=[1, 2], runs=1_000_000, timeout_s=1.5
    )
    assert time.monotonic() - start < 30
    assert result.status == "error" and result.error_kind == "timeout"
    assert "timed out after the job's 1.5 s" in result.error
    assert len(result.measurements) == 1  # the second thread count never starts
    assert bench_children("hang-1") == []


def test_a_crashing_runtime_fails_only_its_measurement(agent_models):
    """SIGSEGV delivered to the real child mid-run: the agent reports it and carries on."""
    outcome = {}

    def work():
        outcome["result"] = bench(
            agent_models.dense, job_id="crash-1", runs=None, min_seconds=60, timeout_s=120
        )

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + 60
    while not bench_children("crash-1") and time.monotonic() < deadline:
        time.sleep(0.05)
    (pid,) = bench_children("crash-1")
    time.sleep(0.5)  # let it get into the timed loop
    os.kill(pid, signal.SIGSEGV)
    thread.join(60)
    result = outcome["result"]
    assert result.status == "error" and result.error_kind == "crashed"
    assert "SIGSEGV" in result.error
    assert bench(agent_models.dense, runs=2).status == "ok"  # and the next job is fine


def test_a_stop_request_kills_the_child(agent_models):
    spec = {
        "model_path": str(agent_models.dense),
        "runtime": "ai_edge_litert",
        "threads": 1,
        "xnnpack": True,
        "warmup": 0,
        "runs": None,
        "min_seconds": 60,
        "delay_ms": 0,
        "cpus": None,
        "inputs_path": None,
        "seed": 0,
    }
    asked = time.monotonic() + 1.0
    with pytest.raises(BenchInterrupted):
        run_child(spec, 60, 60, "stop-1", lambda: None, lambda: time.monotonic() > asked)
    assert bench_children("stop-1") == []


@pytest.mark.slow
def test_tensorflow_lite_as_the_last_resort_runtime(agent_models):
    result = bench(agent_models.dense, runs=3, warmup=0, runtime="tensorflow", timeout_s=300)
    assert result.status == "ok", result.error
    assert result.runtime["name"] == "tensorflow"
