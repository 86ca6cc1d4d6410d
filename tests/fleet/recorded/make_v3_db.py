"""Make `results-v3.db`: a results DB exactly as edgeprune's schema v3 wrote it.

Run it with a schema-v3 checkout on PYTHONPATH (the last one was commit e2c2009), e.g.

    PYTHONPATH=/path/to/v3-checkout python tests/fleet/recorded/make_v3_db.py OUT.db

It drives that version's own CLI on the built-in `local` device, so every row is what the
v3 code stored: run 1 a bench of two tiny models (ok), run 2 a bench on a device nobody
answers (v3 left it empty), run 3 a recipe run that measured two variants, run 4 the same
recipe re-run with everything cached (v3 stored it with no measurement of its own).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
import textwrap
from pathlib import Path

RECIPE = """
name: tiny
model: {demo: true, width: 8, train: {epochs: 1}}
data: digits
pipelines:
  dense: {}
  pruned:
    prune: {method: oneshot, sparsity: 0.5}
devices: [local]
bench: {runs: 5, warmup: 0}
"""

UNREACHABLE = """
devices:
  - name: gone
    host: 127.0.0.1
    port: 9
    user: nobody
    connect_timeout: 2
    retries: 0
"""


def main(out: Path) -> None:
    from edgeprune.cli.app import run
    from edgeprune.results.store import SCHEMA_VERSION

    assert SCHEMA_VERSION == 3, "run this with a schema-v3 edgeprune on PYTHONPATH"
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from support.fixtures import build_tiny_tflite

    with tempfile.TemporaryDirectory() as temp:
        home = Path(temp)
        os.environ["XDG_DATA_HOME"] = str(home / "data")
        os.environ["XDG_CONFIG_HOME"] = str(home / "config")
        db = home / "results.db"
        a, b = home / "a.tflite", home / "b.tflite"
        build_tiny_tflite(a, units=3, seed=1)
        build_tiny_tflite(b, units=5, seed=2)
        (home / "devices.yaml").write_text(textwrap.dedent(UNREACHABLE))
        (home / "recipe.yaml").write_text(RECIPE)
        bench = ("bench", "--db", db, "--runs", "5", "--warmup", "0")
        assert run([str(x) for x in (*bench, a, b)]) == 0
        inventory = ("--inventory", home / "devices.yaml", "--device", "gone")
        assert run([str(x) for x in (*bench, *inventory, a)]) != 0
        recipe = ("run", home / "recipe.yaml", "--workdir", home / "work", "--db", db)
        assert run([str(x) for x in recipe]) == 0
        assert run([str(x) for x in recipe]) == 0
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode = DELETE")
        conn.close()
        shutil.copyfile(db, out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
