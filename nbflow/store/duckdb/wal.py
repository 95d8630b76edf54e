"""Write-ahead files: each writing process's queued writes, on disk before they reach the database.

A store appends each write to its own file (``state.duckdb.wal-<pid>-<id>.jsonl``, one JSON
line ``{"sql": ..., "row": [...]}`` per write, held under an OS lock while the process
lives) and empties it whenever its queue is applied. A file that no live process holds is
an orphan (a killed writer's): the next store that opens the database applies it, then
deletes it. Every write is an idempotent upsert, so applying one twice is harmless.

A write-ahead file is data from the folder, not code: only lines naming one of nbflow's
own statements (by its exact text) with as many plain values as it takes are kept, so a
planted file cannot run SQL of its own. nbflow makes none as a symlink: one is left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from nbflow.store.base import RunRecord, TaskRecord
from nbflow.store.duckdb.records import RUNS, TASKS, WRITES

#: one write: a statement of :data:`~nbflow.store.duckdb.records.WRITES` and its values
Entry = tuple[str, list[Any]]

#: what a value in a write-ahead file may be (a dict only as an encoded datetime, checked by decode)
_VALUE_TYPES = (str, int, float, bool, type(None), dict)


def encode(value: Any) -> Any:
    """A statement's value as JSON can hold it (a datetime as ``{"$dt": iso}``)."""
    return {"$dt": value.isoformat()} if isinstance(value, datetime) else value


def decode(value: Any) -> Any:
    """A value read from a write-ahead file; ValueError if it is not one nbflow writes."""
    if isinstance(value, dict):
        if set(value) != {"$dt"} or not isinstance(value["$dt"], str):
            raise ValueError("not a value nbflow writes")
        return datetime.fromisoformat(value["$dt"])
    return value


def entries(f: IO[str]) -> list[Entry]:
    """The valid writes in an open write-ahead file, in order; any other line (one cut short by
    a crash, a statement that is not nbflow's, a value that is not plain) is skipped."""
    found = []
    for line in f.read().splitlines():
        try:
            item = json.loads(line)
            sql, row = item["sql"], item["row"]
            if WRITES.get(sql) != len(row) or not all(isinstance(v, _VALUE_TYPES) for v in row):
                continue
            found.append((sql, [decode(v) for v in row]))
        except (ValueError, TypeError, KeyError, RecursionError):
            continue
    return found


def try_lock(f: IO[str]) -> bool:
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


def files(store: Path) -> list[Path]:
    """Every write-ahead file of the database ``store`` (symlinks left out: not nbflow's)."""
    return [p for p in sorted(store.parent.glob(f"{store.name}.wal-*.jsonl")) if not p.is_symlink()]


class WriteAheadFile:
    """This store's own write-ahead file; made, and locked, on the first append."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.path = store.with_name(f"{store.name}.wal-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl")
        self._f: IO[str] | None = None

    @property
    def opened(self) -> bool:
        return self._f is not None

    def append(self, sql: str, row: Sequence[Any]) -> None:
        """Append one write and flush it to the OS; OSError if it cannot be (a full disk)."""
        if self._f is None:
            self.store.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held for the store's life
            try_lock(self._f)
        self._f.write(json.dumps({"sql": sql, "row": [encode(v) for v in row]}) + "\n")
        self._f.flush()

    def empty(self) -> None:
        """Everything it held is in the database."""
        if self._f is not None:
            self._f.seek(0)
            self._f.truncate()

    def close(self, delete: bool) -> None:
        """Release it (deleted if ``delete``: nothing in it is still needed). OSError if its last
        lines cannot be written (a full disk)."""
        f, self._f = self._f, None
        if f is None:
            return
        if delete:
            self.path.unlink(missing_ok=True)
        f.close()

    def drop(self) -> None:
        """Close it without deleting it (the store was never closed: the next nbflow applies it)."""
        f, self._f = self._f, None
        if f is not None:
            f.close()

    def orphans(self) -> list[Path]:
        """The write-ahead files of other store instances (live or dead)."""
        return [p for p in files(self.store) if p != self.path]

    def unheld_orphans(self) -> list[Path]:
        """The other write-ahead files no live process holds (a dead writer's), found without writing."""
        found = []
        for path in self.orphans():
            try:
                with open(path, encoding="utf-8") as f:  # closing it releases the lock
                    if try_lock(f):
                        found.append(path)
            except OSError:
                continue
        return found

    @contextlib.contextmanager
    def claim_orphans(self) -> Iterator[list[Entry]]:
        """The writes of every orphan no live process holds, each held under its lock meanwhile;
        the orphans are deleted if the block ends without an exception (their writes applied)."""
        with contextlib.ExitStack() as stack:
            held: list[tuple[Path, IO[str]]] = []
            for path in self.orphans():
                try:
                    f = stack.enter_context(open(path, "r+", encoding="utf-8"))
                except OSError:
                    continue  # gone meanwhile, or not ours to change
                if try_lock(f):
                    held.append((path, f))  # else a live process's: it applies its own
            yield [entry for _, f in held for entry in entries(f)]
            for path, _ in held:
                path.unlink(missing_ok=True)


def read(paths: Sequence[Path]) -> list[Entry]:
    """The valid writes in these files, file after file; a file gone meanwhile is skipped."""
    found: list[Entry] = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                found.extend(entries(f))
        except (OSError, UnicodeDecodeError):
            continue
    return found


def written_ahead(store: Path) -> tuple[dict[str, RunRecord], dict[tuple[str, str], TaskRecord]]:
    """Runs and task states in every write-ahead file of ``store``: the last of each wins (a
    file lists its process's writes in order). Reads only small files; takes no lock."""
    runs: dict[str, RunRecord] = {}
    tasks: dict[tuple[str, str], TaskRecord] = {}
    for sql, row in read(files(store)):
        try:
            if sql == RUNS.insert:
                run = RUNS.record(row)
                runs[run.run_id] = run
            elif sql == TASKS.insert:
                task = TASKS.record(row)
                tasks[(task.run_id, task.task)] = task
        except (ValueError, TypeError):  # a JSON column that is not JSON
            continue
    return runs, tasks
