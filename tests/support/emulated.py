"""The emulated boards of tools/emulated_board.py as test devices (used by tests/arm)."""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Board:
    """One emulated device: a board profile with one TFLite runtime."""

    profile: str
    runtime: str

    @property
    def name(self) -> str:
        return f"{self.profile}-{self.runtime}"

    @property
    def kind(self) -> str:
        return "jetson" if self.profile.startswith("jetson") else "raspberry_pi"

    @property
    def module(self) -> str:
        return self.runtime.replace("-", "_")


def emulated_board_tool() -> Any:
    spec = importlib.util.spec_from_file_location(
        "emulated_board", REPO / "tools" / "emulated_board.py"
    )
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["emulated_board"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def selected_boards() -> list[Board]:
    """Every profile x runtime, or those named in EDGEPRUNE_ARM_BOARDS (e.g. pi4-tflite-runtime)."""
    every = [Board(p, r) for p in TOOL.PROFILES for r in TOOL.RUNTIMES]
    wanted = [n.strip() for n in os.environ.get("EDGEPRUNE_ARM_BOARDS", "").split(",") if n.strip()]
    if not wanted:
        return every
    unknown = sorted(set(wanted) - {b.name for b in every})
    if unknown:
        raise pytest.UsageError(
            f"EDGEPRUNE_ARM_BOARDS names unknown boards {unknown}; "
            f"choose from {', '.join(b.name for b in every)}"
        )
    return [b for b in every if b.name in wanted]


TOOL = emulated_board_tool()
BOARDS = selected_boards()
