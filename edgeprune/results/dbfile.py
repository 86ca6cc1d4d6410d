"""Which SQLite file is edgeprune's, and opening it without touching anyone else's.

An edgeprune DB carries `PRAGMA application_id = APPLICATION_ID` from its creation; one made
by an earlier version has no mark but has the `runs` and `measurements` tables, and is
marked on its next write. Any other SQLite file is refused before anything is written to
it. Readers open with `mode=ro`, so a read-only command cannot change a file; a new DB is
created 0600 (SQLite gives its -wal and -shm files the same mode).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

APPLICATION_ID = 0x45505253  # "EPRS": edgeprune results store
OUR_TABLES = frozenset({"runs", "measurements"})


@dataclass(frozen=True)
class Identity:
    """What a DB file is: `kind` is "ours", "legacy" (ours, unmarked), "empty" or "foreign"."""

    kind: str
    version: int


def create_private(path: Path) -> None:
    """An empty file readable by its owner only; an existing file is left as it is."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def connect(path: Path, *, readonly: bool, timeout: float) -> sqlite3.Connection:
    """A connection that never creates the file; `readonly` ones cannot write to it."""
    uri = path.absolute().as_uri() + ("?mode=ro" if readonly else "?mode=rw")
    return sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)


def identify(conn: sqlite3.Connection) -> Identity:
    """Read the mark, the schema version and the table names; writes nothing."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if app_id == APPLICATION_ID:
        return Identity("ours", version)
    if app_id != 0:
        return Identity("foreign", version)
    if tables >= OUR_TABLES:
        return Identity("legacy", version)
    if not tables:
        return Identity("empty", version)
    return Identity("foreign", version)
