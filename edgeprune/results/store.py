"""The results store: every measurement ever brought home, in one SQLite file.

WAL mode and a busy timeout let two `bench` commands write at once; creating and
migrating a fresh DB is retried while another command does the same. A DB that stays
locked, is corrupt, is another program's file (see `dbfile`) or comes from a newer
edgeprune is a one-line UserError. The schema is versioned with `PRAGMA user_version`.
One row per (device, job, thread count): storing the same result twice (a retry after a
lost `ack`) changes nothing. A row's `result_json` is the agent's result without its raw
latencies, which are stored once per measurement in `latencies` as a compact blob and put
back when a row is read `with_json`.

Schema v4 says what became of each run: its `kind` (bench / recipe), `status` (running,
ok, failed, interrupted, cached) and `error`, so a bench that failed is stored as a failure
and not as an empty run; and `reused` lists the measurements (device, job) of earlier runs
that a run reused instead of measuring again (a cached recipe run), which `show` and
`compare` read as that run's rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from device_agents.protocol import Result
from edgeprune.errors import UserError
from edgeprune.paths import data_dir
from edgeprune.results import dbfile, latency_blob
from edgeprune.results.rows import ModelInfo, latency_rows, rows_of_result

SCHEMA_VERSION = 4
DB_ENV = "EDGEPRUNE_RESULTS_DB"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    command TEXT NOT NULL DEFAULT '',
    options_json TEXT NOT NULL DEFAULT '{}',
    kind TEXT NOT NULL DEFAULT 'bench',
    status TEXT NOT NULL DEFAULT 'ok',
    error TEXT,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    device TEXT NOT NULL,
    job_id TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    model_name TEXT NOT NULL,
    threads INTEGER NOT NULL,
    xnnpack INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    p50_ms REAL, p90_ms REAL, p99_ms REAL, mean_ms REAL, std_ms REAL, min_ms REAL,
    runs INTEGER,
    p50_lo_ms REAL, p50_hi_ms REAL, p90_lo_ms REAL, p90_hi_ms REAL,
    group_id TEXT,
    init_ms REAL, first_invoke_ms REAL, peak_rss_kb INTEGER,
    size_bytes INTEGER, gzip_bytes INTEGER, quantization TEXT, sparsity REAL,
    accuracy REAL, accuracy_source TEXT,
    runtime TEXT, runtime_version TEXT, sparse_path INTEGER,
    device_model TEXT, warnings TEXT,
    started_at REAL, finished_at REAL,
    result_json TEXT NOT NULL,
    UNIQUE (device, job_id, threads, xnnpack)
);
CREATE INDEX IF NOT EXISTS measurements_run ON measurements(run_id);
CREATE INDEX IF NOT EXISTS measurements_model ON measurements(model_sha256);
CREATE TABLE IF NOT EXISTS latencies (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    device TEXT NOT NULL,
    job_id TEXT NOT NULL,
    measurement INTEGER NOT NULL,
    count INTEGER NOT NULL,
    encoding TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (device, job_id, measurement)
);
CREATE TABLE IF NOT EXISTS reused (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    device TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (run_id, device, job_id)
);
"""
_RETRY_SLEEP = 0.02

ADDED_COLUMNS = {
    3: (
        ("p50_lo_ms", "REAL"),
        ("p50_hi_ms", "REAL"),
        ("p90_lo_ms", "REAL"),
        ("p90_hi_ms", "REAL"),
        ("group_id", "TEXT"),
    ),
}
"""Columns each schema version added to `measurements`: what migrating an older DB adds
(its old rows read NULL there), and what reading one read-only fills with NULL."""

ADDED_RUN_COLUMNS = {
    4: (
        ("kind", "TEXT NOT NULL DEFAULT 'bench'"),
        ("status", "TEXT NOT NULL DEFAULT 'ok'"),
        ("error", "TEXT"),
        ("finished_at", "REAL"),
    ),
}
"""Columns each schema version added to `runs` (a DB read read-only without them reads the
defaults: bench, ok)."""

RUN_KINDS = ("bench", "recipe")
RUN_STATUSES = ("running", "ok", "failed", "interrupted", "cached")
RECIPE_COMMAND = "run"
"""The `command` of runs `edgeprune run` made (their kind is recipe)."""

