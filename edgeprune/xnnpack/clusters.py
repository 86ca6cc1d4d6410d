"""Sparse clusters over a graph of nodes: `xnn_subgraph_rewrite_for_nchw`, step by step.

Both front ends (a `.tflite` read by `edgeprune.tflite.read_model`, a Keras model before
any training) turn their graph into `Node`s carrying the layout flags of `rules.py`; this
module then does what XNNPACK does:

1. a node that may run inside a cluster joins the cluster of each producer of its
   (non-constant) inputs; a producer that cannot run in NCHW, or a model input, makes the
   cluster incompatible (a model input may enter only through the starting conv, whose
   input XNNPACK never checks);
2. every tensor read inside a cluster must be read only inside it (and not be a model
   output);
3. at least 2/3 of all 1x1-conv weights of the cluster together must be zero
   (`zeros * 3 > params * 2`).

TFLite's README adds that a cluster ends at MEAN (global average pooling) or
DEPTH_TO_SPACE; a cluster with no such end is reported, not taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeprune.xnnpack.rules import IN_CLUSTER, NCHW, NCHW2NHWC, NHWC2NCHW

MIN_ZERO_FRACTION = 2 / 3


@dataclass
class Node:
    """One node as the sparse-path rules see it (a TFLite op, or a Keras layer's share)."""

    index: int  # TFLite op index, or position in the Keras graph
    op: str  # TFLite op name, e.g. "DEPTHWISE_CONV_2D"
    label: str  # what a user reads: "DEPTHWISE_CONV_2D #14 (block_3_depthwise)"
    inputs: tuple[int, ...]  # ids of non-constant input values
    outputs: tuple[int, ...]
    flags: int = 0
    problem: str | None = None  # why flags == 0
    pointwise: bool = False  # a 1x1 CONV_2D: its weights count for the 2/3 rule
    params: int = 0  # 1x1 weights (out x in) and how many are exactly zero
    zeros: int = 0
    layer: Any = None  # the Keras layer (Keras front end only)
    weight_name: str | None = None  # which of the layer's kernels (Keras front end only)


@dataclass
class Problem:
    """Why a cluster is not taken: a code, the op at fault (if one) and what to do."""

    code: str  # dtype | storage | op | input | escape | no_end | zeros | no_cluster
    message: str
    index: int | None = None
    label: str | None = None

    def text(self) -> str:
        return f"{self.label}: {self.message}" if self.label else self.message

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.text()}


