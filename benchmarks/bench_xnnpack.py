"""XNNPACK's sparse path, measured: the same weights stored dense vs sparse (`bench --sparse-ab`).

The user's flow end to end: Keras' stock MobileNetV2 (alpha 0.35, 96x96, weights=None) ->
`xnnpack-fix` -> `prune --policy xnnpack` to 85 % -> both storages -> deploy + bench through
the fleet code. Measured on

- `local` (this host): on x86 with AVX XNNPACK never takes the sparse path, so the ratio
  is ~1.0 by design (no goal);
- an emulated Raspberry Pi 5 (arm64 userland under qemu, tools/emulated_board.py, with
  ai-edge-litert), when that userland is built: the sparse path is real there. Wall-clock
  under emulation is slow, only the ratio means anything (goal >= 1.5: below it the sparse path is not worth a pruning run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import Ratio

REPO = Path(__file__).resolve().parent.parent
SPARSITY = 0.85


def _pruned_model(folder: Path) -> Path:
    from edgeprune import _tf
    from edgeprune.prune import prune_model
    from edgeprune.xnnpack.fix import fix_model

    keras = _tf.keras()
    stock = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10
    )
    fixed = fix_model(stock).model
    prune_model(fixed, SPARSITY, policy="xnnpack")
    path = folder / "mobilenet_v2_fixed_p85.keras"
    fixed.save(path)
    return path


def _emulated_pi5() -> Any | None:
    """A `local`-kind device whose agent runs as arm64 code, if the userland is cached."""
    from edgeprune.fleet.inventory import Device

    tool = REPO / "tools" / "emulated_board.py"
    if not tool.exists():
        return None
    done = subprocess.run(
        [sys.executable, str(tool), "python", "pi5", "ai-edge-litert"],
        capture_output=True,
        text=True,
        check=False,
    )
    wrapper = done.stdout.strip()
    if done.returncode != 0 or not wrapper or not Path(wrapper).exists():
        return None
    spool = tempfile.mkdtemp(prefix="emulated-pi5-spool-")
    return Device(name="emulated-pi5", kind="local", python=wrapper, spool=spool, retries=0)


def run() -> list[Ratio]:
    from device_agents.protocol import BenchOptions
    from edgeprune.fleet.inventory import local_device
    from edgeprune.results.store import ResultsStore
    from edgeprune.xnnpack.sparse_ab import make_pairs, run_sparse_ab

    os.environ["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pairs = make_pairs([str(_pruned_model(folder))], folder / "pairs")
        store = ResultsStore(str(folder / "results.db"))
        targets = [(local_device(), BenchOptions(threads=[1], runs=30, warmup=3), None)]
        emulated = _emulated_pi5()
        if emulated is not None:
            targets.append((emulated, BenchOptions(threads=[1], runs=5, warmup=1), 1.5))
        for device, options, goal in targets:
            report, _ = run_sparse_ab(pairs, [device], options, store)
            for row in report.rows:
                if row.speedup is None:
                    continue
                ratios.append(
                    Ratio(
                        f"sparse speed-up, MobileNetV2-0.35-96 at 85 % 1x1 zeros, {device.name}",
                        row.speedup,
                        goal=goal,
                        higher_is_better=True,
                        detail={
                            "dense_p50_ms": row.dense_p50_ms,
                            "sparse_p50_ms": row.sparse_p50_ms,
                            "runtime": row.runtime,
                            "sparse_path_capable": row.sparse_path_capable,
                            "eligible": pairs[0].eligible,
                        },
                    )
                )
    return ratios
