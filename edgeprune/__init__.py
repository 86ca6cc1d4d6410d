"""edgeprune: Keras 3 model → pruned, quantized TFLite → measured on real edge boards.

    import edgeprune as ep
    pruned = ep.prune(model, sparsity=0.8)          # a new model; `model` is left as it was
    q = ep.convert(pruned.model, "int8.tflite", quantize="int8", data="digits")
    run = ep.bench([q.path], devices="local", runs=50)
    print(ep.compare(run))

Every name in `__all__` is imported on first use, so `import edgeprune` stays fast and pulls
in neither TensorFlow, Keras nor paramiko. The verb `edgeprune.prune` is the function; the
pruning package of the same name stays importable as `from edgeprune.prune import ...`.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and editors see; at run time each loads on first use
    from edgeprune.api.adapt import adapt
    from edgeprune.api.fleet import Device, bench, compare, deploy, load_inventory
    from edgeprune.api.models import convert, evaluate, inspect
    from edgeprune.api.quant import quant_report
    from edgeprune.api.recipes import load_recipe, run_recipe
    from edgeprune.api.results import (
        AdaptResult,
        BenchResult,
        Comparison,
        ConvertResult,
        EvaluateResult,
        InspectResult,
        PruneResult,
    )
    from edgeprune.api.transforms import prune, prune_channels, qat, xnnpack_fix
    from edgeprune.errors import UserError

__version__ = "0.1.0"

_API = {
    "prune": "edgeprune.api.transforms",
    "prune_channels": "edgeprune.api.transforms",
    "qat": "edgeprune.api.transforms",
    "xnnpack_fix": "edgeprune.api.transforms",
    "adapt": "edgeprune.api.adapt",
    "AdaptResult": "edgeprune.api.results",
    "convert": "edgeprune.api.models",
    "inspect": "edgeprune.api.models",
    "evaluate": "edgeprune.api.models",
    "quant_report": "edgeprune.api.quant",
    "deploy": "edgeprune.api.fleet",
    "bench": "edgeprune.api.fleet",
    "compare": "edgeprune.api.fleet",
    "Device": "edgeprune.api.fleet",
    "load_inventory": "edgeprune.api.fleet",
    "run_recipe": "edgeprune.api.recipes",
    "load_recipe": "edgeprune.api.recipes",
    "PruneResult": "edgeprune.api.results",
    "ConvertResult": "edgeprune.api.results",
    "InspectResult": "edgeprune.api.results",
    "EvaluateResult": "edgeprune.api.results",
    "BenchResult": "edgeprune.api.results",
    "Comparison": "edgeprune.api.results",
    "UserError": "edgeprune.errors",
}
"""Public name -> module that defines it."""

_OPTIONS = {
    "PruneOptions": "prune",
    "ChannelOptions": "channels",
    "QatOptions": "qat",
    "AdaptOptions": "adapt",
    "FixOptions": "xnnpack_fix",
    "ConvertOptions": "convert",
    "EvaluateOptions": "evaluate",
    "BenchOptions": "bench",
    "DeployOptions": "deploy",
    "ConstraintOptions": "constraints",
    "ComputeOptions": "compute",
    "QuantReportOptions": "quant_report",
}
"""Each stage's options class -> its stage; the module comes from `edgeprune.options.STAGES`
(read on first use: that module imports pydantic, which `import edgeprune` must not)."""

_LAZY = {**_API, **_OPTIONS}

__all__ = [
    "AdaptOptions",
    "AdaptResult",
    "BenchOptions",
    "BenchResult",
    "ChannelOptions",
    "Comparison",
    "ComputeOptions",
    "ConstraintOptions",
    "ConvertOptions",
    "ConvertResult",
    "DeployOptions",
    "Device",
    "EvaluateOptions",
    "EvaluateResult",
    "FixOptions",
    "InspectResult",
    "PruneOptions",
    "PruneResult",
    "QatOptions",
    "QuantReportOptions",
    "UserError",
    "adapt",
    "bench",
    "compare",
    "convert",
    "deploy",
    "evaluate",
    "inspect",
    "load_inventory",
    "load_recipe",
    "prune",
    "prune_channels",
    "qat",
    "quant_report",
    "run_recipe",
    "xnnpack_fix",
]


def __getattr__(name: str) -> Any:
    if name in _OPTIONS:
        from edgeprune.options import STAGES

        module = STAGES[_OPTIONS[name]].split(":")[0]
    elif name in _API:
        module = _API[name]
    else:
        raise AttributeError(f"module 'edgeprune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolved once; later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]


class _Package(types.ModuleType):
    """Keeps a public verb from being replaced by a subpackage of the same name.

    Importing `edgeprune.prune` (the pruning package) would otherwise set the attribute
    `edgeprune.prune` to that package and hide the verb `prune`.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return  # the submodule stays reachable through sys.modules and `from ... import`
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
