"""Keras 3 native magnitude pruning: one-shot, gradual (callback), patterns, policies.

Importing this package does not import TensorFlow; `PruningCallback` (a Keras callback
class) is built on first access.

    from edgeprune.prune import prune_model
    report = prune_model(model, 0.8, scope="balanced")      # in place
    print(report.overall, report.layer_sparsity())
"""

from __future__ import annotations

from typing import Any

from edgeprune.prune.constraint import MaskConstraint, strip_pruning
from edgeprune.prune.gradual import GradualPruneResult, default_schedule, prune_gradually
from edgeprune.prune.masks import SCOPES, kernel_masks, magnitude_mask, prune_counts
from edgeprune.prune.model_file import PruneRun, TrainingOptions, prune_model_file
from edgeprune.prune.oneshot import prune_model, prune_with_options
from edgeprune.prune.options import PruneOptions, resolve_sparsity
from edgeprune.prune.patterns import (
    CONV_LAYOUT,
    DENSE_LAYOUT,
    DEPTHWISE_LAYOUT,
    BlockPattern,
    KernelLayout,
    NMPattern,
    Pattern,
    parse_pattern,
)
from edgeprune.prune.plan import PrunePlan
from edgeprune.prune.policy import (
    AllPrunableKernels,
    PrunePolicy,
    PruneTarget,
    get_policy,
    policy_names,
    prunable_kernels,
    register_policy,
    walk_layers,
)
from edgeprune.prune.report import KernelResult, PruneReport
from edgeprune.prune.schedules import (
    ConstantSparsity,
    PolynomialDecay,
    PruningSchedule,
    schedule_from_config,
)
from edgeprune.prune.selection import Selection, SkippedKernel, select_kernels

__all__ = [
    "CONV_LAYOUT",
    "DENSE_LAYOUT",
    "DEPTHWISE_LAYOUT",
    "SCOPES",
    "AllPrunableKernels",
    "BlockPattern",
    "ConstantSparsity",
    "GradualPruneResult",
    "KernelLayout",
    "KernelResult",
    "MaskConstraint",
    "NMPattern",
    "Pattern",
    "PolynomialDecay",
    "PruneOptions",
    "PrunePlan",
    "PrunePolicy",
    "PruneReport",
    "PruneRun",
    "PruneTarget",
    "PruningCallback",
    "PruningSchedule",
    "Selection",
    "SkippedKernel",
    "TrainingOptions",
    "default_schedule",
    "get_policy",
    "kernel_masks",
    "magnitude_mask",
    "parse_pattern",
    "policy_names",
    "prunable_kernels",
    "prune_counts",
    "prune_gradually",
    "prune_model",
    "prune_model_file",
    "prune_with_options",
    "register_policy",
    "resolve_sparsity",
    "schedule_from_config",
    "select_kernels",
    "strip_pruning",
    "walk_layers",
]


def __getattr__(name: str) -> Any:
    if name == "PruningCallback":
        from edgeprune.prune.callback import pruning_callback_class

        return pruning_callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
