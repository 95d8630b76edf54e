"""The default state store: one DuckDB file in the pipeline folder.

DuckDB lets one process hold a file open for writing, and no other process may open it
meanwhile, not even to read. So nbflow never keeps the file open: a run's writes are
queued and applied by a background thread in short batches (one transaction, then the
file is closed), and every reader opens the file read-only for one query and closes it.
Either side that meets the other's lock waits a few milliseconds and tries again. That
is what lets ``nbflow status`` read a run while ``nbflow run`` writes it.

A queued write is first appended to a write-ahead file of this process
(``state.duckdb.wal-<pid>-<id>.jsonl``, held under an OS lock while the process lives),
which is emptied whenever the queue is. If the process is killed, or closes while another
process holds the database, the next nbflow that opens the store finds a WAL file nobody
holds and applies it first (every write is an idempotent upsert). So a killed run keeps
every record it made, and ``nbflow resume`` sees the tasks that finished.

Open the file with any DuckDB client: the schema is in ``SCHEMA`` below and in the README.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import duckdb

from nbflow.errors import DiskFullError, NbflowError, StoreError, StoreLockedError
from nbflow.store.base import AttemptRecord, NotificationRecord, RunRecord, RunStore, TaskRecord

SCHEMA_VERSION = 8

#: statements that bring a file from the version before to this one; idempotent
MIGRATIONS: dict[int, list[str]] = {
    2: ["ALTER TABLE runs ADD COLUMN IF NOT EXISTS resumed_from VARCHAR"],
    3: [],  # the notifications table (created by SCHEMA)
    4: ["ALTER TABLE runs ADD COLUMN IF NOT EXISTS logical_date VARCHAR"],
    5: [
        "ALTER TABLE tasks ADD COLUMN IF NOT EXISTS reason VARCHAR",
        "ALTER TABLE attempts ADD COLUMN IF NOT EXISTS fingerprint VARCHAR",
    ],
    6: ["ALTER TABLE runs ADD COLUMN IF NOT EXISTS environment JSON"],
    7: ["ALTER TABLE attempts ADD COLUMN IF NOT EXISTS products JSON"],
    8: ["ALTER TABLE attempts ADD COLUMN IF NOT EXISTS worker VARCHAR"],
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS nbflow_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    pipeline VARCHAR NOT NULL,          -- absolute path of the pipeline folder
    state VARCHAR NOT NULL,             -- running | success | failed | interrupted
    started_at TIMESTAMP NOT NULL,      -- UTC
    ended_at TIMESTAMP,
    duration_s DOUBLE,
    params JSON,                        -- overrides: {"name": v, "task.name": v}
    workers INTEGER,
    selected JSON,                      -- --only tasks, or null
    nbflow_version VARCHAR,
    pid INTEGER,
    hostname VARCHAR,
    resumed_from VARCHAR,               -- the run this one resumed, or null
    logical_date VARCHAR,               -- the schedule's date a scheduled or backfill run is for
    environment JSON                    -- python, platform, packages, sources and kernels by task
);
CREATE TABLE IF NOT EXISTS tasks (
    run_id VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    state VARCHAR NOT NULL,             -- pending | running | success | failed | upstream_failed | ...
    attempts INTEGER NOT NULL,
    started_at TIMESTAMP,
    ended_at TIMESTAMP,
    duration_s DOUBLE,
    error VARCHAR,
    output_notebook VARCHAR,
    reason VARCHAR,                     -- why it ran or was skipped (up_to_date) in this run
    PRIMARY KEY (run_id, task)
);
CREATE TABLE IF NOT EXISTS attempts (
    run_id VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    attempt INTEGER NOT NULL,           -- 1, 2, ...
    state VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    duration_s DOUBLE,
    parameters JSON,                    -- everything injected: overrides, upstream, product
    kernel_name VARCHAR,
    source_hash VARCHAR,
    output_notebook VARCHAR,            -- the executed notebook, kept for failed attempts too
    log_path VARCHAR,
    error VARCHAR,                      -- one line: exception name and message
    traceback VARCHAR,
    fingerprint VARCHAR,                -- code, parameters, kernel and upstreams, hashed
    products JSON,                      -- declared products written: path -> sha256 (success only)
    worker VARCHAR,                     -- the Dask worker that ran it (null: this machine's kernels)
    PRIMARY KEY (run_id, task, attempt)
);
CREATE SEQUENCE IF NOT EXISTS notification_seq;
CREATE TABLE IF NOT EXISTS notifications (
    id BIGINT PRIMARY KEY DEFAULT nextval('notification_seq'),
    run_id VARCHAR NOT NULL,
    task VARCHAR,                       -- null for a run's own alerts (run_end)
    attempt INTEGER,
    event VARCHAR NOT NULL,             -- failure | retry | success | run_end
    channel VARCHAR NOT NULL,           -- email | webhook
    ok BOOLEAN NOT NULL,
    error VARCHAR,                      -- why a delivery failed
    sent_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS logs (
    run_id VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    attempt INTEGER NOT NULL,
    text VARCHAR,                       -- captured stdout/stderr, capped (a marker shows the cut)
    PRIMARY KEY (run_id, task, attempt)
);
"""

