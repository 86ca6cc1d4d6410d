"""2:4 and block:4x1 masks are exact (every group / block checked here, independently of the
library's own `violations`), survive conversion, and `inspect --pattern` reports them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeprune.prune import prune_model
from edgeprune.tflite import convert, read_model
from edgeprune.xnnpack import check_sparse_path
from edgeprune.xnnpack.dense_values import dense_values
from edgeprune.xnnpack.tflite_graph import constant_source
from xnnpack.models import tiny

POINTWISE = ("b1_expand", "b1_project", "b2_expand", "b2_project", "head")


def keras_matrix(model, name: str) -> np.ndarray:
    """A 1x1 Keras kernel (1, 1, in, out) as (out, in)."""
    return model.get_layer(name).get_weights()[0][0, 0].T


def groups_ok(matrix: np.ndarray, n: int, m: int) -> bool:
    """Every run of m consecutive input channels of every output channel: <= n non-zeros."""
    out, inp = matrix.shape
    for o in range(out):
        for start in range(0, inp, m):
            if np.count_nonzero(matrix[o, start : start + m]) > n:
                return False
    return True


def blocks_ok(matrix: np.ndarray, rows: int, cols: int) -> bool:
    """Every block of `rows` output x `cols` input channels is all zero or all non-zero."""
    out, inp = matrix.shape
    for o in range(0, out, rows):
        for i in range(0, inp, cols):
            block = matrix[o : o + rows, i : i + cols]
            if 0 < np.count_nonzero(block) < block.size:
                return False
    return True


def tflite_matrices(path) -> dict[str, np.ndarray]:
    """The 1x1 CONV_2D weights of a .tflite as (out, in), densified, by Keras layer name."""
    model = read_model(path)
    found = {}
    for op in model.main.operators:
        if op.opcode != "CONV_2D":
            continue
        weights = dense_values(model, constant_source(model, op.inputs[1]))
        if weights.shape[1:3] == (1, 1):
            found[len(found)] = weights[:, 0, 0, :]
    return found


@pytest.fixture(scope="module")
def pattern_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("patterns")
    made = {}
    for name, pattern, sparsity in (("nm", "2:4", None), ("block", "block:4x1", 0.75)):
        model = tiny("base")
        prune_model(model, sparsity, pattern=pattern, policy="xnnpack")
        keras_path, tflite_path = root / f"{name}.keras", root / f"{name}.tflite"
        model.save(keras_path)
        convert(model, tflite_path, sparse_weights=True)
        made[name] = (model, keras_path, tflite_path)
    return made


def test_two_four_is_exact_in_keras_and_after_conversion(pattern_models):
    model, _, tflite = pattern_models["nm"]
    converted = tflite_matrices(tflite)
    assert len(converted) == len(POINTWISE)
    for position, name in enumerate(POINTWISE):
        matrix = keras_matrix(model, name)
        assert groups_ok(matrix, 2, 4), name
        assert np.count_nonzero(matrix) == matrix.size // 2  # exactly 2 of every 4 kept
        np.testing.assert_array_equal(converted[position], matrix)  # stored sparse, same values
    assert read_model(tflite).op_counts()["DENSIFY"] == len(POINTWISE)


def test_block_4x1_is_exact_and_eligible(pattern_models):
    assert not blocks_ok(np.eye(4), 4, 1)  # the checker itself sees a partly-zero block
    model, _, tflite = pattern_models["block"]
    converted = tflite_matrices(tflite)
    for position, name in enumerate(POINTWISE):
        matrix = keras_matrix(model, name)
        assert blocks_ok(matrix, 4, 1), name
        np.testing.assert_array_equal(converted[position], matrix)
    report = check_sparse_path(tflite)
    assert report.eligible and report.zero_fraction == pytest.approx(0.75, abs=0.01)


def test_inspect_pattern_reports_each_tensor(run_cli, pattern_models):
    _, keras_path, tflite = pattern_models["nm"]
    for path in (tflite, keras_path):
        outcome = run_cli("inspect", path, "--pattern", "2:4", "--json")
        assert outcome.code == 0, outcome.err
        section = json.loads(outcome.out)["pattern"]
        assert section["pattern"] == "2:4" and section["unit"] == "group"
        checked = [t for t in section["tensors"] if t["applies"]]
        assert {t["satisfied"] for t in checked if t["sparsity"] > 0} == {True}
        stem = next(t for t in section["tensors"] if "stem" in t["op"])
        assert not stem["applies"] and "3 input channels" in stem["reason"]
    text = run_cli("inspect", tflite, "--pattern", "block:4x1")
    assert text.code == 0 and "pattern block:4x1" in text.out and "violated" in text.out


def test_a_model_that_breaks_the_pattern_is_reported(run_cli, tmp_path):
    path = tmp_path / "dense.keras"
    tiny("base").save(path)
    section = json.loads(run_cli("inspect", path, "--pattern", "2:4", "--json").out)["pattern"]
    assert not section["all_satisfied"] and section["violating"] == section["checked"] > 0
    head = next(t for t in section["tensors"] if t["op"].startswith("layer 'head'"))
    assert head["violations"] == head["units"]  # random weights: every group has 4 non-zeros


@pytest.mark.parametrize("bad", ["3:2", "block:0x4", "2-4"])
def test_a_bad_pattern_is_one_line_exit_2(run_cli, pattern_models, bad):
    outcome = run_cli("inspect", pattern_models["nm"][2], "--pattern", bad)
    assert (
        outcome.code == 2 and outcome.err.startswith("error: ") and "Traceback" not in outcome.err
    )
