"""`make bench`: run every benchmarks/bench_*.py (or those named) and print their ratios.

Each module exposes `run() -> list[Ratio]`. Exit code 0 even when a goal is missed: a
benchmark reports, it does not gate.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

from benchmarks.common import Ratio


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument(
        "names", nargs="*", help="bench modules to run (e.g. prune convert); default all"
    )
    parser.add_argument("--json", action="store_true", help="print the ratios as JSON too")
    args = parser.parse_args()
    here = Path(__file__).parent
    modules = sorted(
        m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_")
    )
    if args.names:
        wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in args.names}
        unknown = wanted - set(modules)
        if unknown:
            print(
                f"error: unknown benchmark(s) {', '.join(sorted(unknown))}; have {', '.join(modules)}",
                file=sys.stderr,
            )
            return 2
        modules = [m for m in modules if m in wanted]
    rows: list[Ratio] = []
    for name in modules:
        start = time.perf_counter()
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        for ratio in module.run():
            rows.append(ratio)
            print("  " + ratio.line(), flush=True)
        print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)
    if args.json:
        print(json.dumps([r.__dict__ | {"met": r.met} for r in rows], indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
