"""Which TFLite runtime runs the model: chosen at run time, never imported at module level.

Order of preference: `ai_edge_litert` (LiteRT, the maintained one), `tflite_runtime` (last
release 2.14, still what many boards have), then `tensorflow.lite` (heavy; last resort).
Finding and naming a runtime uses import specs and package metadata only, so `doctor` and
the daemon stay light; the runtime itself is imported in the benchmark child.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

RUNTIME_ORDER = ("ai_edge_litert", "tflite_runtime", "tensorflow")
_DISTRIBUTIONS = {
    "ai_edge_litert": ("ai-edge-litert", "ai-edge-litert-nightly"),
    "tflite_runtime": ("tflite-runtime", "tflite-runtime-nightly"),
    "tensorflow": (
        "tensorflow",
        "tensorflow-cpu",
        "tensorflow-aarch64",
        "tensorflow-intel",
        "tf-nightly",
    ),
}
INSTALL_HINT = {
    "ai_edge_litert": "pip install ai-edge-litert",
    "tflite_runtime": "pip install tflite-runtime (needs numpy<2)",
    "tensorflow": "pip install tensorflow",
}


class RuntimeNotAvailable(RuntimeError):
    """No usable runtime, or not the one asked for; the message names how to install it."""


@dataclass
class RuntimeInfo:
    name: str
    version: str

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version}


def is_installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def available_runtimes() -> List[str]:
    return [name for name in RUNTIME_ORDER if is_installed(name)]


def runtime_version(name: str) -> str:
    """The installed distribution's version, read from metadata without importing it."""
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python 3.8 has it
        return "unknown"
    for dist in _DISTRIBUTIONS.get(name, ()):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        except Exception:  # a broken METADATA file must not break the agent
            continue
    return "unknown"


def installed_runtime(forced: Optional[str] = None) -> Optional[str]:
    """The name `select_runtime` would choose, from import specs alone (no metadata read:
    that costs 0.2 s here, seconds on a Pi), or None when it would fail."""
    if forced is not None:
        return forced if forced in RUNTIME_ORDER and is_installed(forced) else None
    for name in RUNTIME_ORDER:
        if is_installed(name):
            return name
    return None


def select_runtime(forced: Optional[str] = None) -> RuntimeInfo:
    """The runtime a benchmark will use: `forced` if given, else the first one installed."""
    if forced is not None:
        if forced not in RUNTIME_ORDER:
            raise RuntimeNotAvailable(
                f"runtime {forced!r} is unknown; choose one of {', '.join(RUNTIME_ORDER)}"
            )
        if not is_installed(forced):
            raise RuntimeNotAvailable(
                f"runtime {forced} is not installed here; install it with: {INSTALL_HINT[forced]}"
            )
        return RuntimeInfo(forced, runtime_version(forced))
    for name in RUNTIME_ORDER:
        if is_installed(name):
            return RuntimeInfo(name, runtime_version(name))
    raise RuntimeNotAvailable(
        "no TFLite runtime is installed; install one with: pip install ai-edge-litert "
        "(or tflite-runtime, or tensorflow)"
    )


def describe_runtime(forced: Optional[str] = None) -> dict:
    """{"name", "version"} of the runtime a job would use; never raises (for error results)."""
    try:
        return select_runtime(forced).to_dict()
    except RuntimeNotAvailable as exc:
        return {"name": None, "version": None, "error": str(exc)}


def interpreter_api(name: str) -> Tuple[Any, Any]:
    """(Interpreter class, OpResolverType enum) of a runtime; imports it (seconds on a Pi)."""
    if name == "ai_edge_litert":
        module = importlib.import_module("ai_edge_litert.interpreter")
        return module.Interpreter, module.OpResolverType
    if name == "tflite_runtime":
        module = importlib.import_module("tflite_runtime.interpreter")
        return module.Interpreter, module.OpResolverType
    if name == "tensorflow":
        tf = importlib.import_module("tensorflow")
        return tf.lite.Interpreter, tf.lite.experimental.OpResolverType
    raise RuntimeNotAvailable(f"runtime {name!r} is unknown")


def create_interpreter(
    interpreter_cls: Any, resolver_enum: Any, model_content: bytes, threads: int, xnnpack: bool
) -> Any:
    """An interpreter with XNNPACK (the default delegate) on, or off via the op resolver.

    All three runtimes share this constructor: BUILTIN_WITHOUT_DEFAULT_DELEGATES keeps the
    built-in kernels and skips the default XNNPACK delegate.
    """
    resolver = resolver_enum.AUTO if xnnpack else resolver_enum.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return interpreter_cls(
        model_content=model_content,
        num_threads=threads,
        experimental_op_resolver_type=resolver,
    )
