"""Each sparse-path rule on a small converted graph: the kept rule passes, the broken one names the op."""

from __future__ import annotations

import pytest

from edgeprune.xnnpack import check_sparse_path
from xnnpack.models import TINY_VARIANTS


@pytest.mark.parametrize("variant", sorted(TINY_VARIANTS))
def test_rule(tiny_tflite, variant):
    eligible, code, text = TINY_VARIANTS[variant]
    report = check_sparse_path(tiny_tflite(variant))
    assert report.sparse_weights_stored
    assert report.eligible is eligible, report.verdict
    if eligible:
        assert report.problems == []
        assert report.verdict.startswith("eligible")
        (cluster,) = [c for c in report.clusters if c.sparse]
        assert cluster.starts and cluster.ends
        assert report.zero_fraction == pytest.approx(0.9, abs=0.005)
        return
    assert report.verdict.startswith("not eligible: ")
    matching = [p for p in report.problems if p.code == code and text in p.text()]
    assert matching, report.reasons
    assert not any(c.sparse for c in report.clusters)


def test_cluster_holds_the_whole_body(tiny_tflite):
    report = check_sparse_path(tiny_tflite("rich"))
    (cluster,) = [c for c in report.clusters if c.sparse]
    ops = {n.op for n in cluster.nodes}
    # a model input enters only through the starting conv; MEAN with keep_dims feeds the
    # squeeze-and-excite convs inside, and the final MEAN ends the cluster
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "TANH", "RESIZE_BILINEAR", "MUL", "MEAN"} <= ops
    assert [n.op for n in cluster.starts] == ["CONV_2D"]
    assert [n.op for n in cluster.ends] == ["MEAN"]
    assert "FULLY_CONNECTED" not in ops  # the classifier stays outside


def test_zero_fraction_below_two_thirds(tiny_tflite):
    report = check_sparse_path(tiny_tflite("base", fraction=0.6))
    assert not report.eligible
    assert report.zero_fraction == pytest.approx(0.6, abs=0.005)
    (problem,) = report.problems
    assert problem.code == "zeros"
    assert "60.0% zero" in problem.message and "2/3" in problem.message


def test_stored_dense_is_not_eligible(tiny_tflite):
    report = check_sparse_path(tiny_tflite("base", sparse=False))
    assert not report.eligible and not report.sparse_weights_stored
    assert [p.code for p in report.problems] == ["storage"]
    assert "--sparse-weights" in report.reasons[0]
    assert report.clusters[0].structure_ok  # the structure itself is fine


@pytest.mark.parametrize("quantize", ["int8", "dynamic"])
def test_quantized_is_not_eligible(tiny_tflite, quantize):
    report = check_sparse_path(tiny_tflite("base", fraction=0.85, sparse=False, quantize=quantize))
    assert not report.eligible
    assert report.problems[0].code == "dtype"
    assert "fp32/fp16" in report.reasons[0]


def test_float16_sparse_is_eligible(tiny_tflite):
    report = check_sparse_path(tiny_tflite("base", quantize="float16"))
    assert report.quantization == "float16" and report.sparse_weights_stored
    assert report.eligible, report.verdict
