"""`bench --sparse-ab`: one set of weights stored dense and sparse, measured side by side on the
built-in `local` device (x86 here, where XNNPACK's sparse path is off and ~1.0 is expected)."""

from __future__ import annotations

import json
import platform

import numpy as np
import pytest

from edgeprune.tflite import read_model
from edgeprune.xnnpack import check_sparse_path
from edgeprune.xnnpack.dense_values import dense_values
from edgeprune.xnnpack.storage_twins import check_same_outputs, dense_twin, sparse_twin
from edgeprune.xnnpack.tflite_graph import constant_source
from xnnpack.models import prune_pointwise, tiny


@pytest.fixture(autouse=True)
def isolated_host_state(tmp_path, monkeypatch):
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.delenv("EDGEPRUNE_INVENTORY", raising=False)
    monkeypatch.delenv("EDGEPRUNE_RESULTS_DB", raising=False)


def weights(content: bytes) -> list[np.ndarray]:
    model = read_model(content)
    return [
        dense_values(model, constant_source(model, op.inputs[1]))
        for op in model.main.operators
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
    ]


def test_twins_hold_the_same_weights(tiny_tflite):
    sparse = tiny_tflite("base").read_bytes()
    dense = tiny_tflite("base", sparse=False).read_bytes()
    made_dense, made_sparse = dense_twin(sparse), sparse_twin(dense)
    assert read_model(made_dense).op_counts().get("DENSIFY", 0) == 0
    assert read_model(made_sparse).op_counts()["DENSIFY"] == 5  # the five 1x1 convs
    for a, b in zip(weights(dense), weights(made_dense), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(weights(dense), weights(made_sparse), strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(made_sparse) < 0.5 * len(dense) and len(made_dense) > 2 * len(sparse)
    check_same_outputs(made_dense, made_sparse, "twins")
    assert check_sparse_path(read_model(made_sparse)).eligible
    assert not check_sparse_path(read_model(made_dense)).eligible


def test_local_sparse_ab_of_a_keras_and_a_tflite_model(run_cli, tiny_tflite, tmp_path):
    keras_path = tmp_path / "pruned.keras"
    model = tiny("base", seed=1)
    prune_pointwise(model, 0.9)
    model.save(keras_path)
    db = tmp_path / "r.db"
    args = ["bench", keras_path, tiny_tflite("base"), "--sparse-ab", "--device", "local"]
    outcome = run_cli(*args, "--runs", "3", "--warmup", "0", "--threads", "1", "--db", db, "--json")
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    assert len(report["pairs"]) == 2 and all(p["eligible"] for p in report["pairs"])
    assert len(report["rows"]) == 2
    for row in report["rows"]:
        assert row["device"] == "local" and row["threads"] == 1 and row["error"] is None
        assert row["dense_p50_ms"] > 0 and row["sparse_p50_ms"] > 0
        assert row["speedup"] == pytest.approx(row["dense_p50_ms"] / row["sparse_p50_ms"])
        if platform.machine() in ("x86_64", "AMD64"):
            assert row["sparse_path_capable"] is False and "≈1.0 is expected" in row["note"]
    # both files of each pair are in the results store like any bench run
    shown = run_cli("results", "show", str(report["run_id"]), "--db", db, "--json")
    assert shown.code == 0, shown.err
    assert shown.out.count(".dense.tflite") >= 2 and shown.out.count(".sparse.tflite") >= 2

    one = ["bench", tiny_tflite("base"), "--sparse-ab", "--device", "local"]
    text = run_cli(*one, "--runs", "3", "--warmup", "0", "--db", db)
    assert text.code == 0, text.err
    assert "sparse A/B" in text.out and "speed-up" in text.out and "eligible" in text.out


@pytest.mark.parametrize(
    ("case", "text"),
    [
        ("unpruned", "prune it first"),
        ("int8", "fp32/fp16"),
        ("missing", "does not exist"),
    ],
)
def test_sparse_ab_refuses_what_it_cannot_compare(run_cli, tiny_tflite, tmp_path, case, text):
    if case == "unpruned":
        path = tmp_path / "dense.keras"
        tiny("base").save(path)
    elif case == "int8":
        path = tiny_tflite("base", sparse=False, quantize="int8")
    else:
        path = tmp_path / "nothing.tflite"
    outcome = run_cli("bench", path, "--sparse-ab", "--device", "local", "--runs", "1")
    assert outcome.code == 2, outcome.err
    last = outcome.err.strip().splitlines()[-1]
    assert last.startswith("error: ") and text in last and "Traceback" not in outcome.err


def test_sparse_ab_from_python_keeps_results_in_memory(tiny_tflite, tmp_path):
    from edgeprune.fleet.options import BenchOptions
    from edgeprune.workflows.sparse_ab import sparse_ab

    notes: list[str] = []
    report = sparse_ab(
        [tiny_tflite("base")],
        options=BenchOptions(runs=3, warmup=0),
        store=None,
        work_dir=tmp_path / "pairs",
        on_note=notes.append,
    )
    assert notes == ["making the dense- and sparse-stored files ..."]
    assert report.db is None and report.to_dict()["db"] is None
    ((pair,),) = [report.pairs]
    assert pair.dense.path.parent.parent == tmp_path / "pairs"
    (row,) = report.rows
    assert row.device == "local" and row.error is None and row.speedup
    assert report.failures == []
    report.raise_for_failures()
    assert [d.device.name for d in report.group] == ["local"]
