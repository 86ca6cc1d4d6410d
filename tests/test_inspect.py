"""The flatbuffer reader and `inspect`: what it finds in real models, and that junk never crashes it."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_convert_zoo import PRUNE_FRACTION, get_zoo

from edgeprune.errors import NotAModelError
from edgeprune.models import load_keras_model
from edgeprune.tflite import inspect_model, inspect_tflite, read_model
from edgeprune.tflite.inspection import quantization_kind
from edgeprune.workflows import inspection as workflow
from edgeprune.xnnpack.policy import predicted_sparse_path
from edgeprune.xnnpack.verifier import check_sparse_path


@pytest.fixture(scope="module")
def zoo(cached_artifact, demo_model_path, digits):
    return get_zoo(cached_artifact, demo_model_path, digits)


def _densify_csr(model, tensor) -> np.ndarray:
    """Rebuild a 2-D CSR tensor (dense rows, sparse columns) from the parsed metadata."""
    rows, cols = tensor.shape
    dims = tensor.sparsity.dim_metadata
    assert tensor.sparsity.traversal_order == (0, 1) and not tensor.sparsity.block_map
    assert (dims[0].format, dims[0].dense_size, dims[1].format) == ("DENSE", rows, "SPARSE_CSR")
    values = model.tensor_data(tensor)
    dense = np.zeros((rows, cols), dtype=values.dtype)
    for row in range(rows):
        start, end = dims[1].segments[row], dims[1].segments[row + 1]
        dense[row, list(dims[1].indices[start:end])] = values[start:end]
    return dense


def test_reader_recovers_the_sparse_classifier_exactly(zoo):
    from edgeprune.models import load_keras_model

    model = read_model(zoo.path("pruned-sparse"))
    graph = model.main
    fc = next(op for op in graph.operators if op.opcode == "FULLY_CONNECTED")
    densify = graph.producer(fc.inputs[1])
    assert densify is not None and densify.opcode == "DENSIFY"
    sparse = graph.tensors[densify.inputs[0]]
    assert sparse.shape == (10, 128) and sparse.dtype == "FLOAT32"
    kernel = load_keras_model(zoo.path("pruned")).get_layer("classifier").get_weights()[0]
    np.testing.assert_array_equal(_densify_csr(model, sparse), kernel.T)
    assert len(model.tensor_data(sparse)) == np.count_nonzero(kernel) == 256


def test_reader_gives_ops_with_options_and_graph_io(zoo):
    model = read_model(zoo.path("dense"))
    graph = model.main
    stem = next(op for op in graph.operators if op.opcode == "CONV_2D")
    assert stem.options_type == "Conv2DOptions"
    assert stem.options["stride_w"] == stem.options["stride_h"] == 2
    assert stem.options["padding"] == "VALID"
    assert stem.options["fused_activation_function"] == "RELU6"
    weights = graph.tensors[stem.inputs[1]]
    assert weights.shape == (32, 3, 3, 3) and model.tensor_data(weights).shape == (32, 3, 3, 3)
    mean = next(op for op in graph.operators if op.opcode == "MEAN")
    assert mean.options == {"keep_dims": False}
    assert graph.tensors[graph.inputs[0]].shape_signature == (-1, 8, 8, 1)
    assert graph.tensors[graph.outputs[0]].shape_signature == (-1, 10)
    assert graph.consumers(graph.inputs[0])[0].opcode == "CONCATENATION"
    assert model.signatures[0].key == "serving_default"
    assert model.op_counts()["DEPTHWISE_CONV_2D"] == 3


def test_inspect_tflite_counts_sparse_storage_and_zeros(zoo):
    report = inspect_tflite(zoo.path("pruned-sparse"))
    assert report["sparse_weights_stored"] and report["densify_ops"] == 4
    assert report["quantization"] == "none"
    sparse = [w for w in report["weights"] if w["sparse_stored"]]
    assert len(sparse) == 4
    for w in sparse:
        assert w["role"] == "weights"
        assert w["stored_values"] == round((1 - PRUNE_FRACTION) * w["params"])
        assert w["sparsity"] == pytest.approx(PRUNE_FRACTION, abs=0.001)
    # kernel sparsity of the .tflite agrees with the Keras model it came from
    keras_report = inspect_model(zoo.path("pruned"))
    assert report["totals"]["kernel_sparsity"] == pytest.approx(
        keras_report["kernel_sparsity"], abs=0.002
    )
    assert report["totals"]["kernel_params"] == sum(
        layer["kernel_size"] for layer in keras_report["layers"]
    )
    dense = inspect_tflite(zoo.path("pruned-dense"))
    assert dense["totals"]["kernel_sparsity"] == pytest.approx(
        report["totals"]["kernel_sparsity"], abs=1e-9
    )
    assert not dense["sparse_weights_stored"]
    assert report["gzip_bytes"] < report["size_bytes"]
    assert report["manifest"]["step"] == "convert"


def test_the_workflow_adds_xnnpack_to_the_file_facts(zoo: Any) -> None:
    """The format layer reports file facts only; the workflow's document adds XNNPACK's verdict."""
    path = zoo.path("pruned-sparse")
    file_facts = inspect_tflite(path)
    full = workflow.inspect_model(path)
    assert "xnnpack" not in file_facts
    assert list(full)[-1] == "xnnpack"
    assert {k: v for k, v in full.items() if k != "xnnpack"} == file_facts
    assert full["xnnpack"] == check_sparse_path(read_model(path)).to_dict()
    assert workflow.inspect_tflite(path) == full
    keras_path = zoo.path("pruned")
    keras_full = workflow.inspect_model(keras_path)
    keras_facts = inspect_model(keras_path)
    assert "xnnpack" not in keras_facts
    # Keras names a loaded model's tensors from a process-wide counter: compare the rest
    names = ("xnnpack", "inputs", "outputs")
    assert {k: v for k, v in keras_full.items() if k not in names} == {
        k: v for k, v in keras_facts.items() if k not in names
    }
    for kind in ("inputs", "outputs"):
        assert [io["shape"] for io in keras_full[kind]] == [io["shape"] for io in keras_facts[kind]]
    assert keras_full["xnnpack"] == predicted_sparse_path(load_keras_model(keras_path))


def test_inspect_reports_quantization_per_tensor(zoo):
    int8 = inspect_tflite(zoo.path("pruned-int8-io"))
    assert int8["quantization"] == "int8"
    assert int8["inputs"][0]["dtype"] == "int8"
    assert int8["inputs"][0]["quantization"]["scale"] > 0
    convs = [w for w in int8["weights"] if w["role"] == "weights"]
    assert all(w["dtype"] == "INT8" and w["quantization"]["per_axis"] for w in convs)
    assert convs[0]["quantization"]["channels"] == convs[0]["shape"][0]
    # zeros of quantized weights are counted in real terms (q == zero point)
    pointwise = [w for w in convs if w["shape"][1:3] == [1, 1]]
    assert all(w["sparsity"] >= PRUNE_FRACTION - 0.001 for w in pointwise)
    assert int8["quantized_activations"]
    assert quantization_kind(read_model(zoo.path("pruned-dynamic"))) == "dynamic"
    assert quantization_kind(read_model(zoo.path("pruned-float16"))) == "float16"
    assert quantization_kind(read_model(zoo.path("dense"))) == "none"


def test_cli_inspect_tflite_keras_and_savedmodel(run_cli, zoo, tmp_path):
    outcome = run_cli("inspect", zoo.path("pruned-sparse"), "--json")
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    assert report["format"] == "tflite" and report["ops"]["DENSIFY"] == 4

    outcome = run_cli("inspect", zoo.path("pruned-sparse"))
    assert outcome.code == 0, outcome.err
    for text in ("weight tensors", "DENSIFY", "3,277 sparse", "used by", "manifest", "convert"):
        assert text in outcome.out

    outcome = run_cli("inspect", zoo.path("pruned"), "--json")
    assert outcome.code == 0, outcome.err
    keras_report = json.loads(outcome.out)
    layers = {layer["name"]: layer for layer in keras_report["layers"]}
    assert layers["block3_pw"]["kernel_sparsity"] == pytest.approx(PRUNE_FRACTION, abs=0.001)
    assert layers["block3_pw"]["macs"] > 0 and keras_report["macs"] > 0
    assert keras_report["inputs"][0]["shape"] == [None, 8, 8, 1]

    outcome = run_cli("inspect", zoo.path("pruned"))
    assert outcome.code == 0 and "block3_pw" in outcome.out and "MACs" in outcome.out

    from edgeprune.models import load_keras_model

    h5 = tmp_path / "pruned.h5"
    load_keras_model(zoo.path("pruned")).save(h5)
    outcome = run_cli("inspect", h5, "--json")
    assert outcome.code == 0, outcome.err
    h5_report = json.loads(outcome.out)
    assert h5_report["format"] == "h5"
    assert h5_report["kernel_sparsity"] == pytest.approx(keras_report["kernel_sparsity"])

    outcome = run_cli("inspect", zoo.path("pruned-savedmodel"), "--json")
    assert outcome.code == 0, outcome.err
    saved = json.loads(outcome.out)
    assert saved["format"] == "savedmodel" and saved["inputs"][0]["shape"] == [None, 8, 8, 1]
    kernels = [v for v in saved["variables"] if "block3_pw" in v["name"] and "kernel" in v["name"]]
    assert kernels and kernels[0]["sparsity"] == pytest.approx(PRUNE_FRACTION, abs=0.001)


def test_broken_manifest_does_not_hide_the_model(zoo, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(zoo.path("dense").read_bytes())
    (tmp_path / "m.tflite.json").write_text("{broken")
    report = inspect_tflite(model)
    assert "not valid JSON" in report["manifest"]["error"]
    assert report["op_count"] > 0


def _mutations(data: bytes, count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    results = []
    for _ in range(count):
        buf = bytearray(data)
        for _ in range(rng.choice((1, 2, 8, 32))):
            # the flatbuffer tables sit after the weights; hit both regions
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        if rng.random() < 0.15:
            buf = buf[: rng.randrange(8, len(buf))]
        results.append(bytes(buf))
    return results


def test_reader_turns_any_damage_into_not_a_model_error(zoo):
    original = zoo.path("pruned-int8").read_bytes()
    parsed = failed = 0
    for blob in _mutations(original, 250, seed=7):
        try:
            model = read_model(blob)
        except NotAModelError as exc:
            assert "\n" not in str(exc)
            failed += 1
            continue
        parsed += 1
        for graph in model.subgraphs:  # whatever parses is safe to walk
            for tensor in graph.tensors:
                model.tensor_data(tensor)
            for op in graph.operators:
                [graph.tensors[i] for i in op.inputs if i >= 0]
    assert parsed and failed  # both kinds of outcome were exercised


def test_reader_rejects_lies_about_sizes(zoo, tmp_path):
    data = zoo.path("dense").read_bytes()
    with pytest.raises(NotAModelError, match="no TFL3"):
        read_model(b"\x00" * 64)
    with pytest.raises(NotAModelError, match="damaged"):
        read_model(data[: len(data) // 3])
    with pytest.raises(NotAModelError):
        read_model(b"\x08\x00\x00\x00TFL3" + bytes(range(256)) * 4)
    # the root table's subgraph vector claims 2^32-1 entries: refused before any work
    model_table = struct.unpack_from("<I", data, 0)[0]
    vtable = model_table - struct.unpack_from("<i", data, model_table)[0]
    subgraphs_field = struct.unpack_from("<H", data, vtable + 4 + 2 * 2)[0]
    vector = model_table + subgraphs_field
    vector += struct.unpack_from("<I", data, vector)[0]
    huge = bytearray(data)
    struct.pack_into("<I", huge, vector, 0xFFFFFFFF)
    with pytest.raises(NotAModelError, match="more structure than the file can hold"):
        read_model(bytes(huge))


BAD_INSPECT = {
    "missing": ("absent.tflite", None, "does not exist"),
    "random .tflite": ("r.tflite", "random", "not a model"),
    "random .keras": ("r.keras", "random", "not a model"),
    "truncated .tflite": ("t.tflite", "truncated", "damaged"),
    "empty": ("e.tflite", "empty", "is empty"),
    "directory": ("somedir", "dir", "without saved_model.pb"),
}


@pytest.mark.parametrize("case", sorted(BAD_INSPECT))
def test_bad_inspect_input_is_one_line(case, run_cli, zoo, tmp_path: Path):
    name, kind, expected = BAD_INSPECT[case]
    path = tmp_path / name
    if kind == "random":
        path.write_bytes(np.random.default_rng(3).bytes(4096))
    elif kind == "truncated":
        path.write_bytes(zoo.path("dense").read_bytes()[:5000])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "dir":
        path.mkdir()
    for extra in ((), ("--json",)):
        outcome = run_cli("inspect", path, *extra)
        assert outcome.code == 2, outcome
        assert outcome.err.startswith("error: ") and expected in outcome.err, outcome.err
        assert len(outcome.err.strip().splitlines()) == 1 and outcome.out == ""