_RUN_COLS = (
    "run_id, pipeline, state, started_at, ended_at, duration_s, params, workers, selected, nbflow_version, pid, hostname, "
    "resumed_from, logical_date, environment"
)
_TASK_COLS = "run_id, task, state, attempts, started_at, ended_at, duration_s, error, output_notebook, reason"
_ATTEMPT_COLS = (
    "run_id, task, attempt, state, started_at, ended_at, duration_s, parameters, kernel_name, source_hash, "
    "output_notebook, log_path, error, traceback, fingerprint, products, worker"
)


def _placeholders(cols: str) -> str:
    return ", ".join("?" for _ in cols.split(","))


INSERT_RUN = f"INSERT OR REPLACE INTO runs ({_RUN_COLS}) VALUES ({_placeholders(_RUN_COLS)})"
INSERT_TASK = f"INSERT OR REPLACE INTO tasks ({_TASK_COLS}) VALUES ({_placeholders(_TASK_COLS)})"
INSERT_ATTEMPT = f"INSERT OR REPLACE INTO attempts ({_ATTEMPT_COLS}) VALUES ({_placeholders(_ATTEMPT_COLS)})"
INSERT_LOG = "INSERT OR REPLACE INTO logs (run_id, task, attempt, text) VALUES (?, ?, ?, ?)"
SELECT_RUN = f"SELECT {_RUN_COLS} FROM runs WHERE run_id = ?"
SELECT_RUNS = f"SELECT {_RUN_COLS} FROM runs ORDER BY started_at DESC, run_id DESC"
SELECT_TASKS = f"SELECT {_TASK_COLS} FROM tasks WHERE run_id = ? ORDER BY task"
SELECT_TASKS_OF_RUN_OR_LATEST = (
    f"SELECT {_TASK_COLS} FROM tasks WHERE run_id = coalesce(?, "
    "(SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1)) ORDER BY task"
)
SELECT_ATTEMPTS = (
    f"SELECT {_ATTEMPT_COLS} FROM attempts WHERE run_id = ? AND (? IS NULL OR task = ?) ORDER BY task, attempt"
)
# idempotent, like every write (a write-ahead file may be applied after its rows landed)
INSERT_NOTIFICATION = (
    "INSERT INTO notifications (run_id, task, attempt, event, channel, ok, error, sent_at) "
    "SELECT * FROM (VALUES (?, ?, ?, ?, ?, ?, ?, ?)) v(run_id, task, attempt, event, channel, ok, error, sent_at) "
    "WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.run_id = v.run_id AND n.task IS NOT DISTINCT FROM v.task "
    "AND n.attempt IS NOT DISTINCT FROM v.attempt AND n.event = v.event AND n.channel = v.channel "
    "AND n.sent_at = v.sent_at)"
)
SELECT_NOTIFICATIONS = (
    "SELECT run_id, task, attempt, event, channel, ok, error, sent_at FROM notifications WHERE run_id = ? ORDER BY id"
)
SELECT_LAST_SUCCESSES = (
    f"SELECT {_ATTEMPT_COLS} FROM attempts WHERE state = 'success' "
    "QUALIFY row_number() OVER (PARTITION BY task ORDER BY ended_at DESC, run_id DESC) = 1"
)
SELECT_LOG = "SELECT text FROM logs WHERE run_id = ? AND task = ? AND attempt = ?"