@dataclass
class Cluster:
    nodes: list[Node]
    starts: list[Node] = field(default_factory=list)
    ends: list[Node] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def pointwise(self) -> list[Node]:
        return [n for n in self.nodes if n.pointwise]

    @property
    def params(self) -> int:
        return sum(n.params for n in self.pointwise)

    @property
    def zeros(self) -> int:
        return sum(n.zeros for n in self.pointwise)

    @property
    def zero_fraction(self) -> float | None:
        return self.zeros / self.params if self.params else None

    @property
    def structure_ok(self) -> bool:
        """Would XNNPACK form this cluster (everything but the 2/3 rule)?"""
        return not self.problems and bool(self.ends)

    @property
    def enough_zeros(self) -> bool:
        return self.params > 0 and self.zeros * 3 > self.params * 2

    @property
    def sparse(self) -> bool:
        return self.structure_ok and self.enough_zeros

    def to_dict(self) -> dict[str, Any]:
        return {
            "ops": [n.index for n in self.nodes],
            "start": [n.index for n in self.starts],
            "end": [n.index for n in self.ends],
            "pointwise_ops": [n.index for n in self.pointwise],
            "pointwise_params": self.params,
            "pointwise_zeros": self.zeros,
            "zero_fraction": self.zero_fraction,
            "structure_ok": self.structure_ok,
            "sparse": self.sparse,
            "problems": [p.to_dict() for p in self.problems],
        }


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def form_clusters(nodes: Sequence[Node], graph_outputs: Sequence[int]) -> list[Cluster]:
    """The clusters XNNPACK would form, each with the problems that stop it, graph order."""
    position = {id(n): i for i, n in enumerate(nodes)}
    producer: dict[int, Node] = {}
    consumers: dict[int, list[Node]] = {}
    for node in nodes:
        for value in node.outputs:
            producer.setdefault(value, node)
        for value in dict.fromkeys(node.inputs):
            consumers.setdefault(value, []).append(node)
    outputs = set(graph_outputs)

    sets = _UnionFind(len(nodes))
    linked: set[int] = set()  # nodes whose output a cluster member reads (not an end then)
    faults: dict[int, list[Problem]] = {}  # node position -> problems found at it
    for i, node in enumerate(nodes):
        if not node.flags & IN_CLUSTER:
            continue
        for value in node.inputs:
            source = producer.get(value)
            if source is None:
                faults.setdefault(i, []).append(
                    Problem(
                        "input",
                        "reads a model input directly; a model input may enter a sparse "
                        "cluster only through the 3x3 stride-2 conv that starts it",
                        node.index,
                        node.label,
                    )
                )
            elif source.flags & (NHWC2NCHW | NCHW):
                sets.union(i, position[id(source)])
                linked.add(position[id(source)])
            else:
                faults.setdefault(i, []).append(_producer_problem(source, node))

    groups: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        if node.flags:
            groups.setdefault(sets.find(i), []).append(i)
    clusters = []
    for members in groups.values():
        if not any(nodes[i].flags & IN_CLUSTER for i in members):
            continue  # a lone starting conv nobody reads in NCHW
        cluster = Cluster([nodes[i] for i in members])
        cluster.starts = [nodes[i] for i in members if nodes[i].flags == NHWC2NCHW]
        cluster.ends = [nodes[i] for i in members if nodes[i].flags & NCHW2NHWC and i not in linked]
        for i in members:
            cluster.problems.extend(faults.get(i, []))
        clusters.append(cluster)

    compatible = {id(n) for c in clusters if not c.problems for n in c.nodes}
    for cluster in clusters:
        if cluster.problems:
            continue
        cluster.problems.extend(_escapes(cluster, consumers, outputs, compatible, producer))
        if not cluster.ends:
            last = max(cluster.nodes, key=lambda n: n.index)
            cluster.problems.append(
                Problem(
                    "no_end",
                    "the cluster it belongs to never reaches a MEAN over the spatial axes "
                    "(GlobalAveragePooling2D) or DEPTH_TO_SPACE, where a sparse cluster ends",
                    last.index,
                    last.label,
                )
            )
    clusters.sort(key=lambda c: min(n.index for n in c.nodes))
    return clusters


def _producer_problem(source: Node, reader: Node) -> Problem:
    why = source.problem or "it cannot run in XNNPACK's sparse (NCHW) layout"
    if source.flags & NCHW2NHWC:
        why = "it ends a sparse cluster, so its output cannot feed another cluster op"
    return Problem("op", f"{why} (read by {reader.label})", source.index, source.label)


def _escapes(
    cluster: Cluster,
    consumers: dict[int, list[Node]],
    outputs: set[int],
    compatible: set[int],
    producer: dict[int, Node],
) -> list[Problem]:
    """Tensors read inside the cluster must be read only by cluster ops (XNNPACK step 3)."""
    found = []
    seen: set[int] = set()
    for node in cluster.nodes:
        if not node.flags & IN_CLUSTER:
            continue
        for value in node.inputs:
            if value in seen:
                continue
            seen.add(value)
            source = producer[value]
            if value in outputs:
                found.append(
                    Problem(
                        "escape",
                        "its output is also a model output; a tensor inside a sparse cluster "
                        "may only feed ops of the cluster",
                        source.index,
                        source.label,
                    )
                )
                continue
            for reader in consumers.get(value, []):
                if id(reader) not in compatible or not reader.flags & IN_CLUSTER:
                    found.append(
                        Problem(
                            "escape",
                            f"its output is also read by {reader.label}, outside the sparse "
                            "cluster; a tensor inside a cluster may only feed ops of the cluster",
                            source.index,
                            source.label,
                        )
                    )
                    break
    return found


def zero_problem(cluster: Cluster) -> Problem:
    fraction = cluster.zero_fraction or 0.0
    first = cluster.pointwise[0] if cluster.pointwise else None
    return Problem(
        "zeros",
        f"the 1x1 convs of the cluster ({len(cluster.pointwise)} of them, "
        f"{cluster.params:,} weights) are {fraction:.1%} zero; XNNPACK takes the sparse path "
        f"only above 2/3 ({MIN_ZERO_FRACTION:.1%}): prune them further, e.g. "
        "edgeprune prune --policy xnnpack --sparsity 0.85",
        first.index if first else None,
        None,
    )
