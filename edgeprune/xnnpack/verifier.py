"""Will XNNPACK take its sparse path for this `.tflite`? The verdict, and why not.

`check_sparse_path(model)` runs the rules of `rules.py` over the graph (`tflite_graph.py`),
forms clusters (`clusters.py`) and adds the model-wide conditions: fp32/fp16 only, and
weights stored sparse (the delegate asks XNNPACK for sparse inference only when DENSIFY
ops feed it). The answer is static: whether the sparse path is then *taken* also depends
on the board (never on x86 with AVX; see device_agents/sparse_support.py), which only a
measurement (`edgeprune bench --sparse-ab`) shows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from edgeprune.tflite.graph import TFLiteModel
from edgeprune.xnnpack.clusters import Cluster, Problem, form_clusters, zero_problem
from edgeprune.xnnpack.tflite_graph import graph_nodes

BOARD_NOTE = (
    "whether the sparse path is then taken depends on the board: never on x86 CPUs with AVX; "
    "on ARM with ai-edge-litert, or tflite-runtime on CPUs with fp16 arithmetic; "
    "measure with edgeprune bench --sparse-ab"
)


@dataclass
class SparsePathReport:
    eligible: bool
    problems: list[Problem]
    clusters: list[Cluster]
    sparse_weights_stored: bool
    densify_ops: int
    quantization: str
    notes: list[str] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [p.text() for p in self.problems]

    @property
    def zero_fraction(self) -> float | None:
        """Zeros over all 1x1-conv weights of the cluster(s) (the well-formed ones if any)."""
        chosen = [c for c in self.clusters if c.structure_ok] or self.clusters
        params = sum(c.params for c in chosen)
        return sum(c.zeros for c in chosen) / params if params else None

    @property
    def verdict(self) -> str:
        if self.eligible:
            sparse = [c for c in self.clusters if c.sparse]
            ops = ", ".join(f"#{c.nodes[0].index}-#{c.nodes[-1].index}" for c in sparse)
            return (
                f"eligible: {len(sparse)} sparse cluster(s) (ops {ops}); "
                f"1x1 weights {self.zero_fraction:.1%} zero"
            )
        return f"not eligible: {self.reasons[0]}" if self.problems else "not eligible"

    def to_dict(self) -> dict[str, Any]:
        return {
            "eligible": self.eligible,
            "verdict": self.verdict,
            "reasons": self.reasons,
            "problems": [p.to_dict() for p in self.problems],
            "clusters": [c.to_dict() for c in self.clusters],
            "zero_fraction": self.zero_fraction,
            "sparse_weights_stored": self.sparse_weights_stored,
            "densify_ops": self.densify_ops,
            "quantization": self.quantization,
            "notes": self.notes,
        }


def check_sparse_path(model: TFLiteModel | str | os.PathLike[str]) -> SparsePathReport:
    """The sparse-path verdict for a parsed model (or a .tflite path)."""
    from edgeprune.tflite.flatbuffer import read_model
    from edgeprune.tflite.inspection import quantization_kind

    if not isinstance(model, TFLiteModel):
        model = read_model(model)
    densify = model.op_counts().get("DENSIFY", 0)
    quantization = quantization_kind(model)
    storage = (
        []
        if densify
        else [
            Problem(
                "storage",
                "weights are stored dense (no DENSIFY op), so the XNNPACK delegate never "
                "asks for sparse inference: convert with edgeprune convert --sparse-weights",
            )
        ]
    )
    if quantization == "int16x8":
        problem = Problem(
            "dtype",
            "the model is int16x8 (16-bit activations): XNNPACK has no int16x8 kernels, so it "
            "delegates none of its ops and they run on TFLite's reference kernels; convert "
            "with --quantize int8 (--keep-float for the layers int8 hurts) for XNNPACK",
        )
        return SparsePathReport(
            False, [problem, *storage], [], bool(densify), densify, quantization
        )
    if quantization in ("int8", "dynamic"):
        what = "int8 activations" if quantization == "int8" else "int8 weights (dynamic range)"
        problem = Problem(
            "dtype",
            f"the model is quantized ({what}); XNNPACK's sparse path runs fp32/fp16 graphs "
            "only: convert with --quantize none or float16",
        )
        return SparsePathReport(
            False, [problem, *storage], [], bool(densify), densify, quantization
        )
    nodes, outputs = graph_nodes(model)
    clusters = form_clusters(nodes, outputs)
    problems = _problems(clusters)
    eligible = bool(densify) and any(c.sparse for c in clusters)
    report = SparsePathReport(
        eligible,
        [] if eligible else [*problems, *storage],
        clusters,
        bool(densify),
        densify,
        quantization,
    )
    if eligible or (not problems and storage):
        report.notes.append(BOARD_NOTE)
    return report


def _problems(clusters: list[Cluster]) -> list[Problem]:
    """What stops the sparse path, the most useful first (storage comes after, if missing)."""
    if any(c.sparse for c in clusters):
        return []
    formed = [c for c in clusters if c.structure_ok]
    if formed:
        return [zero_problem(c) for c in formed]
    if not clusters:
        return [
            Problem(
                "no_cluster",
                "no op can run in XNNPACK's sparse (NCHW) layout: a sparse cluster starts at "
                "a 3x3 stride-2 conv on the RGB input, holds depthwise 3x3/5x5 and 1x1 convs "
                "and ends at global average pooling",
            )
        ]
    found: dict[tuple[str, int | None, str], Problem] = {}
    for cluster in clusters:
        for problem in cluster.problems:
            found.setdefault((problem.code, problem.index, problem.message), problem)
    causes = [p for p in found.values() if p.code != "no_end"]
    # a cluster cut short by a bad op is a consequence: name the op, not the missing end
    return sorted(causes or found.values(), key=lambda p: (p.index is None, p.index or 0))
