"""`tools/table_statistics.py` refuses anything but a kept bench_adapt work dir, in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "table_statistics.py"


@pytest.mark.parametrize("args", [[], ["{tmp}"], ["{tmp}", "{tmp}"]])
def test_a_dir_without_results_is_one_usage_line_and_exit_2(tmp_path, args):
    done = subprocess.run(
        [sys.executable, str(TOOL), *(a.format(tmp=tmp_path) for a in args)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "usage: python tools/table_statistics.py BENCH_ADAPT_WORK (a kept bench_adapt work "
        "dir, with results.db and base.keras)"
    ]
    assert list(tmp_path.iterdir()) == []  # it reads; it writes nothing
