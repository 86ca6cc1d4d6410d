"""`--policy xnnpack`: prune only the 1x1 convs of XNNPACK sparse clusters.

As in the Fast Sparse ConvNets models, the first (3x3, 3-channel) conv, the depthwise convs
and the classifier stay dense: XNNPACK's sparse kernels only exploit zeros in 1x1 convs,
and the 2/3 rule counts those alone. The model is checked before any weight changes (and
before any training): if no sparse cluster can form, the error names the layer at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeprune.errors import UserError
from edgeprune.prune.policy import PrunePolicy, PruneTarget, prunable_kernels
from edgeprune.xnnpack.clusters import Cluster, Problem, form_clusters
from edgeprune.xnnpack.keras_graph import keras_nodes


@dataclass
class KerasSparsePlan:
    """The clusters a Keras model would form once converted, and what stops the others."""

    clusters: list[Cluster]

    @property
    def formed(self) -> list[Cluster]:
        return [c for c in self.clusters if c.structure_ok]

    @property
    def problems(self) -> list[Problem]:
        found: dict[tuple[str, int | None, str], Problem] = {}
        for cluster in self.clusters:
            for problem in cluster.problems:
                found.setdefault((problem.code, problem.index, problem.message), problem)
        causes = [p for p in found.values() if p.code != "no_end"]
        return sorted(causes or found.values(), key=lambda p: p.index or 0)

    @property
    def zero_fraction(self) -> float | None:
        params = sum(c.params for c in self.formed)
        return sum(c.zeros for c in self.formed) / params if params else None

    def pointwise_kernels(self) -> set[tuple[int, str]]:
        """(id(layer), weight name) of every 1x1 kernel inside a cluster that forms."""
        return {(id(n.layer), n.weight_name or "kernel") for c in self.formed for n in c.pointwise}

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster_ready": bool(self.formed),
            "clusters": len(self.clusters),
            "formed": len(self.formed),
            "pointwise_layers": sorted(
                {n.layer.name for c in self.formed for n in c.pointwise if n.layer is not None}
            ),
            "zero_fraction": self.zero_fraction,
            "problems": [p.to_dict() for p in self.problems] if not self.formed else [],
        }


def plan_keras_model(model: Any) -> KerasSparsePlan:
    """Predict the sparse clusters of `model`'s converted graph (no conversion, no training)."""
    try:
        graph = keras_nodes(model)
    except TypeError as exc:
        raise UserError(
            f"policy xnnpack needs a functional or sequential Keras model ({exc})",
            params=("policy",),
        ) from None
    return KerasSparsePlan(form_clusters(graph.nodes, graph.outputs))


def require_cluster(plan: KerasSparsePlan) -> None:
    """A UserError naming the layer at fault when no sparse cluster can form."""
    if plan.formed:
        return
    problems = plan.problems
    if not problems:
        raise UserError(
            "policy xnnpack: no XNNPACK sparse cluster can form in this model: it needs a "
            "3x3 stride-2 conv on a 3-channel input, depthwise 3x3/5x5 + 1x1 convs, and "
            "GlobalAveragePooling2D",
            params=("policy",),
        )
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise UserError(
        f"policy xnnpack: no XNNPACK sparse cluster can form: {problems[0].text()}{more}",
        params=("policy",),
    )


class XnnpackSparsePolicy(PrunePolicy):
    """Only the 1x1 convs (Conv2D 1x1, SeparableConv2D pointwise) of sparse clusters."""

    name = "xnnpack"
    # the 2/3 rule counts every 1x1 weight of a cluster, so small 1x1 convs are pruned too
    default_min_params = 0

    def __init__(self) -> None:
        self._plans: dict[int, KerasSparsePlan] = {}

    def plan(self, model: Any) -> KerasSparsePlan:
        if id(model) not in self._plans:
            self._plans[id(model)] = plan_keras_model(model)
        return self._plans[id(model)]

    def check_model(self, model: Any) -> None:
        require_cluster(self.plan(model))

    def candidates(self, model: Any) -> list[PruneTarget]:
        wanted = self.plan(model).pointwise_kernels()
        return [t for t in prunable_kernels(model) if (id(t.layer), t.weight_name) in wanted]


def predicted_sparse_path(model: Any) -> dict[str, Any] | None:
    """What `inspect` shows for a Keras model: the clusters its .tflite would form."""
    try:
        plan = plan_keras_model(model)
    except UserError:
        return None
    return {"predicted": True, **plan.to_dict()}