#: the statements a write-ahead file may name, with the number of values each takes
_WAL_STATEMENTS = {
    sql: sql.count("?") for sql in (INSERT_RUN, INSERT_TASK, INSERT_ATTEMPT, INSERT_LOG, INSERT_NOTIFICATION)
}
_WAL_VALUE_TYPES = (str, int, float, bool, type(None), dict)  # dict: an encoded datetime, checked by _decode

T = TypeVar("T")
_unique = itertools.count()  # keys for rows that are only ever added, never replaced


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _unjson(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _is_lock_error(err: Exception) -> bool:
    """Another connection has the file: another process's lock, or this process's own other
    connection (DuckDB refuses a read-only and a read-write connection to one file in one process)."""
    text = str(err)
    return "lock" in text.lower() or "Conflicting" in text or "different configuration" in text


def _try_lock(f: IO[str]) -> bool:
    """Take an exclusive OS lock on an open file without waiting; False if another process holds it."""
    try:
        import fcntl
    except ImportError:  # no POSIX locks: treat every file as another live process's
        return False
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class _Stopped(Exception):
    """The store is closing: stop waiting for a lock."""


def _encode(value: Any) -> Any:
    return {"$dt": value.isoformat()} if isinstance(value, datetime) else value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):  # only an encoded datetime is written as an object
        if set(value) != {"$dt"} or not isinstance(value["$dt"], str):
            raise ValueError("not a value nbflow writes")
        return datetime.fromisoformat(value["$dt"])
    return value


#: rows written by one multi-row INSERT (one statement per row costs about a millisecond)
_ROWS_PER_STATEMENT = 200


def _grouped(batch: Sequence[tuple[str, Sequence[Any]]]) -> list[tuple[str, list[Sequence[Any]]]]:
    """The batch's rows by statement, statements in the order first met.

    A batch holds one row per record, so rows of one statement never touch the same key.
    """
    groups: dict[str, list[Sequence[Any]]] = {}
    for sql, row in batch:
        groups.setdefault(sql, []).append(row)
    return list(groups.items())


#: errno values of a file system that has no room left
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _store_error(path: str, error: BaseException) -> StoreError:
    """A library or OS error as the store's error: :class:`DiskFullError` when the disk is full."""
    detail = (error.strerror if isinstance(error, OSError) and error.strerror else str(error)).splitlines()[0]
    no_space = (isinstance(error, OSError) and error.errno in _NO_SPACE) or "No space left on device" in str(error)
    return DiskFullError(path, detail) if no_space else StoreError(path, detail)


def _wal_entries(f: IO[str]) -> list[tuple[str, list[Any]]]:
    """The writes in a write-ahead file, in order.

    A write-ahead file is data from the folder: only lines naming one of nbflow's own
    statements (by its exact text) with as many plain values as it takes are kept; a line
    cut short by a crash, or anything else, is skipped. No SQL from the file is ever run.
    """
    entries = []
    for line in f.read().splitlines():
        try:
            item = json.loads(line)
            sql, row = item["sql"], item["row"]
            if _WAL_STATEMENTS.get(sql) != len(row) or not all(isinstance(v, _WAL_VALUE_TYPES) for v in row):
                continue
            entries.append((sql, [_decode(v) for v in row]))
        except (ValueError, TypeError, KeyError, RecursionError):
            continue
    return entries


_TABLES = ("runs", "tasks", "attempts", "notifications", "logs")


def _copy_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Today's schema in memory, filled from the attached file ``disk`` (older files lack columns)."""
    tables = {
        row[0] for row in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'disk'").fetchall()
    }
    next_id = 1
    if "notifications" in tables:
        row = con.execute("SELECT coalesce(max(id), 0) + 1 FROM disk.notifications").fetchone()
        next_id = int(row[0]) if row else 1
    con.execute(f"CREATE SEQUENCE notification_seq START WITH {next_id}")
    con.execute(SCHEMA)
    for table in _TABLES:
        if table in tables:
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM disk.{table}")
    con.execute("DETACH disk")


