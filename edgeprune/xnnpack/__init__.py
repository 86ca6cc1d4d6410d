"""XNNPACK-friendly sparsity: the sparse-path rules, a verifier, a pruning policy, a fixer.

Importing this package does not import TensorFlow.

    from edgeprune.xnnpack import check_sparse_path
    report = check_sparse_path("model.tflite")
    print(report.verdict)   # "not eligible: DEPTHWISE_CONV_2D #4 (block_1_depthwise): ..."

    plan_keras_model(model).formed      # the clusters a Keras model will form, before pruning
    fix_model(model).model              # stock MobileNetV2/V3, EfficientNet -> symmetric padding
    prune_model(model, 0.85, policy="xnnpack")   # only the 1x1 convs of those clusters
"""

from __future__ import annotations

from edgeprune.xnnpack.clusters import Cluster, Node, Problem
from edgeprune.xnnpack.fix import FixedModel, fix_model
from edgeprune.xnnpack.policy import KerasSparsePlan, XnnpackSparsePolicy, plan_keras_model
from edgeprune.xnnpack.verifier import SparsePathReport, check_sparse_path

__all__ = [
    "Cluster",
    "FixedModel",
    "KerasSparsePlan",
    "Node",
    "Problem",
    "SparsePathReport",
    "XnnpackSparsePolicy",
    "check_sparse_path",
    "fix_model",
    "plan_keras_model",
]
