"""Which kernels may be pruned: a small, pluggable policy interface.

A policy looks at the whole model first (`check_model`, raising a UserError that names the
layer at fault) and then lists the kernels it allows (`candidates`). Generic filters
(include/exclude globs, min_params, pattern shape) are applied afterwards by
`edgeprune.prune.selection`, so a new policy only decides *which layers*. Register one
with `register_policy("name", factory)` or add ``"name": "module:Class"`` to `_POLICIES`
below; `prune_model(..., policy="name")` and `edgeprune prune --policy name` then find it.

Nested models are walked; a kernel's `layer_path` is ``outer/inner/layer``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from edgeprune.errors import UserError
from edgeprune.prune.patterns import CONV_LAYOUT, DENSE_LAYOUT, DEPTHWISE_LAYOUT, KernelLayout

# class name -> (weight name, layout) for the kernels pruning acts on.
PRUNABLE_KERNELS: dict[str, tuple[tuple[str, KernelLayout], ...]] = {
    "Conv2D": (("kernel", CONV_LAYOUT),),
    "Dense": (("kernel", DENSE_LAYOUT),),
    "DepthwiseConv2D": (("kernel", DEPTHWISE_LAYOUT),),
    "SeparableConv2D": (
        ("depthwise_kernel", DEPTHWISE_LAYOUT),
        ("pointwise_kernel", CONV_LAYOUT),
    ),
}


@dataclass(eq=False)
class PruneTarget:
    """One kernel variable that pruning may act on."""

    layer_path: str
    layer: Any
    weight_name: str
    variable: Any
    layout: KernelLayout

    @property
    def class_name(self) -> str:
        return type(self.layer).__name__

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.variable.shape)

    @property
    def size(self) -> int:
        size = 1
        for dim in self.shape:
            size *= dim
        return size

    @property
    def label(self) -> str:
        """`layer` for a layer's `kernel`, `layer:weight` otherwise (SeparableConv2D's two)."""
        if self.weight_name == "kernel":
            return self.layer_path
        return f"{self.layer_path}:{self.weight_name}"


def walk_layers(model: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, layer) for every leaf layer, descending into nested models and composite layers."""
    seen: set[int] = set()
    yield from _walk(model, prefix, seen)


def _walk(container: Any, prefix: str, seen: set[int]) -> Iterator[tuple[str, Any]]:
    children = container.layers if hasattr(container, "layers") else _sublayers(container)
    for layer in children:
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        path = f"{prefix}{layer.name}"
        inner = [] if type(layer).__name__ in PRUNABLE_KERNELS else _sublayers(layer)
        if hasattr(layer, "layers") or inner:
            yield from _walk(layer, f"{path}/", seen)
        else:
            yield path, layer


def _sublayers(layer: Any) -> list[Any]:
    flatten = getattr(layer, "_flatten_layers", None)
    return list(flatten(include_self=False, recursive=False)) if flatten else []


def kernel_variable(layer: Any, weight_name: str) -> Any | None:
    """The layer's variable called `weight_name` (e.g. 'kernel'), or None."""
    for weight in layer.weights:
        base = weight.path.rsplit("/", 1)[-1] if hasattr(weight, "path") else weight.name
        if base.split(":")[0] == weight_name:
            return weight
    return None


def prunable_kernels(model: Any) -> Iterator[PruneTarget]:
    """Every kernel of the prunable layer types (Conv2D, Dense, DepthwiseConv2D, SeparableConv2D).

    Matching is by class (subclasses included), so biases, BatchNormalization, Embedding
    and every other layer are never offered.
    """
    for path, layer in walk_layers(model):
        kernels = _kernel_spec(layer)
        for weight_name, layout in kernels:
            variable = kernel_variable(layer, weight_name)
            if variable is not None:
                yield PruneTarget(path, layer, weight_name, variable, layout)


def _kernel_spec(layer: Any) -> tuple[tuple[str, KernelLayout], ...]:
    for klass in type(layer).__mro__:
        if klass.__name__ in PRUNABLE_KERNELS and klass.__module__.startswith("keras"):
            return PRUNABLE_KERNELS[klass.__name__]
    return ()


class PrunePolicy(ABC):
    """Decides which kernels may be pruned; sees the whole model before anything changes."""

    name: str = ""

    def check_model(self, model: Any) -> None:  # noqa: B027 - optional hook
        """Raise a UserError naming the layer at fault when the model cannot follow the policy."""

    @abstractmethod
    def candidates(self, model: Any) -> list[PruneTarget]:
        """The kernels this policy allows, before include/exclude/min_params filters."""


class AllPrunableKernels(PrunePolicy):
    """The default: every Conv2D, Dense, DepthwiseConv2D and SeparableConv2D kernel."""

    name = "all"

    def candidates(self, model: Any) -> list[PruneTarget]:
        return list(prunable_kernels(model))


PolicyFactory = Callable[[], PrunePolicy] | str

# name -> a factory, or "module:attribute" imported on first use (so a policy that needs
# TensorFlow-heavy code costs nothing until it is asked for).
_POLICIES: dict[str, PolicyFactory] = {
    "all": AllPrunableKernels,
    "xnnpack": "edgeprune.xnnpack.policy:XnnpackSparsePolicy",  # 1x1 convs of sparse clusters
}


def register_policy(name: str, factory: PolicyFactory) -> None:
    """Make `policy=name` available to prune_model, the callback and the CLI."""
    _POLICIES[name] = factory


def policy_names() -> list[str]:
    return sorted(_POLICIES)


def get_policy(policy: str | PrunePolicy) -> PrunePolicy:
    """A policy instance from its name (or the instance itself)."""
    if isinstance(policy, PrunePolicy):
        return policy
    factory = _POLICIES.get(str(policy))
    if factory is None:
        raise UserError(
            f"policy {policy!r} is not known; choose from {', '.join(policy_names())}",
            params=("policy",),
        )
    if isinstance(factory, str):
        module_name, _, attribute = factory.partition(":")
        factory = getattr(importlib.import_module(module_name), attribute)
    return factory()
