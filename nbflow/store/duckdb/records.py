"""Records and rows: each table's columns, derived from its record's fields, with a codec per column.

A column is declared once, by the record's field and its type: the codec (how a value is
written to DuckDB and read back) follows from the type, and the statements that write and
read the table follow from the columns. A table may add derived columns (``duration_s``),
written from the record's property of that name and never passed back to it.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from nbflow.store.base import AttemptRecord, NotificationRecord, RunRecord, TaskRecord

R = TypeVar("R")


def _same(value: Any) -> Any:
    return value


def _to_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _from_json(text: Any) -> Any:
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class Codec:
    """How one kind of value is written to a column and read back."""

    name: str
    sql_type: str
    to_sql: Callable[[Any], Any] = _same
    from_sql: Callable[[Any], Any] = _same


TEXT = Codec("text", "VARCHAR")
INTEGER = Codec("integer", "INTEGER")
DOUBLE = Codec("double", "DOUBLE")
BOOLEAN = Codec("boolean", "BOOLEAN")
TIMESTAMP = Codec("timestamp", "TIMESTAMP")  # DuckDB takes and gives datetime itself
JSON = Codec("json", "JSON", _to_json, _from_json)

#: the codec of a field's type (``X | None`` takes X's); dicts and lists are JSON
_CODECS: dict[Any, Codec] = {str: TEXT, int: INTEGER, float: DOUBLE, bool: BOOLEAN, datetime: TIMESTAMP}


def codec_of(hint: Any) -> Codec:
    """The codec for a field's type; a type without one is a mistake in the record."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        if len(kinds) == 1:
            return codec_of(kinds[0])
    elif typing.get_origin(hint) in (dict, list):
        return JSON
    elif hint in _CODECS:
        return _CODECS[hint]
    raise TypeError(f"no column codec for a field of type {hint!r}")


@dataclass(frozen=True)
class Column:
    """One column: its name, codec, and what a missing (NULL) value reads back as."""

    name: str
    codec: Codec
    #: False for a derived column: written from the record's property, not read back
    stored: bool = True
    #: the value NULL reads as when the field cannot be None (its default), else None
    missing: Callable[[], Any] | None = None

    def read(self, value: Any) -> Any:
        value = self.codec.from_sql(value)
        return self.missing() if value is None and self.missing is not None else value


def _columns(record: type, derived: Mapping[str, tuple[str, Codec]]) -> tuple[Column, ...]:
    """The record's fields in order, each derived column right after the field it follows."""
    hints = typing.get_type_hints(record)
    after = {follows: (name, codec) for name, (follows, codec) in derived.items()}
    columns = []
    for f in dataclasses.fields(record):
        hint = hints[f.name]
        missing: Callable[[], Any] | None = None
        if type(None) not in typing.get_args(hint):  # NULL reads as the field's default
            if f.default_factory is not dataclasses.MISSING:
                missing = f.default_factory
            elif f.default is not dataclasses.MISSING:
                missing = (lambda d: lambda: d)(f.default)
        columns.append(Column(f.name, codec_of(hint), missing=missing))
        if f.name in after:
            name, codec = after[f.name]
            columns.append(Column(name, codec, stored=False))
    return tuple(columns)


class Table(Generic[R]):
    """A table whose rows are records of one dataclass; ``key``: the fields that name a row."""

    def __init__(
        self,
        name: str,
        record: type[R],
        key: Sequence[str],
        derived: Mapping[str, tuple[str, Codec]] | None = None,
    ) -> None:
        self.name = name
        self.record_type = record
        self.key_fields = tuple(key)
        self.columns = _columns(record, derived or {})
        self.names = [c.name for c in self.columns]
        cols = ", ".join(self.names)
        marks = ", ".join("?" for _ in self.columns)
        #: insert or replace one row (the writes are idempotent: a write-ahead file may be applied twice)
        self.insert = f"INSERT OR REPLACE INTO {name} ({cols}) VALUES ({marks})"
        #: every column, in order; add WHERE, ORDER BY, ...
        self.select = f"SELECT {cols} FROM {name}"

    def row(self, record: R) -> tuple[Any, ...]:
        """The record as the values of :attr:`insert`."""
        return tuple(c.codec.to_sql(getattr(record, c.name)) for c in self.columns)

    def record(self, row: Sequence[Any]) -> R:
        """A row of :attr:`select` (or of :attr:`insert`) as the record."""
        values = {c.name: c.read(v) for c, v in zip(self.columns, row, strict=True) if c.stored}
        return self.record_type(**values)

    def key(self, record: R) -> tuple[Any, ...]:
        """What names the record's row (a later write of it replaces an earlier one)."""
        return (self.name, *(getattr(record, f) for f in self.key_fields))


