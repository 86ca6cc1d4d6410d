"""From a policy's candidates to the kernels actually pruned: globs, min_params, pattern fit.

Layer types (`include_types`, Keras class names such as ``Conv2D``) narrow the candidates
first; globs match a layer's path (``base/conv``), its bare name (``conv``) or its label
(``sep:pointwise_kernel``). `min_params` counts one kernel's weights, so a SeparableConv2D's
small depthwise kernel can be skipped while its pointwise kernel is pruned. With a pattern,
depthwise kernels are left dense (they have no input-channel axis to group along); a kernel
whose channel counts do not divide by the pattern is an error naming the layer.

Everything here only reads the model, so every mistake (a glob that matches nothing, a
pattern that does not fit a layer, nothing left to prune) is reported before any weight
changes.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeprune.errors import UserError
from edgeprune.prune.patterns import Pattern
from edgeprune.prune.policy import PRUNABLE_KERNELS, PrunePolicy, PruneTarget, get_policy

DEFAULT_MIN_PARAMS = 1024


@dataclass
class SkippedKernel:
    """A kernel the policy offered but that is left dense, and why."""

    layer: str
    class_name: str
    size: int
    reason: str
    zeros: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Selection:
    targets: list[PruneTarget]
    skipped: list[SkippedKernel]


def select_kernels(
    model: Any,
    *,
    policy: str | PrunePolicy = "all",
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    min_params: int = DEFAULT_MIN_PARAMS,
    pattern: Pattern | None = None,
    include_types: Sequence[str] | None = None,
) -> Selection:
    """The kernels to prune and the ones skipped, or a UserError before anything changes."""
    if isinstance(min_params, bool) or int(min_params) != min_params or min_params < 0:
        raise UserError(
            f"min_params {min_params!r} must be a whole number >= 0", params=("min_params",)
        )
    if not getattr(model, "built", True) or not model.weights:
        raise UserError(
            "the model has no weights yet (it was never built); give it an Input or call it on data first"
        )
    chosen = get_policy(policy)
    chosen.check_model(model)
    candidates = chosen.candidates(model)
    if not candidates:
        raise UserError(
            f"the model has no prunable layer (policy {chosen.name!r}: Conv2D, Dense, "
            "DepthwiseConv2D or SeparableConv2D kernels)"
        )
    types = layer_types(include_types or [])
    if types:
        present = sorted({t.class_name for t in candidates})
        missing = [name for name in types if name not in present]
        if missing:
            raise UserError(
                f"include_types {', '.join(missing)}: no prunable layer of that type here "
                f"(policy {chosen.name!r}); prunable types in this model: {', '.join(present)}",
                params=("include_types",),
            )
        candidates = [t for t in candidates if t.class_name in types]
    include = [g for g in include or [] if g]
    exclude = [g for g in exclude or [] if g]
    for option, globs in (("include", include), ("exclude", exclude)):
        for glob in globs:
            if not any(_matches(glob, t) for t in candidates):
                raise UserError(
                    f"{option} {glob!r} matches no prunable layer; prunable layers: "
                    f"{_some_names(candidates)}",
                    params=(option,),
                )
    if include:
        candidates = [t for t in candidates if any(_matches(g, t) for g in include)]
    candidates = [t for t in candidates if not any(_matches(g, t) for g in exclude)]

    targets: list[PruneTarget] = []
    skipped: list[SkippedKernel] = []
    for target in candidates:
        reason = _skip_reason(target, min_params, pattern)
        if reason is None:
            targets.append(target)
        else:
            values = np.asarray(target.variable.numpy())
            zeros = int(values.size - np.count_nonzero(values))
            skipped.append(
                SkippedKernel(target.label, target.class_name, target.size, reason, zeros)
            )
    if not targets:
        why = "; ".join(f"{s.layer}: {s.reason}" for s in skipped[:4]) or "all were excluded"
        raise UserError(
            f"no layer is left to prune ({why}); lower `min_params` or widen `include`",
            params=("min_params", "include"),
        )
    return Selection(targets, skipped)


def layer_types(names: Sequence[str]) -> list[str]:
    """Keras class names as written, matched case-insensitively (`conv2d` is `Conv2D`)."""
    known = {name.lower(): name for name in PRUNABLE_KERNELS}
    out: list[str] = []
    for raw in names:
        if not isinstance(raw, str) or not raw.strip():
            raise UserError(
                "include_types got an empty name; give a Keras layer type, e.g. Conv2D",
                params=("include_types",),
            )
        name = known.get(raw.strip().lower())
        if name is None:
            raise UserError(
                f"include_types {raw!r} is not a prunable layer type; choose from "
                f"{', '.join(PRUNABLE_KERNELS)}",
                params=("include_types",),
            )
        if name not in out:
            out.append(name)
    return out


def describe_skipped(skipped: Sequence[SkippedKernel], limit: int = 3) -> str:
    """'a: why; b: why and N more': which kernels stayed dense, short enough for one line."""
    shown = "; ".join(f"{s.layer}: {s.reason}" for s in skipped[:limit])
    rest = len(skipped) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown


def _skip_reason(target: PruneTarget, min_params: int, pattern: Pattern | None) -> str | None:
    dtype = str(getattr(target.variable, "dtype", "float32"))
    if not np.issubdtype(np.dtype(dtype), np.floating):
        return f"kernel is {dtype} (quantized); prune before quantizing"
    if getattr(target.layer, "lora_enabled", False):
        return "LoRA is enabled; merge the LoRA weights first"
    if target.size < min_params:
        return f"{target.size} weights < min-params {min_params}"
    if pattern is not None and not target.layout.has_channels:
        return f"depthwise kernel: pattern {pattern} needs an input-channel axis"
    if pattern is not None:
        problem = pattern.shape_problem(target.shape, target.layout)
        if problem:
            raise UserError(
                f"pattern {pattern} does not fit layer {target.label!r} (kernel {target.shape}): "
                f"{problem}; leave it out with `exclude` {target.layer_path!r}",
                params=("exclude",),
            )
    return None


def _matches(glob: str, target: PruneTarget) -> bool:
    names = (target.layer_path, target.layer_path.rsplit("/", 1)[-1], target.label)
    return any(fnmatch.fnmatchcase(name, glob) for name in names)


def _some_names(targets: Sequence[PruneTarget], limit: int = 8) -> str:
    names = list(dict.fromkeys(t.layer_path for t in targets))
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
