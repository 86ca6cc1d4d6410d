"""Can this board's runtime take XNNPACK's sparse path? (only what was measured says yes)

What was measured (2026-11, MobileNetV2-style model with 85 % zero 1x1 weights):
- x86 with AVX: XNNPACK never takes the sparse path ("dense is expected to be faster").
- ai-edge-litert 2.3 on ARMv8 (Cortex-A72 and A76): sparse path taken (about 3x).
- tflite-runtime 2.14 on ARM: only with fp16 arithmetic (`fphp`/`asimdhp`: Pi 5, Jetson
  Orin); not on a Pi 4 (A72) or Jetson Nano (A57).
Anything else is not claimed: `capable` is False and the reason says it was not measured.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

FP16_FEATURES = ("fphp", "asimdhp")
_X86 = ("x86_64", "amd64", "i386", "i686", "x86")
_ARM64 = ("aarch64", "arm64", "armv8l")

LITERT_FIX = "install ai-edge-litert (pip install ai-edge-litert), which takes it on any ARMv8 CPU"


def sparse_path_support(
    runtime_name: Optional[str],
    runtime_version: str,
    machine: str,
    cpu_features: Iterable[str],
) -> Dict[str, Any]:
    """{"capable": bool, "reason": str, "fix": str or None} for this runtime on this CPU."""
    features = set(cpu_features)
    machine = machine.lower()
    if runtime_name is None:
        return _answer(False, "no TFLite runtime is installed", "pip install ai-edge-litert")
    if machine in _X86:
        avx = "with AVX " if "avx" in features else ""
        return _answer(
            False,
            f"XNNPACK never takes the sparse path on x86 CPUs {avx}(dense is expected to be "
            "faster); sparse speed-ups only show on ARM",
            "measure sparse models on an ARM board",
        )
    if machine in _ARM64:
        if runtime_name == "ai_edge_litert":
            return _answer(
                True, f"ai-edge-litert {runtime_version} takes the sparse path on any ARMv8 CPU"
            )
        has_fp16 = all(f in features for f in FP16_FEATURES)
        label = "tflite-runtime" if runtime_name == "tflite_runtime" else "tensorflow.lite"
        if has_fp16:
            return _answer(
                True,
                f"{label} {runtime_version} takes the sparse path on CPUs with fp16 arithmetic "
                "(fphp/asimdhp), which this CPU has",
            )
        if runtime_name == "tflite_runtime":
            reason = (
                f"tflite-runtime {runtime_version} takes the sparse path only on CPUs with fp16 "
                "arithmetic (fphp/asimdhp: Pi 5, Jetson Orin); this CPU lacks it (e.g. Pi 4, "
                "Jetson Nano)"
            )
        else:
            reason = (
                f"tensorflow.lite {runtime_version} was not measured on an ARM CPU without fp16 "
                "arithmetic (fphp/asimdhp)"
            )
        return _answer(False, reason, LITERT_FIX)
    if machine.startswith("arm"):
        return _answer(
            False,
            f"XNNPACK's sparse path was not measured on 32-bit ARM ({machine})",
            "use a 64-bit OS and ai-edge-litert",
        )
    return _answer(False, f"XNNPACK's sparse path was not measured on {machine}", None)


def _answer(capable: bool, reason: str, fix: Optional[str] = None) -> Dict[str, Any]:
    return {"capable": capable, "reason": reason, "fix": fix}