def _apply_then(
    con: duckdb.DuckDBPyConnection,
    entries: Sequence[tuple[str, Sequence[Any]]],
    work: Callable[[duckdb.DuckDBPyConnection], T],
) -> T:
    for sql, row in entries:  # nbflow's own statements only (see _wal_entries)
        try:
            con.execute(sql, list(row))
        except duckdb.Error:
            continue  # a record this schema cannot hold: shown without it
    return work(con)


class DuckDBRunStore(RunStore):
    """A :class:`RunStore` in a DuckDB file; safe to read from other processes during a run.

    Writes are queued and applied by a background thread, which waits as long as it must
    for another process's lock. Writes still waiting when the store closes (or when the
    process is killed) stay in its write-ahead file and are applied by the next nbflow that
    opens the store, so a reader that holds the file for a long time, or a kill, never
    loses a run's record.

    Parameters
    ----------
    path
        The database file; created (with its folder) on the first write.
    lock_timeout
        How long a read, a flush or a close waits for another process's lock.
    read_only
        A view's store: it never writes anything, not even what a reader does otherwise
        (a folder, the file, an older file's schema upgrade, a dead writer's write-ahead
        file applied). A missing file reads as empty; an older file, or writes a dead
        process left, are read through an in-memory copy. Saving raises ``RuntimeError``.
    """

    def __init__(self, path: str | Path, lock_timeout: float = 60.0, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        #: this process's write-ahead file (made on the first write)
        self.wal_path = self.path.with_name(f"{self.path.name}.wal-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl")
        self._wal: IO[str] | None = None
        self.lock_timeout = lock_timeout
        self._cond = threading.Condition()
        # key -> (sql, row); one row per key is enough since a later write replaces an earlier one
        self._pending: dict[tuple[Any, ...], tuple[str, Sequence[Any]]] = {}
        self._busy = False
        self._closing = False
        self._error: NbflowError | None = None
        self._writer: threading.Thread | None = None
        self._schema_ready = False

    # -- connections -------------------------------------------------------------------

    def _connect(self, read_only: bool, deadline: float) -> duckdb.DuckDBPyConnection:
        delay = 0.002
        # a view reads tables only: a file from elsewhere cannot make it read or write other files
        config: dict[str, str | bool | int | float | list[str]] = (
            {"enable_external_access": False} if self.read_only else {}
        )
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only, config=config)
            except duckdb.Error as e:
                if not _is_lock_error(e):
                    raise StoreError(str(self.path), str(e).splitlines()[0]) from e
                if time.monotonic() > deadline:
                    raise StoreLockedError(str(self.path), self.lock_timeout, str(e).splitlines()[0]) from e
                if self._closing and not read_only:
                    raise _Stopped from e
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def _with_connection(
        self, read_only: bool, work: Callable[[duckdb.DuckDBPyConnection], T], wait: float | None = None
    ) -> T:
        con = self._connect(read_only, time.monotonic() + (self.lock_timeout if wait is None else wait))
        try:
            return work(con)
        except duckdb.Error as e:
            raise _store_error(str(self.path), e) from e
        finally:
            con.close()

    def _ensure_schema(self, wait: float | None = None) -> None:
        if self._schema_ready:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(str(self.path), f"its folder cannot be created ({e.strerror})") from e

        def create(con: duckdb.DuckDBPyConnection) -> None:
            con.execute("BEGIN TRANSACTION")
            con.execute(SCHEMA)
            row = con.execute("SELECT value FROM nbflow_meta WHERE key = 'schema_version'").fetchone()
            found = int(row[0]) if row else SCHEMA_VERSION
            if found > SCHEMA_VERSION:
                con.execute("ROLLBACK")
                raise NbflowError(
                    f"{self.path} was written by a newer nbflow (schema {found}, this one knows {SCHEMA_VERSION}); "
                    "upgrade nbflow to read it."
                )
            for version in range(found + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS.get(version, []):
                    con.execute(statement)
            con.execute("INSERT OR REPLACE INTO nbflow_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            con.execute("COMMIT")

        for attempt in range(5):
            try:
                self._with_connection(False, create, wait)
                break
            except StoreError as e:
                # another store in this process (one DuckDB instance per file) created it at the same time
                if "write-write conflict" not in str(e) or attempt == 4:
                    raise
                time.sleep(0.01 * (attempt + 1))
        self._schema_ready = True
        self._adopt_orphans(wait)

    # -- write-ahead files -------------------------------------------------------------

    def _orphans(self) -> list[Path]:
        """Write-ahead files of other store instances (or the journal of older versions).

        nbflow makes none as a symlink: one is not nbflow's, and is left alone.
        """
        legacy = self.path.with_name(self.path.name + ".pending.jsonl")
        found = sorted(self.path.parent.glob(f"{self.path.name}.wal-*.jsonl"))
        return [p for p in [legacy, *found] if p != self.wal_path and p.exists() and not p.is_symlink()]

    def _unheld_orphans(self) -> list[Path]:
        """The write-ahead files no live process holds (a dead writer's), found without writing."""
        found = []
        for path in self._orphans():
            try:
                with open(path, encoding="utf-8") as f:  # closing it releases the lock
                    if path.name.endswith(".pending.jsonl") or _try_lock(f):
                        found.append(path)
            except OSError:
                continue
        return found

    def _adopt_orphans(self, wait: float | None = None) -> None:
        """Apply the write-ahead files that no live process holds, then delete them."""
        with contextlib.ExitStack() as stack:
            held: list[tuple[Path, IO[str]]] = []
            for path in self._orphans():
                try:
                    f = stack.enter_context(open(path, "r+", encoding="utf-8"))
                except OSError:
                    continue  # gone meanwhile, or not ours to change
                if path.name.endswith(".pending.jsonl") or _try_lock(f):
                    held.append((path, f))  # else a live process's: it applies its own
            entries = [entry for _, f in held for entry in _wal_entries(f)]

            def apply(con: duckdb.DuckDBPyConnection) -> None:
                con.execute("BEGIN TRANSACTION")
                for sql, row in entries:
                    con.execute(sql, row)
                con.execute("COMMIT")

            if entries:
                self._with_connection(False, apply, wait)
            for path, _ in held:
                path.unlink(missing_ok=True)

    def _log_ahead(self, sql: str, row: Sequence[Any]) -> None:
        """Append a write to this process's write-ahead file.

        If the file cannot be written (a full disk), the write stays queued in memory, the
        file is not written again (no line cut in two), and :attr:`failure` says why.
        """
        if self._error is not None:
            return
        try:
            if self._wal is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._wal = open(self.wal_path, "a", encoding="utf-8")  # noqa: SIM115 - held for the store's life
                _try_lock(self._wal)
            self._wal.write(json.dumps({"sql": sql, "row": [_encode(v) for v in row]}) + "\n")
            self._wal.flush()
        except OSError as e:
            self._error = _store_error(str(self.path), e)
            self._cond.notify_all()

    @property
    def failure(self) -> NbflowError | None:
        """Why writes can no longer be recorded (a full disk, a damaged file), or None."""
        return self._error

    def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._read_many([(sql, params)])[0]

    def _read_many(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
        """Several queries through one connection (opening one costs more than a small query)."""
        self.flush()
        if not self.path.exists():
            return [[] for _ in queries]
        if self.read_only:
            return self._read_only_many(queries)
        if self._orphans():
            try:
                self._ensure_schema() if not self._schema_ready else self._adopt_orphans()
            except NbflowError as e:  # a read-only place: read what is there
                print(f"nbflow: warning: {e}", file=sys.stderr)

        def query(con: duckdb.DuckDBPyConnection) -> list[list[tuple[Any, ...]]] | None:
            try:
                return [con.execute(sql, list(params)).fetchall() for sql, params in queries]
            except (duckdb.CatalogException, duckdb.BinderException):
                return None  # no schema yet (another process is creating it), or an older one

        rows = self._with_connection(True, query)
        if rows is None and not self._schema_ready:
            self._ensure_schema()  # bring an older file up to date, then ask again
            rows = self._with_connection(True, query)
        return rows or [[] for _ in queries]

    def _read_only_many(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
        """Read without writing: the file as it is, or an in-memory copy with a dead writer's
        records laid over it (or, for a file from an older nbflow, its tables in today's shape)."""

        def query(con: duckdb.DuckDBPyConnection) -> list[list[tuple[Any, ...]]] | None:
            try:
                return [con.execute(sql, list(params)).fetchall() for sql, params in queries]
            except (duckdb.CatalogException, duckdb.BinderException):
                return None

        orphans = self._unheld_orphans()
        if not orphans:
            rows = self._with_connection(True, query)
            if rows is not None:
                return rows
        entries: list[tuple[str, list[Any]]] = []
        for path in orphans:
            try:
                with open(path, encoding="utf-8") as f:
                    entries.extend(_wal_entries(f))
            except (OSError, UnicodeDecodeError):
                continue
        try:
            rows = self._with_memory_copy(lambda con: _apply_then(con, entries, query))
        except StoreError:
            rows = None  # a file this version cannot copy (a newer nbflow's): read it as it is
        if rows is None and orphans:
            rows = self._with_connection(True, query)
        return rows or [[] for _ in queries]

    def _with_memory_copy(self, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """``work`` on an in-memory database holding the file's tables (attached read-only)."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.002
        quoted = str(self.path).replace("'", "''")
        while True:
            con = duckdb.connect(":memory:")
            try:
                con.execute(f"ATTACH '{quoted}' AS disk (READ_ONLY)")
                break
            except duckdb.Error as e:
                con.close()
                if not _is_lock_error(e):
                    raise StoreError(str(self.path), str(e).splitlines()[0]) from e
                if time.monotonic() > deadline:
                    raise StoreLockedError(str(self.path), self.lock_timeout, str(e).splitlines()[0]) from e
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        try:
            _copy_tables(con)
            con.execute("SET enable_external_access = false")
            return work(con)
        except duckdb.Error as e:
            raise StoreError(str(self.path), str(e).splitlines()[0]) from e
        finally:
            con.close()

    def runs_and_tasks(
        self, run_id: str | None = None, limit: int | None = None
    ) -> tuple[list[RunRecord], dict[str, TaskRecord]]:
        """Runs, newest first, and the tasks of ``run_id`` (default: the newest run), in one read."""
        runs_sql = SELECT_RUNS + (f" LIMIT {int(limit)}" if limit is not None else "")
        runs, tasks = self._read_many([(runs_sql, []), (SELECT_TASKS_OF_RUN_OR_LATEST, [run_id])])
        return [self._run(row) for row in runs], {row[1]: self._task(row) for row in tasks}

    # -- write-behind ------------------------------------------------------------------

    def _enqueue(self, key: tuple[Any, ...], sql: str, row: Sequence[Any]) -> None:
        if self.read_only:
            raise RuntimeError("the state store was opened read-only (to be shown): nothing is written to it")
        with self._cond:
            if self._closing:
                raise RuntimeError("the state store is closed")
            self._log_ahead(sql, row)
            self._pending.pop(key, None)  # keep writes in the order they were last made
            self._pending[key] = (sql, row)
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="nbflow-store-writer", daemon=True)
                self._writer.start()
            self._cond.notify_all()

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending or self._error is not None:
                    return
                batch = dict(self._pending)
                self._pending.clear()
                self._busy = True
            error: NbflowError | None = None
            try:
                self._write_batch(list(batch.values()))
                batch = {}
            except _Stopped:
                pass
            except NbflowError as e:
                error = e
            finally:
                with self._cond:
                    for key, value in batch.items():  # not written: back in the queue, unless newer
                        self._pending.setdefault(key, value)
                    if not self._pending and self._wal is not None:
                        self._wal.seek(0)
                        self._wal.truncate()  # everything it held is in the database
                    self._error = self._error or error
                    self._busy = False
                    self._cond.notify_all()
            if batch and (self._closing or error is not None):
                return

    def _write_batch(self, batch: list[tuple[str, Sequence[Any]]]) -> None:
        self._ensure_schema(wait=float("inf"))

        def write(con: duckdb.DuckDBPyConnection) -> None:
            con.execute("BEGIN TRANSACTION")
            for sql, rows in _grouped(batch):
                if sql.startswith("INSERT OR REPLACE") and len(rows) > 1:
                    for chunk in range(0, len(rows), _ROWS_PER_STATEMENT):
                        part = rows[chunk : chunk + _ROWS_PER_STATEMENT]
                        values = sql[sql.index("(?") :]  # one "(?, ?, ...)" per row, in one statement
                        con.execute(sql + (", " + values) * (len(part) - 1), [v for row in part for v in row])
                else:
                    for row in rows:
                        con.execute(sql, list(row))
            con.execute("COMMIT")

        self._with_connection(False, write, wait=float("inf"))

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every write so far is in the file.

        Raises
        ------
        StoreLockedError
            Another process held the file for longer than ``timeout`` (default: ``lock_timeout``).
        StoreError
            The file cannot be written (the writes stay queued).
        """
        deadline = time.monotonic() + (self.lock_timeout if timeout is None else timeout)
        with self._cond:
            while (self._pending or self._busy) and self._error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreLockedError(str(self.path), self.lock_timeout, "a write is still waiting for it")
                self._cond.wait(min(left, 0.5))
            if self._error is not None:
                raise self._error

    def close(self) -> None:
        """Flush; what cannot be written in time stays in the write-ahead file (and is reported)."""
        try:
            self.flush()
        except StoreLockedError:
            pass  # what is still queued stays in the write-ahead file, with a warning
        finally:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            if self._writer is not None:
                self._writer.join()
            self._release_wal()

    def __del__(self) -> None:
        wal = getattr(self, "_wal", None)
        if wal is not None:  # never closed: what it holds is applied by the next nbflow
            wal.close()

    def _release_wal(self) -> None:
        with self._cond:
            pending, self._pending = len(self._pending), {}
            wal, self._wal = self._wal, None
        if wal is None:
            return
        if not pending:
            self.wal_path.unlink(missing_ok=True)
        try:
            wal.close()
        except OSError:  # its last lines could not be written (a full disk): said below
            pass
        if pending and self._error is not None:
            print(
                f"nbflow: warning: {pending} records could not be written to {self.path} "
                f"({getattr(self._error, 'detail', self._error)}); "
                "the last states of this run are not recorded.",
                file=sys.stderr,
            )
        elif pending:
            print(
                f"nbflow: warning: {pending} records could not be written to {self.path} yet; they are kept "
                f"in {self.wal_path.name} and added the next time nbflow opens the store.",
                file=sys.stderr,
            )

    # -- records -----------------------------------------------------------------------

    def save_run(self, run: RunRecord) -> None:
        row = (
            run.run_id,
            run.pipeline,
            run.state,
            run.started_at,
            run.ended_at,
            run.duration_s,
            _json(run.params),
            run.workers,
            _json(run.selected),
            run.nbflow_version,
            run.pid,
            run.hostname,
            run.resumed_from,
            run.logical_date,
            _json(run.environment),
        )
        self._enqueue(("run", run.run_id), INSERT_RUN, row)

    def save_task(self, task: TaskRecord) -> None:
        row = (
            task.run_id,
            task.task,
            task.state,
            task.attempts,
            task.started_at,
            task.ended_at,
            task.duration_s,
            task.error,
            task.output_notebook,
            task.reason,
        )
        self._enqueue(("task", task.run_id, task.task), INSERT_TASK, row)

    def save_attempt(self, attempt: AttemptRecord) -> None:
        a = attempt
        row = (
            a.run_id,
            a.task,
            a.attempt,
            a.state,
            a.started_at,
            a.ended_at,
            a.duration_s,
            _json(a.parameters),
            a.kernel_name,
            a.source_hash,
            a.output_notebook,
            a.log_path,
            a.error,
            a.traceback,
            a.fingerprint,
            _json(a.products),
            a.worker,
        )
        self._enqueue(("attempt", a.run_id, a.task, a.attempt), INSERT_ATTEMPT, row)

    def save_log(self, run_id: str, task: str, attempt: int, text: str) -> None:
        self._enqueue(("log", run_id, task, attempt), INSERT_LOG, (run_id, task, attempt, text))

    @staticmethod
    def _run(row: tuple[Any, ...]) -> RunRecord:
        # columns as in _RUN_COLS; duration_s (index 5) is derived, params and selected are JSON
        run_id, pipeline, state, started_at, ended_at, _duration, params, workers, selected, *rest = row
        version, pid, host, resumed, logical_date, environment = rest
        return RunRecord(
            run_id,
            pipeline,
            state,
            started_at,
            ended_at,
            _unjson(params) or {},
            workers,
            _unjson(selected),
            version or "",
            pid or 0,
            host or "",
            resumed,
            logical_date,
            _unjson(environment) or {},
        )

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._read(SELECT_RUN, [run_id])
        return self._run(rows[0]) if rows else None

    def list_runs(self, limit: int | None = None) -> list[RunRecord]:
        sql = SELECT_RUNS + (f" LIMIT {int(limit)}" if limit is not None else "")
        return [self._run(row) for row in self._read(sql, [])]

    @staticmethod
    def _task(row: Sequence[Any]) -> TaskRecord:
        # columns as in _TASK_COLS; duration_s (index 6) is derived
        run_id, task, state, attempts, started, ended, _duration, error, output, reason = row
        return TaskRecord(run_id, task, state, attempts, started, ended, error, output, reason)

    def get_tasks(self, run_id: str) -> dict[str, TaskRecord]:
        return {row[1]: self._task(row) for row in self._read(SELECT_TASKS, [run_id])}

    def written_ahead(self) -> tuple[dict[str, RunRecord], dict[tuple[str, str], TaskRecord]]:
        """Runs and task states in the write-ahead files: made, perhaps not yet in the database.

        A writer appends each record to its write-ahead file at once and applies it to the
        database a moment later (when it gets the file's lock). Each file lists its
        process's writes in order, so its last record of a run or task is the newest: laid
        over what was read from the database, these show a change as soon as it is made.
        Reads only small files; never waits for a lock. Keys: run id; (run id, task).
        """
        runs: dict[str, RunRecord] = {}
        tasks: dict[tuple[str, str], TaskRecord] = {}
        for path in sorted(self.path.parent.glob(f"{self.path.name}.wal-*.jsonl")):
            if path.is_symlink():  # not one nbflow made
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    entries = _wal_entries(f)
            except (OSError, KeyError, TypeError):
                continue  # gone meanwhile, or not one of ours
            for sql, row in entries:
                if sql == INSERT_RUN:
                    runs[row[0]] = self._run(tuple(row))
                elif sql == INSERT_TASK:
                    tasks[(row[0], row[1])] = self._task(row)
        return runs, tasks

    @staticmethod
    def _attempt(row: Sequence[Any]) -> AttemptRecord:
        # columns as in _ATTEMPT_COLS; duration_s (index 6) is derived; parameters (7) and products (15) are JSON
        return AttemptRecord(*row[:6], _unjson(row[7]) or {}, *row[8:15], _unjson(row[15]) or {}, row[16])  # type: ignore[call-arg]

    def get_attempts(self, run_id: str, task: str | None = None) -> list[AttemptRecord]:
        # columns as in _ATTEMPT_COLS; duration_s (index 6) is derived, parameters (7) is JSON
        return [self._attempt(row) for row in self._read(SELECT_ATTEMPTS, [run_id, task, task])]

    def save_notification(self, record: NotificationRecord) -> None:
        r = record
        self._enqueue(
            ("notification", next(_unique)),
            INSERT_NOTIFICATION,
            (r.run_id, r.task, r.attempt, r.event, r.channel, r.ok, r.error, r.sent_at),
        )

    def get_notifications(self, run_id: str) -> list[NotificationRecord]:
        return [NotificationRecord(*row) for row in self._read(SELECT_NOTIFICATIONS, [run_id])]

    def last_successes(self) -> dict[str, AttemptRecord]:
        rows = self._read(SELECT_LAST_SUCCESSES, [])
        return {row[1]: self._attempt(row) for row in rows}

    def get_log(self, run_id: str, task: str, attempt: int) -> str | None:
        rows = self._read(SELECT_LOG, [run_id, task, attempt])
        return rows[0][0] if rows else None
