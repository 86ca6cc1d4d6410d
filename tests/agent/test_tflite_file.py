"""The minimal flatbuffer reader: right answers on real models, a clear error on anything else."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_agents.tflite_file import ModelFacts, ModelFileError, inspect_bytes, inspect_model


def test_reads_real_models(agent_models):
    dense = inspect_model(str(agent_models.dense))
    assert not dense.is_sparse and not dense.is_quantized
    assert [(t.shape, t.dtype) for t in dense.inputs] == [([1, 32, 32, 3], "float32")]
    assert [(t.shape, t.dtype) for t in dense.outputs] == [([1, 10], "float32")]
    assert inspect_model(str(agent_models.sparse)).is_sparse
    int8 = inspect_model(str(agent_models.int8))
    assert int8.is_quantized and int8.inputs[0].dtype == "int8"
    two = inspect_model(str(agent_models.two_inputs))
    assert [t.shape for t in two.inputs] == [[1, 8], [1, 4]] or [t.shape for t in two.inputs] == [
        [1, 4],
        [1, 8],
    ]


def test_operator_codes_match_the_runtimes_own_schema(agent_models):
    """Cross-check against LiteRT's generated flatbuffer code, field by field."""
    from ai_edge_litert import schema_py_generated as schema

    for path in (agent_models.dense, agent_models.sparse, agent_models.int8):
        data = path.read_bytes()
        model = schema.Model.GetRootAs(data, 0)
        expected = [
            max(
                model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode()
            )
            for i in range(model.OperatorCodesLength())
        ]
        facts = inspect_bytes(data)
        assert facts.builtin_codes == expected
        assert facts.buffers == model.BuffersLength()
        assert facts.subgraphs == model.SubgraphsLength()


def test_not_a_model(tmp_path):
    text = tmp_path / "notes.tflite"
    text.write_text("this is a text file, not a flatbuffer\n")
    with pytest.raises(ModelFileError, match="lacks the 'TFL3'"):
        inspect_model(str(text))
    tiny = tmp_path / "tiny.tflite"
    tiny.write_bytes(b"TFL")
    with pytest.raises(ModelFileError, match="only 3 bytes"):
        inspect_model(str(tiny))
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="only 0 bytes"):
        inspect_model(str(empty))
    with pytest.raises(ModelFileError, match="cannot read"):
        inspect_model(str(tmp_path / "missing.tflite"))
    with pytest.raises(ModelFileError, match="cannot read"):
        inspect_model(str(tmp_path))  # a directory


def test_every_truncation_is_caught(agent_models):
    data = agent_models.dense.read_bytes()
    for length in range(0, len(data), 7):
        with pytest.raises(ModelFileError):
            inspect_bytes(data[:length])


def test_wrong_schema_version_is_named(agent_models):
    data = bytearray(agent_models.dense.read_bytes())
    facts = inspect_bytes(bytes(data))
    assert facts.schema_version == 3
    # Model.version is field 0 of the root table: find it through the vtable and change it.
    root = int.from_bytes(data[0:4], "little")
    vtable = root - int.from_bytes(data[root : root + 4], "little", signed=True)
    offset = int.from_bytes(data[vtable + 4 : vtable + 6], "little")
    data[root + offset : root + offset + 4] = (7).to_bytes(4, "little")
    with pytest.raises(ModelFileError, match="schema version 7"):
        inspect_bytes(bytes(data))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_corrupt_bytes_never_escape_as_other_errors(agent_models, data):
    """Random byte flips: the reader answers or raises ModelFileError, nothing else."""
    original = bytearray(agent_models.sparse.read_bytes())
    flips = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255)),
            min_size=1,
            max_size=8,
        )
    )
    for position, value in flips:
        original[position] = value
    try:
        facts = inspect_bytes(bytes(original))
    except ModelFileError as exc:
        assert str(exc)
    else:
        assert isinstance(facts, ModelFacts)
