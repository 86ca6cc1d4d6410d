"""Walk a Keras functional graph (nested models included) and tie channels into groups.

Every position of every tensor's last axis gets a channel id. A Conv2D or Dense creates new
ids (its filters); a depthwise conv, BN or activation passes its input's ids on; an Add ties
the ids of its inputs together (union-find); a Concatenate lines them up; a layer called
more than once (a head shared by FPN levels) ties its calls. Channels whose ids end up in
one set must be removed together; a set that touches a model input, a model output, an
unknown layer or an excluded layer is fixed. This is torch-pruning's dependency
graph, built on Keras' own node graph instead of autograd.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeprune.channels.rule_table import rule_for
from edgeprune.channels.rules import LayerCall, NotApplicable
from edgeprune.channels.unionfind import UnionFind
from edgeprune.errors import UserError


@dataclass
class FilterScores:
    """Per-channel weight norms of one layer, voting on the importance of channel ids."""

    path: str
    ids: np.ndarray
    l1: np.ndarray
    l2: np.ndarray


@dataclass
class SkippedLayer:
    """A layer whose channels are left alone, and why."""

    path: str
    class_name: str
    reason: str
    unknown: bool


@dataclass
class ChannelGraph:
    """The traced model: channel ids per call, filter sources, scores and fixed channels."""

    model: Any
    uf: UnionFind = field(default_factory=UnionFind)
    calls: dict[int, list[LayerCall]] = field(default_factory=lambda: defaultdict(list))
    layers: dict[str, Any] = field(default_factory=dict)  # path -> layer (nested models too)
    sources: dict[str, np.ndarray] = field(default_factory=dict)  # path -> filter ids
    scores: list[FilterScores] = field(default_factory=list)
    fixed: dict[int, str] = field(default_factory=dict)  # id -> first reason
    skipped: list[SkippedLayer] = field(default_factory=list)

    def root_of(self, ids: np.ndarray) -> np.ndarray:
        return self.uf.roots(ids)


class ChannelTracer:
    """Builds a ChannelGraph; rules call back into it to create, tie and fix ids."""

    def __init__(self, model: Any) -> None:
        self.graph = ChannelGraph(model)

    # -- callbacks used by the rules -------------------------------------------------
    def new_ids(self, count: int) -> np.ndarray:
        return self.graph.uf.add(count)

    def new_source(self, path: str, filters: np.ndarray) -> np.ndarray:
        """New ids for a layer's filters; `filters` is (count, fan-in) for the norms."""
        ids = self.new_ids(len(filters))
        self.graph.sources[path] = ids
        self.add_scores(path, ids, filters)
        return ids

    def add_scores(self, path: str, ids: np.ndarray, filters: np.ndarray) -> None:
        values = np.abs(filters.astype(np.float64))
        l1 = values.sum(axis=1)
        l2 = np.sqrt((values**2).sum(axis=1))
        self.graph.scores.append(FilterScores(path, np.asarray(ids), l1, l2))

    def tie(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            self.graph.uf.union(x, y)

    def fix(self, ids: np.ndarray | None, reason: str) -> None:
        if ids is None:
            return
        for item in np.unique(ids).tolist():
            self.graph.fixed.setdefault(item, reason)

    # -- walking ---------------------------------------------------------------------
    def trace(self) -> ChannelGraph:
        model = self.graph.model
        graph_model = _graph_of(model)
        inputs = [self._fresh(_shape(t), "model input") for t in graph_model.inputs]
        outputs = self._trace_graph(graph_model, inputs, prefix="")
        for slots in outputs:
            self.fix(slots, "model output")
        self._tie_shared_layers()
        return self.graph

    def _trace_graph(self, model: Any, inputs: list[Any], prefix: str) -> list[Any]:
        slots_of: dict[int, Any] = {}
        for tensor, slots in zip(model.inputs, inputs, strict=True):
            slots_of[id(tensor)] = slots
        for node in _nodes_in_order(model):
            if any(id(t) not in slots_of for t in node.input_tensors):
                continue
            operation = node.operation
            path = prefix + str(getattr(operation, "name", type(operation).__name__))
            call = LayerCall(
                path=path,
                layer=operation,
                in_slots=[slots_of[id(t)] for t in node.input_tensors],
                in_shapes=[_shape(t) for t in node.input_tensors],
                out_shapes=[_shape(t) for t in node.outputs],
                args=(node.arguments.args, node.arguments.kwargs),
            )
            self.graph.layers.setdefault(path, operation)
            if _is_graph_model(operation):
                outs = self._trace_graph(_graph_of(operation), call.in_slots, prefix=f"{path}/")
            else:
                outs = self._trace_call(call)
            call.out_slots = list(outs)
            self.graph.calls[id(operation)].append(call)
            for tensor, slots in zip(node.outputs, outs, strict=True):
                slots_of[id(tensor)] = slots
        return [slots_of[id(t)] for t in model.outputs]

    def _trace_call(self, call: LayerCall) -> list[Any]:
        rule = rule_for(call.layer)
        class_name = type(call.layer).__name__
        if rule is not None and rule.mixing_reason is None:
            try:
                return rule.trace(self, call)
            except NotApplicable as why:
                reason, unknown = str(why), False
        elif rule is not None and rule.mixing_reason is not None:
            reason, unknown = rule.mixing_reason, False
        else:
            reason, unknown = "unknown layer type: its channels are left as they are", True
        self.graph.skipped.append(SkippedLayer(call.path, class_name, reason, unknown))
        for slots in call.in_slots:
            self.fix(slots, f"{call.path}: {reason}")
        return [self._fresh(shape, f"{call.path}: {reason}") for shape in call.out_shapes]

    def _fresh(self, shape: tuple[int | None, ...], reason: str) -> np.ndarray | None:
        if not shape or shape[-1] is None:
            return None
        ids = self.new_ids(int(shape[-1]))
        self.fix(ids, reason)
        return ids

    def _tie_shared_layers(self) -> None:
        """A layer called several times (a detection head shared by every FPN level) has
        one set of weights: channel k of each call is one channel, so the calls' inputs
        and outputs are tied. Calls whose channel counts differ keep their channels."""
        for calls in self.graph.calls.values():
            if len(calls) < 2:
                continue
            first = calls[0]
            chained = _chained(calls)
            if not chained and all(_same_widths(first, call) for call in calls[1:]):
                for call in calls[1:]:
                    pairs = zip(
                        [*first.in_slots, *(first.out_slots or [])],
                        [*call.in_slots, *(call.out_slots or [])],
                        strict=True,
                    )
                    for a, b in pairs:
                        if a is not None and b is not None:
                            self.tie(a, b)
                continue
            why = "on its own output" if chained else "with different channel counts"
            reason = f"{first.path} is called {len(calls)} times (shared weights) {why}"
            for call in calls:
                for slots in [*call.in_slots, *(call.out_slots or [])]:
                    self.fix(slots, reason)


def _chained(calls: list[LayerCall]) -> bool:
    """One call reads what another call of the same layer made (`shared(shared(x))`)."""
    made = [slots for call in calls for slots in call.out_slots or [] if slots is not None]
    return any(
        slots is not None and any(np.array_equal(slots, out) for out in made)
        for call in calls
        for slots in call.in_slots
    )


def _same_widths(a: LayerCall, b: LayerCall) -> bool:
    """Both calls carry known channel ids of the same counts on every input and output."""
    left = [*a.in_slots, *(a.out_slots or [])]
    right = [*b.in_slots, *(b.out_slots or [])]
    return len(left) == len(right) and all(
        x is not None and y is not None and len(x) == len(y)
        for x, y in zip(left, right, strict=True)
    )


def trace_channels(model: Any) -> ChannelGraph:
    """Trace `model` (Functional or Sequential, nested models included) into a ChannelGraph."""
    check_has_graph(model)
    return ChannelTracer(model).trace()


def apply_exclusions(graph: ChannelGraph, patterns: tuple[str, ...]) -> dict[str, list[str]]:
    """Fix the output channels of every layer matching a glob; unmatched globs are a UserError."""
    matches: dict[str, list[str]] = {}
    for pattern in patterns:
        hit = [
            path
            for path in graph.layers
            if fnmatch.fnmatchcase(path, pattern)
            or fnmatch.fnmatchcase(path.split("/")[-1], pattern)
        ]
        if not hit:
            examples = ", ".join(repr(p) for p in list(graph.sources)[:3])
            raise UserError(
                f"exclude {pattern!r} matches no layer; use layer names (globs allowed), "
                f"e.g. {examples}",
                params=("exclude",),
            )
        matches[pattern] = hit
    excluded = {p for paths in matches.values() for p in paths}
    for path, layer in graph.layers.items():
        inside = any(path == e or path.startswith(e + "/") for e in excluded)
        if not inside:
            continue
        for call in graph.calls.get(id(layer), []):
            for slots in call.out_slots or []:
                if slots is not None:
                    for item in np.unique(slots).tolist():
                        graph.fixed.setdefault(item, f"{path} is excluded")
    return matches


def check_has_graph(model: Any) -> None:
    """Refuse anything but a Functional or built Sequential model, with the fix in the message."""
    keras_model = _keras_model_class()
    if not isinstance(model, keras_model):
        raise UserError(
            f"expected a Keras model, got {type(model).__name__}; load it with "
            "keras.models.load_model or build it with keras.Model(inputs, outputs)"
        )
    if _is_sequential(model):
        if getattr(model, "_functional", None) is None:
            raise UserError(
                f"Sequential model {model.name!r} has no input shape yet; add keras.Input(shape=...) "
                "as its first layer or call model.build(input_shape) before pruning"
            )
        return
    if not _is_graph_model(model):
        raise UserError(
            f"model {model.name!r} is a subclassed keras.Model ({type(model).__name__}) with no "
            "layer graph to prune; rebuild it with the functional API "
            "(keras.Model(inputs, outputs)) or keras.Sequential"
        )


def _keras_model_class() -> Any:
    from edgeprune import _tf

    return _tf.keras().Model


def _is_sequential(model: Any) -> bool:
    return type(model).__name__ == "Sequential" and hasattr(model, "_functional")


def _is_graph_model(operation: Any) -> bool:
    """A Functional model, or a built Sequential (which wraps one)."""
    if _is_sequential(operation):
        return getattr(operation, "_functional", None) is not None
    return isinstance(getattr(operation, "_nodes_by_depth", None), dict) and hasattr(
        operation, "_run_through_graph"
    )


def _graph_of(model: Any) -> Any:
    return model._functional if _is_sequential(model) else model


def _nodes_in_order(model: Any) -> Iterator[Any]:
    """The model's call nodes, inputs first (the order Keras itself runs them in)."""
    by_depth = model._nodes_by_depth
    for depth in sorted(by_depth, reverse=True):
        for node in by_depth[depth]:
            if node.operation is None or node.is_input:
                continue
            yield node


def _shape(tensor: Any) -> tuple[int | None, ...]:
    return tuple(None if d is None else int(d) for d in tensor.shape)
