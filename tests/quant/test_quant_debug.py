"""Per-layer int8 error: the debugger's own numbers, every quantized op, worst first."""

from __future__ import annotations

import csv
import io
import warnings

import numpy as np
import pytest

from edgeprune.errors import UserError
from edgeprune.tflite.quant_debug import (
    SORT_METRIC,
    configure_int8,
    keras_layer_names,
    layers_of,
    quant_debug,
)
from edgeprune.tflite.sources import open_source


@pytest.fixture(scope="module")
def report(small_model_path, digits):
    return quant_debug(open_source(small_model_path), digits, 40, samples=30)


def test_every_quantized_op_is_listed_worst_first_with_the_debuggers_numbers(
    report, small_model_path, digits
):
    import tensorflow as tf

    source = open_source(small_model_path)
    calibration = digits.calibration(40).astype(np.float32)
    x = digits.x_val[:30].astype(np.float32)

    def validation():
        for sample in x:
            yield [sample[None]]

    converter = configure_int8(source.converter(), calibration)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=validation
        )
        debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    theirs = {r["tensor_name"]: r for r in csv.DictReader(io.StringIO(dump.getvalue()))}

    assert {e.tensor for e in report.layers} == set(theirs)
    assert report.samples == 30 and report.calibration_samples == 40
    for error in report.layers:
        row = theirs[error.tensor]
        assert error.op == row["op_name"]
        for name in ("mean_squared_error", "max_abs_error", "mean_error"):
            assert error.metrics[name] == pytest.approx(float(row[name]), rel=1e-4, abs=1e-9)
        expected = np.sqrt(float(row["mean_squared_error"])) / float(row["scale"])
        assert error.metrics["rmse_over_scale"] == pytest.approx(expected, rel=1e-4)
    values = [e.metrics[SORT_METRIC] for e in report.layers]
    assert values == sorted(values, reverse=True) and values[0] > 0


def test_each_op_is_mapped_to_the_keras_layers_fused_into_it(report, small_model_path):
    names = keras_layer_names(open_source(small_model_path).keras_model)
    by_op = {e.tensor: e.layers for e in report.layers}
    assert all(by_op.values()), [t for t, layers in by_op.items() if not layers]
    convs = [e for e in report.layers if e.op == "CONV_2D"]
    assert {e.layer for e in convs} == {"stem_conv", "block1_pw", "block2_pw", "block3_pw"}
    stem = next(e for e in convs if e.layer == "stem_conv")
    assert stem.layers == ["stem_conv", "stem_bn", "stem_relu"]
    # the classifier's output is only `StatefulPartitionedCall`: its weights name it
    assert next(e for e in report.layers if e.op == "FULLY_CONNECTED").layers == ["classifier"]
    assert all(layer in names for layers in by_op.values() for layer in layers)


def test_layer_names_are_segments_not_prefixes():
    names = ["block1_dw", "block1_dw_bn", "dense_1"]
    assert layers_of(["m_1/block1_dw_bn_1/batchnorm/add"], names) == ["block1_dw_bn"]
    assert layers_of(["m_1/dense_1_1/MatMul;m_1/block1_dw_1/depthwise"], names) == [
        "block1_dw",
        "dense_1",
    ]
    assert layers_of(["StatefulPartitionedCall_1:0"], names) == []


def test_a_savedmodel_has_no_layer_names_to_report(tmp_path, digits):
    import tensorflow as tf

    module = tf.Module()
    module.w = tf.Variable(tf.ones((64, 10)))
    module.f = tf.function(
        lambda x: tf.matmul(tf.reshape(x, (-1, 64)), module.w),
        input_signature=[tf.TensorSpec((None, 8, 8, 1), tf.float32)],
    )
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures=module.f)
    with pytest.raises(UserError, match="is a SavedModel; the per-layer report needs the Keras"):
        quant_debug(open_source(tmp_path / "sm"), digits, 10, samples=5)
