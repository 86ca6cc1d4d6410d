"""Runtime selection and what each runtime can do on each board's CPU."""

from __future__ import annotations

import pytest

from device_agents import runtimes
from device_agents.probes.linux import parse_cpuinfo
from device_agents.sparse_support import sparse_path_support

from .conftest import RECORDED


def _features(board: str) -> list:
    return parse_cpuinfo((RECORDED / board / "root/proc/cpuinfo").read_text())["features"]


def test_preference_order_with_what_is_installed_here():
    import ai_edge_litert

    assert runtimes.available_runtimes()[0] == "ai_edge_litert"
    chosen = runtimes.select_runtime()
    assert chosen.name == "ai_edge_litert" and chosen.version == ai_edge_litert.__version__
    assert runtimes.select_runtime("tensorflow").name == "tensorflow"


def test_forcing_a_missing_or_unknown_runtime_names_the_fix():
    if runtimes.is_installed("tflite_runtime"):
        pytest.skip("tflite_runtime is installed in this environment")
    with pytest.raises(runtimes.RuntimeNotAvailable, match="pip install tflite-runtime"):
        runtimes.select_runtime("tflite_runtime")
    with pytest.raises(runtimes.RuntimeNotAvailable, match="unknown"):
        runtimes.select_runtime("onnxruntime")


def test_interpreter_api_toggles_xnnpack(agent_models):
    interpreter_cls, resolver = runtimes.interpreter_api("ai_edge_litert")
    content = agent_models.dense.read_bytes()
    for xnnpack in (True, False):
        interpreter = runtimes.create_interpreter(interpreter_cls, resolver, content, 2, xnnpack)
        interpreter.allocate_tensors()
        interpreter.invoke()


@pytest.mark.parametrize(
    ("board", "runtime", "capable"),
    [
        ("pi4", "tflite_runtime", False),  # Cortex-A72: no fp16 arithmetic
        ("pi4", "ai_edge_litert", True),
        ("pi5", "tflite_runtime", True),  # Cortex-A76: fphp + asimdhp
        ("pi5", "ai_edge_litert", True),
        ("jetson-orin", "tflite_runtime", True),
    ],
)
def test_sparse_path_on_recorded_boards(board, runtime, capable):
    answer = sparse_path_support(runtime, "2.14.0", "aarch64", _features(board))
    assert answer["capable"] is capable
    if not capable:
        assert "fphp" in answer["reason"] and "pip install ai-edge-litert" in answer["fix"]


def test_sparse_path_elsewhere():
    x86 = sparse_path_support("ai_edge_litert", "2.3.0", "x86_64", ["avx", "avx2", "fma"])
    assert not x86["capable"] and "x86 CPUs with AVX" in x86["reason"]
    arm32 = sparse_path_support("tflite_runtime", "2.14.0", "armv7l", ["neon", "vfpv4"])
    assert not arm32["capable"] and "32-bit ARM" in arm32["reason"]
    nothing = sparse_path_support(None, "", "aarch64", _features("pi5"))
    assert not nothing["capable"] and "no TFLite runtime" in nothing["reason"]
    tf_nano = sparse_path_support("tensorflow", "2.21.0", "aarch64", _features("pi4"))
    assert not tf_nano["capable"] and "not measured" in tf_nano["reason"]


def test_sparse_model_on_a_board_without_the_sparse_path_names_the_fix():
    from device_agents.bench import runtime_warnings
    from device_agents.protocol import BenchOptions
    from device_agents.runtimes import RuntimeInfo
    from device_agents.tflite_file import DENSIFY, ModelFacts

    facts = ModelFacts(
        size_bytes=1, schema_version=3, builtin_codes=[3, DENSIFY], tensor_types={"int8"}
    )
    runtime = RuntimeInfo("tflite_runtime", "2.14.0")
    support = sparse_path_support(runtime.name, runtime.version, "aarch64", _features("pi4"))
    warnings = {
        w.code: w.message for w in runtime_warnings(runtime, facts, support, BenchOptions())
    }
    assert "pip install ai-edge-litert" in warnings["sparse_path_unavailable"]
    assert "DENSIFY" in warnings["sparse_path_unavailable"]
    assert "int8_without_xnnpack" in warnings
    pi5 = sparse_path_support(runtime.name, runtime.version, "aarch64", _features("pi5"))
    assert "sparse_path_unavailable" not in {
        w.code for w in runtime_warnings(runtime, facts, pi5, BenchOptions())
    }
