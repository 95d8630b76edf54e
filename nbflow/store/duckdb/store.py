"""The default state store: one DuckDB file in the pipeline folder.

DuckDB lets one process hold a file open for writing, and no other process may open it
meanwhile, not even to read. So nbflow never keeps the file open: a run's writes are
queued and applied by a background thread in short batches (one transaction, then the
file is closed), and every reader opens the file read-only for one query and closes it.
Either side that meets the other's lock waits a few milliseconds and tries again. That
is what lets ``nbflow status`` read a run while ``nbflow run`` writes it.

A queued write is first appended to this store's write-ahead file (:mod:`.wal`), which is
emptied whenever the queue is. If the process is killed, or closes while another process
holds the database, the next nbflow that opens the store applies what it left first. So a
killed run keeps every record it made, and ``nbflow resume`` sees the tasks that finished.

The tables are in :mod:`.schema`; how records become rows, in :mod:`.records`.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from nbflow.errors import (
    DiskFullError,
    NbflowError,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    StoreReadOnlyError,
    StoreSchemaError,
)
from nbflow.store.base import AttemptRecord, NotificationRecord, RunRecord, RunStore, TaskRecord
from nbflow.store.duckdb import records as rec
from nbflow.store.duckdb import schema, wal
from nbflow.store.duckdb.records import ATTEMPTS, LOGS, NOTIFICATIONS, RUNS, TASKS, LogRecord

log = logging.getLogger("nbflow.store")

T = TypeVar("T")
_unique = itertools.count()  # keys for rows that are only ever added, never replaced

#: rows written by one multi-row INSERT (one statement per row costs about a millisecond)
_ROWS_PER_STATEMENT = 200
#: the least seconds between two batches of the writer: a write after a quiet spell goes at
#: once, a burst of them gathers into one batch (opening the file costs more than the
#: writes, and a run makes several per task). Views see them at once, through the
#: write-ahead file; :meth:`DuckDBRunStore.flush` does not wait for it.
WRITE_LINGER = 0.5

#: errno values of a file system that has no room left
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)

Rows = list[tuple[Any, ...]]


def _is_lock_error(err: Exception) -> bool:
    """Another connection has the file: another process's lock, or this process's own other
    connection (DuckDB refuses a read-only and a read-write connection to one file in one process)."""
    text = str(err)
    return "lock" in text.lower() or "Conflicting" in text or "different configuration" in text


class _Stopped(Exception):
    """The store is closing: stop waiting for a lock."""


def _grouped(batch: Sequence[tuple[str, Sequence[Any]]]) -> list[tuple[str, list[Sequence[Any]]]]:
    """The batch's rows by statement, statements in the order first met.

    A batch holds one row per record, so rows of one statement never touch the same key.
    """
    groups: dict[str, list[Sequence[Any]]] = {}
    for sql, row in batch:
        groups.setdefault(sql, []).append(row)
    return list(groups.items())


def _store_error(path: str, error: BaseException) -> StoreError:
    """A library or OS error as the store's error: :class:`DiskFullError` when the disk is full."""
    detail = (error.strerror if isinstance(error, OSError) and error.strerror else str(error)).splitlines()[0]
    no_space = (isinstance(error, OSError) and error.errno in _NO_SPACE) or "No space left on device" in str(error)
    return DiskFullError(path, detail) if no_space else StoreError(path, detail)