@dataclass
class LogRecord:
    """An attempt's captured output (already capped), as the ``logs`` table holds it."""

    run_id: str
    task: str
    attempt: int
    text: str


_DURATION = {"duration_s": ("ended_at", DOUBLE)}

RUNS = Table("runs", RunRecord, key=["run_id"], derived=_DURATION)
TASKS = Table("tasks", TaskRecord, key=["run_id", "task"], derived=_DURATION)
ATTEMPTS = Table("attempts", AttemptRecord, key=["run_id", "task", "attempt"], derived=_DURATION)
LOGS = Table("logs", LogRecord, key=["run_id", "task", "attempt"])
#: rows are only ever added (each gets an ``id`` from a sequence), never replaced
NOTIFICATIONS = Table("notifications", NotificationRecord, key=[])

#: every table's columns, in order, as the schema declares them
TABLE_COLUMNS: dict[str, list[str]] = {
    RUNS.name: RUNS.names,
    TASKS.name: TASKS.names,
    ATTEMPTS.name: ATTEMPTS.names,
    NOTIFICATIONS.name: ["id", *NOTIFICATIONS.names],
    LOGS.name: LOGS.names,
}

_LATEST_RUN = "(SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1)"

INSERT_RUN = RUNS.insert
INSERT_TASK = TASKS.insert
INSERT_ATTEMPT = ATTEMPTS.insert
INSERT_LOG = LOGS.insert
SELECT_RUN = f"{RUNS.select} WHERE run_id = ?"
SELECT_RUNS = f"{RUNS.select} ORDER BY started_at DESC, run_id DESC"
SELECT_TASKS = f"{TASKS.select} WHERE run_id = ? ORDER BY task"
SELECT_TASKS_OF_RUN_OR_LATEST = f"{TASKS.select} WHERE run_id = coalesce(?, {_LATEST_RUN}) ORDER BY task"
SELECT_ATTEMPTS = f"{ATTEMPTS.select} WHERE run_id = ? AND (? IS NULL OR task = ?) ORDER BY task, attempt"
SELECT_LAST_SUCCESSES = (
    f"{ATTEMPTS.select} WHERE state = 'success' "
    "QUALIFY row_number() OVER (PARTITION BY task ORDER BY ended_at DESC, run_id DESC) = 1"
)
SELECT_LOG = "SELECT text FROM logs WHERE run_id = ? AND task = ? AND attempt = ?"

_NOTIFICATION_COLS = ", ".join(NOTIFICATIONS.names)
# idempotent, like every write (a write-ahead file may be applied after its rows landed)
INSERT_NOTIFICATION = (
    f"INSERT INTO notifications ({_NOTIFICATION_COLS}) "
    f"SELECT * FROM (VALUES ({', '.join('?' for _ in NOTIFICATIONS.columns)})) v({_NOTIFICATION_COLS}) "
    "WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.run_id = v.run_id AND n.task IS NOT DISTINCT FROM v.task "
    "AND n.attempt IS NOT DISTINCT FROM v.attempt AND n.event = v.event AND n.channel = v.channel "
    "AND n.sent_at = v.sent_at)"
)
SELECT_NOTIFICATIONS = f"{NOTIFICATIONS.select} WHERE run_id = ? ORDER BY id"

#: the statements a write-ahead file may name (by their exact text), with the number of values each takes
WRITES: dict[str, int] = {
    sql: sql.count("?") for sql in (INSERT_RUN, INSERT_TASK, INSERT_ATTEMPT, INSERT_LOG, INSERT_NOTIFICATION)
}