COLUMNS = (
    "id",
    "run_id",
    "device",
    "job_id",
    "model_sha256",
    "model_name",
    "threads",
    "xnnpack",
    "status",
    "error",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "std_ms",
    "min_ms",
    "runs",
    "p50_lo_ms",
    "p50_hi_ms",
    "p90_lo_ms",
    "p90_hi_ms",
    "group_id",
    "init_ms",
    "first_invoke_ms",
    "peak_rss_kb",
    "size_bytes",
    "gzip_bytes",
    "quantization",
    "sparsity",
    "accuracy",
    "accuracy_source",
    "runtime",
    "runtime_version",
    "sparse_path",
    "device_model",
    "warnings",
    "started_at",
    "finished_at",
)


class StoreLocked(UserError):
    """Another process held the DB for longer than the busy timeout."""


DB_FILE = "results.db"


def default_db_path() -> Path:
    """`$EDGEPRUNE_RESULTS_DB`, else <data dir>/results.db (XDG_DATA_HOME respected)."""
    return chosen_db_path(None)


def chosen_db_path(
    db: str | os.PathLike[str] | None, home: str | os.PathLike[str] | None = None
) -> Path:
    """The DB a command uses: `db` when given, else `$EDGEPRUNE_RESULTS_DB`, else results.db
    in `home` (a recipe's work dir, so a project's runs are its own), else the machine's
    (<data dir>/results.db)."""
    if db is not None:
        return Path(db).expanduser()
    env = os.environ.get(DB_ENV)
    if env:
        return Path(env).expanduser()
    return Path(home).expanduser() / DB_FILE if home is not None else data_dir() / DB_FILE