def _copy_tables(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Today's schema in memory, filled from the attached file ``disk`` (checked to hold it)."""
    has_tables = schema.check(con, path, database="disk")
    row = con.execute("SELECT coalesce(max(id), 0) + 1 FROM disk.notifications").fetchone() if has_tables else None
    con.execute(f"CREATE SEQUENCE notification_seq START WITH {int(row[0]) if row else 1}")
    con.execute(schema.SCHEMA)
    con.execute("INSERT INTO nbflow_meta VALUES ('schema_version', ?)", [str(schema.SCHEMA_VERSION)])
    if has_tables:
        for table in schema.TABLES:
            con.execute(f"INSERT INTO {table} SELECT * FROM disk.{table}")
    con.execute("DETACH disk")


def _apply_then(con: duckdb.DuckDBPyConnection, entries: Sequence[wal.Entry], work: Callable[[Any], T]) -> T:
    for sql, row in entries:  # nbflow's own statements only (see wal.entries)
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
        (a folder, the file, a dead writer's write-ahead file applied). A missing file
        reads as empty; writes a dead process left are read through an in-memory copy.
        Saving raises :class:`~nbflow.errors.StoreReadOnlyError`.

    A file of another schema version raises :class:`~nbflow.errors.StoreSchemaError`
    on the first read or write.
    """

    def __init__(self, path: str | Path, lock_timeout: float = 60.0, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._wal = wal.WriteAheadFile(self.path)
        #: this process's write-ahead file (made on the first write)
        self.wal_path = self._wal.path
        self.lock_timeout = lock_timeout
        self._cond = threading.Condition()
        # key -> (sql, row); one row per key is enough since a later write replaces an earlier one
        self._pending: dict[tuple[Any, ...], tuple[str, Sequence[Any]]] = {}
        self._busy = False
        self._closing = False
        self._flushing = 0  # callers waiting in flush(): the writer does not linger then
        self._last_batch = float("-inf")  # when the last batch ended (monotonic)
        self._error: NbflowError | None = None
        self._writer: threading.Thread | None = None
        self._schema_ready = False  # created or checked by this store (a writer)
        self._schema_checked = False  # checked by a read

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
        for attempt in range(5):
            try:
                self._with_connection(False, lambda con: schema.create(con, str(self.path)), wait)
                break
            except StoreSchemaError:
                raise
            except StoreError as e:
                # another store in this process (one DuckDB instance per file) created it at the same time
                if "write-write conflict" not in str(e) or attempt == 4:
                    raise
                time.sleep(0.01 * (attempt + 1))
        self._schema_ready = self._schema_checked = True
        self._adopt_orphans(wait)

    # -- write-ahead files -------------------------------------------------------------

    def _adopt_orphans(self, wait: float | None = None) -> None:
        """Apply the write-ahead files that no live process holds, then delete them."""
        with self._wal.claim_orphans() as entries:

            def apply(con: duckdb.DuckDBPyConnection) -> None:
                con.execute("BEGIN TRANSACTION")
                for sql, row in entries:  # nbflow's own statements only (see wal.entries)
                    con.execute(sql, row)
                con.execute("COMMIT")

            if entries:
                self._with_connection(False, apply, wait)

    def _log_ahead(self, sql: str, row: Sequence[Any]) -> None:
        """Append a write to this process's write-ahead file.

        If the file cannot be written (a full disk), the write stays queued in memory, the
        file is not written again (no line cut in two), and :attr:`failure` says why.
        """
        if self._error is not None:
            return
        try:
            self._wal.append(sql, row)
        except OSError as e:
            self._error = _store_error(str(self.path), e)
            self._cond.notify_all()

    @property
    def failure(self) -> NbflowError | None:
        """Why writes can no longer be recorded (a full disk, a damaged file), or None."""
        return self._error

    # -- reads -------------------------------------------------------------------------

    def _read(self, sql: str, params: Sequence[Any]) -> Rows:
        return self._read_many([(sql, params)])[0]

    def _query(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> Callable[[duckdb.DuckDBPyConnection], Any]:
        """The queries as one connection's work: their rows, or None if the file holds no tables
        yet (another process is creating them). The first read checks the file's schema."""

        def query(con: duckdb.DuckDBPyConnection) -> list[Rows] | None:
            if not self._schema_checked:
                if not schema.check(con, str(self.path)):
                    return None
                self._schema_checked = True
            try:
                return [con.execute(sql, list(params)).fetchall() for sql, params in queries]
            except (duckdb.CatalogException, duckdb.BinderException):
                return None

        return query

    def _read_many(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> list[Rows]:
        """Several queries through one connection (opening one costs more than a small query)."""
        self.flush()
        if not self.path.exists():
            return [[] for _ in queries]
        if self.read_only:
            return self._read_only_many(queries)
        if self._wal.orphans():
            try:
                self._ensure_schema() if not self._schema_ready else self._adopt_orphans()
            except StoreSchemaError:
                raise
            except NbflowError as e:  # a read-only place: read what is there
                log.warning("nbflow: warning: %s", e)
        rows: list[Rows] | None = self._with_connection(True, self._query(queries))
        return rows or [[] for _ in queries]

    def _read_only_many(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> list[Rows]:
        """Read without writing: the file as it is, or an in-memory copy with a dead writer's
        records laid over it."""
        orphans = self._wal.unheld_orphans()
        if not orphans:
            rows: list[Rows] | None = self._with_connection(True, self._query(queries))
            return rows or [[] for _ in queries]
        entries = wal.read(orphans)
        rows = self._with_memory_copy(lambda con: _apply_then(con, entries, self._query(queries)))
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
            _copy_tables(con, str(self.path))
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
        runs_sql = rec.SELECT_RUNS + (f" LIMIT {int(limit)}" if limit is not None else "")
        runs, tasks = self._read_many([(runs_sql, []), (rec.SELECT_TASKS_OF_RUN_OR_LATEST, [run_id])])
        return [RUNS.record(row) for row in runs], {t.task: t for t in map(TASKS.record, tasks)}

    def recent_tasks(self, limit: int | None = None) -> tuple[list[RunRecord], dict[str, dict[str, TaskRecord]]]:
        """The ``limit`` newest runs and their tasks, in one read."""
        newest = rec.SELECT_RUNS + (f" LIMIT {int(limit)}" if limit is not None else "")
        runs, tasks = self._read_many(
            [(newest, []), (f"{TASKS.select} WHERE run_id IN (SELECT run_id FROM ({newest})) ORDER BY task", [])]
        )
        records = [RUNS.record(row) for row in runs]
        found: dict[str, dict[str, TaskRecord]] = {r.run_id: {} for r in records}
        for t in map(TASKS.record, tasks):
            found.setdefault(t.run_id, {})[t.task] = t
        return records, found

    def task_attempts(self, task: str, limit: int | None = None) -> list[AttemptRecord]:
        """The ``limit`` latest attempts of ``task`` across runs, oldest first, in one query."""
        latest = f"{ATTEMPTS.select} WHERE task = ? ORDER BY started_at DESC, run_id DESC, attempt DESC" + (
            f" LIMIT {int(limit)}" if limit is not None else ""
        )
        return [ATTEMPTS.record(row) for row in reversed(self._read(latest, [task]))]

    def written_ahead(self) -> tuple[dict[str, RunRecord], dict[tuple[str, str], TaskRecord]]:
        """Runs and task states in the write-ahead files: made, perhaps not yet in the database.

        A writer appends each record to its write-ahead file at once and applies it to the
        database a moment later (when it gets the file's lock). Laid over what was read from
        the database, these show a change as soon as it is made. Reads only small files;
        never waits for a lock. Keys: run id; (run id, task).
        """
        return wal.written_ahead(self.path)

    # -- write-behind ------------------------------------------------------------------

    def _enqueue(self, key: tuple[Any, ...], sql: str, row: Sequence[Any]) -> None:
        if self.read_only:
            raise StoreReadOnlyError(str(self.path))
        with self._cond:
            if self._closing:
                raise StoreClosedError(str(self.path))
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
                while not self._closing and not self._flushing and self._error is None:
                    left = self._last_batch + WRITE_LINGER - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
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
                    if not self._pending:
                        self._wal.empty()  # everything it held is in the database
                    self._error = self._error or error
                    self._busy = False
                    self._last_batch = time.monotonic()
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
            self._flushing += 1
            self._cond.notify_all()
            try:
                while (self._pending or self._busy) and self._error is None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise StoreLockedError(str(self.path), self.lock_timeout, "a write is still waiting for it")
                    self._cond.wait(min(left, 0.5))
            finally:
                self._flushing -= 1
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
        own = getattr(self, "_wal", None)
        if own is not None:  # never closed: what it holds is applied by the next nbflow
            own.drop()

    def _release_wal(self) -> None:
        with self._cond:
            pending, self._pending = len(self._pending), {}
        if not self._wal.opened:
            return
        with contextlib.suppress(OSError):  # its last lines could not be written (a full disk): said below
            self._wal.close(delete=not pending)
        if pending and self._error is not None:
            log.warning(
                "nbflow: warning: %d records could not be written to %s (%s); the last states of this run are not recorded.",
                pending,
                self.path,
                getattr(self._error, "detail", self._error),
            )
        elif pending:
            log.warning(
                "nbflow: warning: %d records could not be written to %s yet; they are kept in %s and added the next time "
                "nbflow opens the store.",
                pending,
                self.path,
                self.wal_path.name,
            )

    # -- records -----------------------------------------------------------------------

    def save_run(self, run: RunRecord) -> None:
        self._enqueue(RUNS.key(run), RUNS.insert, RUNS.row(run))

    def save_task(self, task: TaskRecord) -> None:
        self._enqueue(TASKS.key(task), TASKS.insert, TASKS.row(task))

    def save_attempt(self, attempt: AttemptRecord) -> None:
        self._enqueue(ATTEMPTS.key(attempt), ATTEMPTS.insert, ATTEMPTS.row(attempt))

    def save_log(self, run_id: str, task: str, attempt: int, text: str) -> None:
        record = LogRecord(run_id, task, attempt, text)
        self._enqueue(LOGS.key(record), LOGS.insert, LOGS.row(record))

    def save_notification(self, record: NotificationRecord) -> None:
        self._enqueue(("notification", next(_unique)), rec.INSERT_NOTIFICATION, NOTIFICATIONS.row(record))

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._read(rec.SELECT_RUN, [run_id])
        return RUNS.record(rows[0]) if rows else None

    def list_runs(self, limit: int | None = None) -> list[RunRecord]:
        sql = rec.SELECT_RUNS + (f" LIMIT {int(limit)}" if limit is not None else "")
        return [RUNS.record(row) for row in self._read(sql, [])]

    def get_tasks(self, run_id: str) -> dict[str, TaskRecord]:
        return {t.task: t for t in map(TASKS.record, self._read(rec.SELECT_TASKS, [run_id]))}

    def get_attempts(self, run_id: str, task: str | None = None) -> list[AttemptRecord]:
        return [ATTEMPTS.record(row) for row in self._read(rec.SELECT_ATTEMPTS, [run_id, task, task])]

    def get_notifications(self, run_id: str) -> list[NotificationRecord]:
        return [NOTIFICATIONS.record(row) for row in self._read(rec.SELECT_NOTIFICATIONS, [run_id])]

    def last_successes(self) -> dict[str, AttemptRecord]:
        return {a.task: a for a in map(ATTEMPTS.record, self._read(rec.SELECT_LAST_SUCCESSES, []))}

    def get_log(self, run_id: str, task: str, attempt: int) -> str | None:
        rows = self._read(rec.SELECT_LOG, [run_id, task, attempt])
        return rows[0][0] if rows else None
