"""The user's own layers, which pruning leaves as they are and names in its report.

Pruning edits only the kernels of Keras' own prunable classes (and of user subclasses of
them, whose kernel keeps the parent's meaning). A custom layer's `kernel` may be used in
any way its `call` likes (transposed, shared, as a gate), so zeroing its smallest values is
not known to be safe: such layers are left alone and listed, with their parameter count,
so a user sees what stayed dense.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edgeprune.prune.policy import PRUNABLE_KERNELS, walk_layers

WHY = "custom layer: its weights are left as they are (prune edits Keras' own layer kernels)"


@dataclass(frozen=True)
class UnknownLayer:
    layer: str
    class_name: str
    params: int
    reason: str = WHY

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_custom(layer: Any) -> bool:
    """A layer class that is not Keras' own nor a subclass of a prunable Keras class."""
    for klass in type(layer).__mro__:
        if klass.__name__ in PRUNABLE_KERNELS and klass.__module__.startswith("keras"):
            return False
    return not type(layer).__module__.startswith(("keras", "tf_keras", "tensorflow"))


def unknown_layers(model: Any) -> list[UnknownLayer]:
    """Every custom layer of `model` (nested models included), in model order."""
    found = []
    for path, layer in walk_layers(model):
        if is_custom(layer):
            params = sum(int(_size(w.shape)) for w in layer.weights)
            found.append(UnknownLayer(path, type(layer).__name__, params))
    return found


def _size(shape: Any) -> int:
    total = 1
    for dim in shape:
        total *= int(dim)
    return total