class ResultsStore:
    """Open with `ResultsStore(path)`; every method opens its own short connection (thread-safe).

    `create=False` is for readers: the file must exist, is opened read-only and is never
    migrated (a DB of the previous version is read as it is).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        create: bool = True,
        busy_timeout: float = 15.0,
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else default_db_path()
        self.busy_timeout = busy_timeout
        self.readonly = not create
        self._shared: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        if self.path.is_dir():
            raise UserError(f"results DB {str(self.path)!r} is a directory; give a file name")
        if not self.path.exists():
            if not create:
                raise UserError(
                    f"no results yet: {str(self.path)!r} does not exist (run edgeprune bench "
                    f"first, or pass --db; edgeprune run keeps a recipe's runs in its work dir's "
                    f"{DB_FILE})"
                )
            if self.path == default_db_path():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            elif not self.path.parent.is_dir():
                raise UserError(
                    f"results DB directory {str(self.path.parent)!r} does not exist; create it first"
                )
            try:
                dbfile.create_private(self.path)
            except OSError as exc:
                raise UserError(
                    f"results DB {str(self.path)!r} cannot be created ({exc.strerror}); "
                    "check the directory's permissions or pass --db"
                ) from None
        self._prepare()

    @classmethod
    def in_memory(cls) -> ResultsStore:
        """A store that lives as long as this object (results kept, no file written)."""
        store = cls.__new__(cls)
        store.path = Path(":memory:")
        store.busy_timeout = 0.0
        store.readonly = False
        store._lock = threading.Lock()
        store._shared = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        store._shared.row_factory = sqlite3.Row
        with store._connect() as conn:
            store._migrate(conn)
        return store

    @property
    def persistent(self) -> bool:
        """False for `in_memory()`: nothing is written to disk."""
        return self._shared is None

    # ------------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if self._shared is not None:  # one connection, one caller at a time
            with self._lock:
                yield self._shared
            return
        started = time.monotonic()
        try:
            conn = dbfile.connect(self.path, readonly=self.readonly, timeout=self.busy_timeout)
        except sqlite3.Error as exc:
            raise self._friendly(exc, time.monotonic() - started) from None
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            yield conn
        except sqlite3.Error as exc:
            raise self._friendly(exc, time.monotonic() - started) from None
        finally:
            conn.close()

    def _prepare(self) -> None:
        """Check the file is ours and (for writers) create or migrate it, retrying while
        another command holds it, up to `busy_timeout` in all."""
        started = time.monotonic()
        while True:
            try:
                with self._connect() as conn:
                    self._migrate(conn)
                return
            except StoreLocked:
                waited = time.monotonic() - started
                if waited >= self.busy_timeout:
                    raise self._locked(waited) from None
                time.sleep(_RETRY_SLEEP)

    def _locked(self, waited: float) -> StoreLocked:
        """The time really spent (SQLite's busy handler may give up a little early or late)."""
        waited = min(waited, self.busy_timeout)
        return StoreLocked(
            f"results DB {str(self.path)!r} is locked by another process "
            f"(waited {round(waited, 1):g} s); try again when it has finished"
        )

    def _friendly(self, exc: sqlite3.Error, waited: float = 0.0) -> UserError:
        text = str(exc)
        where = f"results DB {str(self.path)!r}"
        if "locked" in text or "busy" in text:
            return self._locked(waited)
        if isinstance(exc, sqlite3.DatabaseError) and (
            "not a database" in text or "malformed" in text or "corrupt" in text
        ):
            return UserError(
                f"{where} is corrupt or not a SQLite file ({text}); move it away "
                f"(mv {self.path} {self.path}.bad) and a new one is made"
            )
        if "readonly" in text or "unable to open" in text:
            return UserError(
                f"{where} cannot be written ({text}); check its permissions or pass --db"
            )
        return UserError(f"{where}: {text}")

    def _check(self, conn: sqlite3.Connection) -> dbfile.Identity:
        """Refuse another program's file and a newer schema; writes nothing."""
        identity = dbfile.identify(conn)
        where = f"results DB {str(self.path)!r}"
        if identity.kind == "foreign":
            raise UserError(
                f"{str(self.path)!r} is not an edgeprune results DB (another program's SQLite "
                "file; it was left untouched); pass --db with a new or an edgeprune file"
            )
        if identity.version > SCHEMA_VERSION:
            raise UserError(
                f"{where} has schema version {identity.version}, newer than this "
                f"edgeprune understands ({SCHEMA_VERSION}); upgrade edgeprune"
            )
        if self.readonly and identity.kind == "empty":
            raise UserError(
                f"no results yet: {str(self.path)!r} holds none (run edgeprune bench first, "
                "or pass --db)"
            )
        return identity

    def _migrate(self, conn: sqlite3.Connection) -> None:
        identity = self._check(conn)
        if self.readonly:
            return
        if identity.kind != "ours" or identity.version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                identity = self._check(conn)  # another command may have just done it
                if identity.kind != "ours" or identity.version < SCHEMA_VERSION:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    _add_columns(conn, "measurements", ADDED_COLUMNS)
                    if _add_columns(conn, "runs", ADDED_RUN_COLUMNS):
                        _backfill_run_outcomes(conn)
                    conn.execute(f"PRAGMA application_id = {dbfile.APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        # the switch needs every other connection gone for a moment: busy is retried by _prepare
        if (
            self._shared is None
            and conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal"
            and conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal"
        ):
            raise sqlite3.OperationalError("database is locked")

    # ------------------------------------------------------------------ writing

    def begin_run(
        self,
        command: str = "",
        options: dict[str, Any] | None = None,
        label: str = "",
        kind: str = "bench",
    ) -> int:
        """A new run (one bench or recipe command), `running` until `finish_run`; its id
        groups the measurements."""
        if kind not in RUN_KINDS:
            raise ValueError(f"run kind {kind!r} is not one of {RUN_KINDS}")
        with self._connect() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (created_at, label, command, options_json, kind, status) "
                "VALUES (?, ?, ?, ?, ?, 'running')",
                (time.time(), label, command, json.dumps(options or {}, sort_keys=True), kind),
            )
            return int(cursor.lastrowid or 0)

    def finish_run(
        self,
        run_id: int,
        status: str,
        error: str | None = None,
        *,
        options: dict[str, Any] | None = None,
        reused: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Record how a run ended, in one transaction: its status and error, its final
        options (None: keep them) and the (device, job id)s of the measurements it reused."""
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"run status {status!r} is not one of {RUN_STATUSES[1:]}")
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ?",
                    (status, error, time.time(), run_id),
                )
                if options is not None:
                    conn.execute(
                        "UPDATE runs SET options_json = ? WHERE id = ?",
                        (json.dumps(options, sort_keys=True), run_id),
                    )
                conn.executemany(
                    "INSERT OR IGNORE INTO reused (run_id, device, job_id) VALUES (?, ?, ?)",
                    [(run_id, device, job) for device, job in reused],
                )
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    def add_result(self, run_id: int, device: str, result: Result, model: ModelInfo) -> int:
        """Store every measurement of one Result; returns how many rows were new."""
        rows = list(rows_of_result(run_id, device, result, model))
        blobs = list(latency_rows(run_id, device, result))
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = conn.total_changes
                conn.executemany(
                    f"INSERT OR IGNORE INTO measurements ({', '.join(_INSERT_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in _INSERT_COLUMNS)})",
                    [tuple(row[c] for c in _INSERT_COLUMNS) for row in rows],
                )
                added = conn.total_changes - before
                conn.executemany(
                    "INSERT OR IGNORE INTO latencies (run_id, device, job_id, measurement, "
                    "count, encoding, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    blobs,
                )
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        return added

    # ------------------------------------------------------------------ reading

    def runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first, with kind, status, error, devices, models and row counts
        (`rows` counts the measurements it reused too, `reused_rows` those alone)."""
        with self._connect() as conn:
            reuse, params = _reuse_source(conn)
            query = (
                f"WITH {reuse}, rows_of(owner, reused, device, model_sha256, status) AS ("
                "SELECT run_id, 0, device, model_sha256, status FROM measurements UNION ALL "
                "SELECT u.run_id, 1, m.device, m.model_sha256, m.status FROM reuse u "
                "JOIN measurements m ON m.device = u.device AND m.job_id = u.job_id) "
                f"SELECT {_run_columns(conn)}, COUNT(m.owner) AS rows, "
                "SUM(m.status = 'ok') AS ok_rows, SUM(m.reused) AS reused_rows, "
                "GROUP_CONCAT(DISTINCT m.device) AS devices, "
                "COUNT(DISTINCT m.model_sha256) AS models "
                "FROM runs r LEFT JOIN rows_of m ON m.owner = r.id "
                "GROUP BY r.id ORDER BY r.id DESC"
            )
            if limit:
                query += " LIMIT ?"
                params = [*params, limit]
            out = []
            for row in conn.execute(query, params):
                item = dict(row)
                item.pop("options_json")
                item["devices"] = (
                    sorted((item["devices"] or "").split(",")) if item["devices"] else []
                )
                item["ok_rows"] = item["ok_rows"] or 0
                item["reused_rows"] = item["reused_rows"] or 0
                out.append(item)
            return out

    def run_info(self, run_id: int) -> dict[str, Any] | None:
        """One run's command, label, kind, status, error and options (e.g. a recipe run's
        record), or None."""
        with self._connect() as conn:
            reuse, params = _reuse_source(conn)
            row = conn.execute(
                f"WITH {reuse} SELECT {_run_columns(conn)} FROM runs r WHERE r.id = ?",
                [*params, run_id],
            ).fetchone()
        if row is None:
            return None
        info = dict(row)
        info["options"] = json.loads(info.pop("options_json") or "{}")
        return info

    def resolve_run(self, ref: str) -> int:
        """A run id from `12`, `latest` / `last`, or `latest~1` (the one before)."""
        text = ref.strip().lower()
        back = 0
        if text.startswith(("latest", "last")):
            base, _, tail = text.partition("~")
            if base not in ("latest", "last") or (tail and not tail.isdigit()):
                raise UserError(f"run {ref!r}: use a run id, 'latest' or 'latest~N'")
            back = int(tail or 0)
            ids = [r["id"] for r in self.runs()]
            if back >= len(ids):
                raise UserError(f"run {ref!r}: the DB holds only {len(ids)} run(s)")
            return int(ids[back])
        if not text.isdigit():
            raise UserError(
                f"run {ref!r}: use a run id (see edgeprune results list), 'latest' or 'latest~N'"
            )
        with self._connect() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (int(text),)).fetchone() is None:
                raise UserError(
                    f"run {ref} is not in {str(self.path)!r}; see edgeprune results list"
                )
        return int(text)

    def measurements(
        self,
        run_ids: list[int] | None = None,
        device: str | None = None,
        model: str | None = None,
        with_json: bool = False,
        include_reused: bool = False,
    ) -> list[dict[str, Any]]:
        """Rows as dicts, oldest first; filter by runs, device name and model name or sha prefix.

        `include_reused` (with `run_ids`): also the measurements those runs reused, as rows of
        the run that reused them; every row then says in `measured_in` which run measured it.
        """
        columns = list(COLUMNS) + (["result_json"] if with_json else [])
        where = ""
        params: list[Any] = []
        if device:
            where += " AND m.device = ?"
            params.append(device)
        if model:
            where += " AND (m.model_name = ? OR m.model_sha256 LIKE ?)"
            params += [model, model.lower() + "%"]
        with self._connect() as conn:
            present = _columns(conn, "measurements")  # an older DB read as it is lacks some
            selected = ", ".join(f"m.{c}" if c in present else f"NULL AS {c}" for c in columns)
            runs = f"({', '.join('?' for _ in run_ids or ())})"
            own = f"SELECT {selected}, m.run_id AS owner FROM measurements m WHERE 1=1{where}"
            own_params = list(params)
            if run_ids:
                own += f" AND m.run_id IN {runs}"
                own_params += run_ids
            query, all_params = own, own_params
            if include_reused and run_ids:
                reuse, reuse_params = _reuse_source(conn)
                query = (
                    f"WITH {reuse} {own} UNION ALL SELECT {selected}, u.run_id FROM reuse u "
                    "JOIN measurements m ON m.device = u.device AND m.job_id = u.job_id "
                    f"WHERE u.run_id IN {runs}{where}"
                )
                all_params = reuse_params + own_params + list(run_ids) + params
            query += " ORDER BY owner, id"
            rows = [dict(r) for r in conn.execute(query, all_params)]
            for row in rows:
                owner = row.pop("owner")
                if include_reused:
                    row["measured_in"], row["run_id"] = row["run_id"], owner
            if with_json:
                self._attach_results(conn, rows)
        for row in rows:
            row["xnnpack"] = bool(row["xnnpack"])
            row["sparse_path"] = None if row["sparse_path"] is None else bool(row["sparse_path"])
            row["warnings"] = json.loads(row["warnings"] or "[]")
        return rows

    def _attach_results(self, conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
        """Each row's `result`: its stored JSON with the raw latencies put back."""
        has_blobs = _has_table(conn, "latencies")
        cache: dict[tuple[str, str], dict[int, list[float]]] = {}
        for row in rows:
            result = json.loads(row.pop("result_json"))
            key = (row["device"], row["job_id"])
            if has_blobs and key not in cache:
                cache[key] = {
                    index: latency_blob.decode(data, encoding)
                    for index, encoding, data in conn.execute(
                        "SELECT measurement, encoding, data FROM latencies "
                        "WHERE device = ? AND job_id = ?",
                        key,
                    )
                }
            for index, values in cache.get(key, {}).items():
                measurements = result.get("measurements") or []
                if 0 <= index < len(measurements):
                    measurements[index]["latencies_ms"] = values
            row["result"] = result


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The columns a table of the DB has (fewer in a DB of an older version)."""
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return conn.execute(query, (name,)).fetchone() is not None


def _add_columns(
    conn: sqlite3.Connection, table: str, added: Mapping[int, tuple[tuple[str, str], ...]]
) -> bool:
    """Add the columns an older DB's table lacks; True when any was added."""
    present = _columns(conn, table)
    missing = [(c, kind) for columns in added.values() for c, kind in columns if c not in present]
    for column, kind in missing:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    return bool(missing)


_RUN_COLUMNS = ("id", "created_at", "label", "command", "options_json")
OLD_EMPTY_RUN = "stored no measurement (an edgeprune before schema v4 kept no reason)"


def _outcome_of_old_run(run: str, reuse: str) -> dict[str, str]:
    """SQL for what a run of a DB before v4 was (`run`: the runs table or its alias;
    `reuse`: the table or CTE of reused measurements): ok with measurements of its own,
    cached with reused ones only, else failed (that version kept no reason)."""
    own = f"EXISTS (SELECT 1 FROM measurements x WHERE x.run_id = {run}.id)"
    reused = f"EXISTS (SELECT 1 FROM {reuse} x WHERE x.run_id = {run}.id)"
    empty = OLD_EMPTY_RUN.replace("'", "''")
    return {
        "kind": f"CASE WHEN {run}.command = '{RECIPE_COMMAND}' THEN 'recipe' ELSE 'bench' END",
        "status": f"CASE WHEN {own} THEN 'ok' WHEN {reused} THEN 'cached' ELSE 'failed' END",
        "error": f"CASE WHEN {own} OR {reused} THEN NULL ELSE '{empty}' END",
        "finished_at": "NULL",
    }


def _run_columns(conn: sqlite3.Connection) -> str:
    """The columns of `runs r` to select; a DB before v4 read as it is gets what migrating
    it would store (its queries have the `reuse` CTE of `_reuse_source`)."""
    present = _columns(conn, "runs")
    old = _outcome_of_old_run("r", "reuse")
    picked = [f"r.{c}" for c in _RUN_COLUMNS]
    picked += [f"r.{c}" if c in present else f"{sql} AS {c}" for c, sql in old.items()]
    return ", ".join(picked)


def _reuse_source(conn: sqlite3.Connection) -> tuple[str, list[Any]]:
    """A CTE `reuse(run_id, device, job_id)` and its parameters: the `reused` table, or in
    a DB before v4 read as it is, what its recipe runs' records point at."""
    if _has_table(conn, "reused"):
        return "reuse(run_id, device, job_id) AS (SELECT run_id, device, job_id FROM reused)", []
    found = _recorded_reuse_of(conn)
    if not found:
        return "reuse(run_id, device, job_id) AS (SELECT NULL, NULL, NULL WHERE 0)", []
    values = ", ".join("(?, ?, ?)" for _ in found)
    return f"reuse(run_id, device, job_id) AS (VALUES {values})", [x for ref in found for x in ref]


def _recorded_reuse_of(conn: sqlite3.Connection) -> list[tuple[int, str, str]]:
    """(run id, device, job id) of what each recipe run's record points at in another run."""
    query = "SELECT id, options_json FROM runs WHERE command = ?"
    return [
        (run_id, device, job)
        for run_id, options in conn.execute(query, (RECIPE_COMMAND,)).fetchall()
        for device, job in recorded_reuse(options, run_id)
    ]


def _backfill_run_outcomes(conn: sqlite3.Connection) -> None:
    """Migrating to v4: what the older runs were. Recipe runs (`command` run) get kind
    recipe and their recorded references to earlier runs' measurements in `reused`; then
    each run's status and error as `_outcome_of_old_run` judges (what a reader of the old
    file shows, too)."""
    conn.executemany(
        "INSERT OR IGNORE INTO reused (run_id, device, job_id) VALUES (?, ?, ?)",
        _recorded_reuse_of(conn),
    )
    old = _outcome_of_old_run("runs", "reused")
    conn.execute(
        f"UPDATE runs SET kind = {old['kind']}, status = {old['status']}, error = {old['error']}"
    )


def recorded_reuse(options: str | dict[str, Any], run_id: int) -> list[tuple[str, str]]:
    """(device, job id) of each measurement a recipe run's record points at in another run
    (its `measurements`: device -> variant -> [run id, job id])."""
    record = json.loads(options) if isinstance(options, str) else options
    found: list[tuple[str, str]] = []
    measured = record.get("measurements") if isinstance(record, dict) else None
    for device, per_variant in (measured or {}).items():
        for ref in (per_variant or {}).values():
            if isinstance(ref, list) and len(ref) == 2 and ref[0] != run_id:
                found.append((str(device), str(ref[1])))
    return list(dict.fromkeys(found))


_INSERT_COLUMNS = [c for c in COLUMNS if c != "id"] + ["result_json"]
