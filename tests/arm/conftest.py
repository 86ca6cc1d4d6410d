"""Emulated Raspberry Pi and Jetson boards (arm64 code under qemu user-mode) behind real sshd.

Every (profile, runtime) of tools/emulated_board.py becomes one device of one SshdFleet:
its `python` is the board's wrapper, its `kind` raspberry_pi or jetson. `agent install`,
`deploy` and `bench` then run the agent as arm64 code end to end, over SSH, exactly as on
a board. The userland is built once and cached (~/.cache/edgeprune/arm64, about 25 s and
260 MB the first time; it needs qemu-user-static and the Debian/PyPI mirrors).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cache_keys import source_key
from support.emulated import BOARDS, REPO, TOOL
from support.fixtures import tiny_tflite  # noqa: F401
from support.sshd import DeviceSpec, SshdFleet, sshd_available

PRUNE_SPARSITY = 0.85


def _require_tools() -> None:
    """`make test-arm` was asked for: a missing emulator is a failure, not a skip."""
    if not shutil.which("qemu-aarch64-static") and not shutil.which("qemu-aarch64"):
        pytest.fail("qemu-aarch64-static is not installed: apt-get install -y qemu-user-static")
    if not sshd_available():
        pytest.fail("OpenSSH server is not installed: apt-get install -y openssh-server")


@pytest.fixture(scope="session")
def board_wrappers() -> dict[str, Path]:
    """Board name -> its python wrapper (built on first use, then cached between runs)."""
    _require_tools()
    return {board.name: Path(TOOL.ensure(board.profile, board.runtime)) for board in BOARDS}


def _agent_env() -> dict[str, str]:
    """The agent's switches given to this run (EDGEPRUNE_AGENT_FORK=0: no fork server), so
    an A/B of the agent's own modes can run on the same boards."""
    return {k: os.environ[k] for k in ("EDGEPRUNE_AGENT_FORK",) if k in os.environ}


@pytest.fixture(scope="session")
def emulated_fleet(
    board_wrappers: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SshdFleet]:
    """One sshd per board; the agent installed on all of them (`agent install --all`)."""
    specs = [
        DeviceSpec(
            name=board.name,
            tags=["emulated", board.profile, board.runtime],
            python=str(board_wrappers[board.name]),
            kind=board.kind,
            env=_agent_env(),
        )
        for board in BOARDS
    ]
    fleet = SshdFleet.start(tmp_path_factory.mktemp("arm-fleet"), len(specs), devices=specs)
    try:
        yield fleet
    finally:
        fleet.close()


@pytest.fixture(scope="session")
def xnnpack_pruned_model(cached_artifact) -> Path:
    """Keras' stock MobileNetV2 (alpha 0.35, 96x96, weights=None) made XNNPACK-eligible by
    `xnnpack-fix` and pruned to 85 % by `prune --policy xnnpack`, both through the CLI."""
    from edgeprune.cli.app import run

    def build(path: Path) -> None:
        from edgeprune import _tf

        keras = _tf.keras()
        keras.utils.set_random_seed(0)
        work = path.parent / (path.name + ".work")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        stock = keras.applications.MobileNetV2(
            input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10
        )
        stock.save(work / "stock.keras")
        assert run(["xnnpack-fix", str(work / "stock.keras"), "-o", str(work / "fixed.keras")]) == 0
        pruned = work / "pruned.keras"
        code = run(
            [
                "prune",
                str(work / "fixed.keras"),
                "-o",
                str(pruned),
                "--policy",
                "xnnpack",
                "--sparsity",
                str(PRUNE_SPARSITY),
            ]
        )
        assert code == 0
        shutil.move(str(pruned), str(path))
        shutil.rmtree(work, ignore_errors=True)

    key = source_key("edgeprune/xnnpack/fix.py", "edgeprune/xnnpack/policy.py")
    # A .keras name so the CLI sees a Keras model (the cache adds its key in front).
    return cached_artifact("mobilenetv2-xnnpack-p85.keras", key, build)


SESSION_STARTED = time.time()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The sparse A/B table (the figures that show ARM's sparse speed-up), when this run measured it."""
    figures = REPO / "build" / "arm-sparse-ab.json"
    if not figures.exists() or figures.stat().st_mtime < SESSION_STARTED:
        return
    terminalreporter.section("sparse A/B on emulated boards (dense p50 / sparse p50)")
    for row in json.loads(figures.read_text()):
        terminalreporter.write_line(
            f"{row['board']:12} {row['runtime']:22} dense {row['dense_p50_ms']:9.1f} ms  "
            f"sparse {row['sparse_p50_ms']:9.1f} ms  {row['speedup']:5.2f}x  "
            f"(expected {row['expected']})"
            + (
                f"  attempts {', '.join(f'{a:.2f}x' for a in row['attempts'])}"
                if len(row.get("attempts", [])) > 1
                else ""
            )
        )
