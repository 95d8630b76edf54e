"""The DuckDB store's column table: every field of every record through a real file and back,
the file's columns as the records declare them, and write-ahead files taken as data only."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from nbflow.store.base import AttemptRecord, NotificationRecord, RunRecord, TaskRecord
from nbflow.store.duckdb import DuckDBRunStore, records, wal
from nbflow.store.duckdb.records import ATTEMPTS, NOTIFICATIONS, RUNS, TABLE_COLUMNS, TASKS
from nbflow.store.memory import MemoryRunStore
from nbflow.store.reader import StoreReader
from nbflow.store.watch import store_stamp

T0 = datetime(2026, 11, 1, 12, 0, 0, 123456)
T1 = datetime(2026, 11, 1, 12, 3, 30, 654321)

FULL_RUN = RunRecord(
    "r1",
    "/p",
    "success",
    T0,
    T1,
    params={"n": 3, "train.lr": 0.1, "nested": {"a": [1, None, "x"]}},
    workers=4,
    selected=["a", "b"],
    nbflow_version="1.0.0",
    pid=4242,
    hostname="h",
    resumed_from="r0",
    logical_date="2026-11-01",
    environment={"python": "3.11", "packages": {"duckdb": "1.1"}, "sources": {"a": "sha256:x"}},
)
BARE_RUN = RunRecord("r2", "/p", "running", T0)
FULL_TASK = TaskRecord("r1", "a", "failed", 2, T0, T1, "ValueError: x", "/o.ipynb", "its code changed")
BARE_TASK = TaskRecord("r1", "b", "pending")
FULL_ATTEMPT = AttemptRecord(
    "r1",
    "a",
    2,
    "failed",
    T0,
    T1,
    parameters={"upstream": {"load": "load.csv"}, "product": "a.csv", "n": 3},
    kernel_name="python3",
    source_hash="s1",
    output_notebook="/o.ipynb",
    log_path="/o.log",
    error="ValueError: x",
    traceback="Traceback ...\nValueError: x",
    fingerprint="f1",
    products={"a.csv": "sha256:abc"},
    worker="tcp://10.0.0.2:4000",
)
BARE_ATTEMPT = AttemptRecord("r1", "b", 1, "running", T0)
NOTIFICATIONS_SENT = [
    NotificationRecord("r1", "a", 2, "failure", "email", True, None, T1),
    NotificationRecord("r1", None, None, "run_end", "webhook", False, "URLError: refused", T1),
]


def _every_field_set(record: object) -> None:
    unset = [f.name for f in dataclasses.fields(record) if getattr(record, f.name) in (None, {}, [], "", 0)]
    assert not unset, f"the full record leaves {unset} unset"


@pytest.mark.parametrize("read_only", [False, True])
def test_every_field_of_every_record_round_trips_through_a_file(tmp_path: Path, read_only: bool) -> None:
    for record in (FULL_RUN, FULL_TASK, FULL_ATTEMPT):
        _every_field_set(record)
    path = tmp_path / "state.duckdb"
    with DuckDBRunStore(path) as store:
        for run in (FULL_RUN, BARE_RUN):
            store.save_run(run)
        for task in (FULL_TASK, BARE_TASK):
            store.save_task(task)
        for attempt in (FULL_ATTEMPT, BARE_ATTEMPT):
            store.save_attempt(attempt)
        for sent in NOTIFICATIONS_SENT:
            store.save_notification(sent)
        store.save_log("r1", "a", 2, "out\n\u00e9\u4e2d\n")
    with DuckDBRunStore(path, read_only=read_only) as reader:
        assert reader.get_run("r1") == FULL_RUN and reader.get_run("r2") == BARE_RUN
        assert reader.get_tasks("r1") == {"a": FULL_TASK, "b": BARE_TASK}
        assert reader.get_attempts("r1") == [FULL_ATTEMPT, BARE_ATTEMPT]
        assert reader.get_notifications("r1") == NOTIFICATIONS_SENT
        assert reader.get_log("r1", "a", 2) == "out\n\u00e9\u4e2d\n"
        assert reader.runs_and_tasks("r1") == ([BARE_RUN, FULL_RUN], {"a": FULL_TASK, "b": BARE_TASK})
    con = duckdb.connect(str(path), read_only=True)
    try:  # what a DuckDB client sees: derived durations, JSON that SQL reads
        assert con.execute(
            "SELECT duration_s, environment->'packages'->>'duckdb' FROM runs WHERE run_id = 'r1'"
        ).fetchone() == (
            (T1 - T0).total_seconds(),
            "1.1",
        )
        assert con.execute("SELECT params, selected FROM runs WHERE run_id = 'r2'").fetchone() == ("{}", None)
        assert con.execute("SELECT duration_s FROM attempts WHERE task = 'b'").fetchone() == (None,)
    finally:
        con.close()


def test_records_round_trip_through_a_write_ahead_file(tmp_path: Path) -> None:
    path = tmp_path / "state.duckdb"
    own = wal.WriteAheadFile(path)
    for table, record in ((RUNS, FULL_RUN), (RUNS, BARE_RUN), (TASKS, FULL_TASK), (TASKS, BARE_TASK)):
        own.append(table.insert, table.row(record))
    own.append(ATTEMPTS.insert, ATTEMPTS.row(FULL_ATTEMPT))
    runs, tasks = wal.written_ahead(path)
    assert runs == {"r1": FULL_RUN, "r2": BARE_RUN}
    assert tasks == {("r1", "a"): FULL_TASK, ("r1", "b"): BARE_TASK}
    with open(own.path, encoding="utf-8") as f:
        [*_, (sql, row)] = wal.entries(f)
    assert sql == ATTEMPTS.insert and ATTEMPTS.record(row) == FULL_ATTEMPT
    own.close(delete=True)
    assert not own.path.exists()


def test_the_files_columns_are_the_records_fields_with_their_types(tmp_path: Path) -> None:
    path = tmp_path / "state.duckdb"
    with DuckDBRunStore(path) as store:
        store.save_run(BARE_RUN)
    con = duckdb.connect(str(path), read_only=True)
    try:
        for table in (RUNS, TASKS, ATTEMPTS, records.LOGS, NOTIFICATIONS):
            described = [(name, kind) for name, kind, *_ in con.execute(f"DESCRIBE {table.name}").fetchall()]
            assert [name for name, _ in described] == TABLE_COLUMNS[table.name]
            kinds = dict(described)
            assert {c.name: kinds[c.name] for c in table.columns} == {c.name: c.codec.sql_type for c in table.columns}
    finally:
        con.close()
    names = {c.name for c in RUNS.columns}
    assert {f.name for f in dataclasses.fields(RunRecord)} | {"duration_s"} == names


def test_a_null_reads_as_the_fields_default(tmp_path: Path) -> None:
    path = tmp_path / "state.duckdb"
    with DuckDBRunStore(path) as store:
        store.save_run(BARE_RUN)
    con = duckdb.connect(str(path))  # another client wrote only what the table requires
    con.execute("INSERT INTO runs (run_id, pipeline, state, started_at) VALUES ('bare', '/q', 'success', ?)", [T0])
    con.execute(
        "INSERT INTO attempts (run_id, task, attempt, state, started_at) VALUES ('bare', 'a', 1, 'success', ?)", [T0]
    )
    con.close()
    store = DuckDBRunStore(path)
    assert store.get_run("bare") == RunRecord("bare", "/q", "success", T0)
    assert store.get_attempts("bare") == [AttemptRecord("bare", "a", 1, "success", T0)]


def test_a_record_field_without_a_codec_is_refused_when_the_table_is_declared() -> None:
    @dataclasses.dataclass
    class Odd:
        run_id: str
        tags: set[str]

    with pytest.raises(TypeError, match="no column codec"):
        records.Table("odd", Odd, key=["run_id"])


def test_a_planted_write_ahead_file_runs_no_sql_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "_nbflow" / "state.duckdb"
    with DuckDBRunStore(path) as store:
        store.save_run(BARE_RUN)
    marker = tmp_path / "marker.csv"
    good = RUNS.row(dataclasses.replace(FULL_RUN, run_id="planted"))
    lines = [
        {"sql": f"COPY (SELECT 1 AS x) TO '{marker}' (FORMAT csv)", "row": []},
        {"sql": RUNS.insert + f"; COPY (SELECT 1) TO '{marker}'", "row": [wal.encode(v) for v in good]},
        {"sql": f"ATTACH '{tmp_path / 'other.duckdb'}' AS other", "row": []},
        {"sql": RUNS.insert, "row": [wal.encode(v) for v in good][:-1]},  # a value short
        {"sql": RUNS.insert, "row": [{"$sql": "x"}, *[wal.encode(v) for v in good][1:]]},  # not a plain value
        {"sql": records.INSERT_LOG, "row": ["r2", "a", 1, ["a", "list"]]},
        {"sql": RUNS.insert, "row": [wal.encode(v) for v in good]},  # the one line nbflow would write
    ]
    planted = path.with_name(path.name + ".wal-1-deadbeef.jsonl")
    planted.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"sql": "cut sho')
    linked = path.with_name(path.name + ".wal-2-linked00.jsonl")
    os.symlink(planted, linked)
    with open(planted, encoding="utf-8") as f:
        assert [sql for sql, _ in wal.entries(f)] == [RUNS.insert]
    view = DuckDBRunStore(path, read_only=True)  # reads the dead writer's file through a copy in memory
    assert [r.run_id for r in view.list_runs()] == ["r2", "planted"]
    assert planted.exists(), "a view writes nothing"
    store = DuckDBRunStore(path)  # a writer applies it, then deletes it
    assert store.get_run("planted") == dataclasses.replace(FULL_RUN, run_id="planted")
    assert [r.run_id for r in store.list_runs()] == ["r2", "planted"]
    assert not planted.exists() and linked.is_symlink(), "a symlink is not nbflow's: left alone"
    assert not marker.exists() and not (tmp_path / "other.duckdb").exists()
    assert store.get_log("r2", "a", 1) is None


def test_a_reader_reads_any_store(tmp_path: Path) -> None:
    memory = MemoryRunStore()
    memory.save_run(BARE_RUN)
    memory.save_run(FULL_RUN)
    memory.save_task(BARE_TASK)
    reader = StoreReader(tmp_path / "state.duckdb", store=memory)
    snap = reader.read()
    assert [r.run_id for r in snap.runs] == ["r2", "r1"] and snap.run == BARE_RUN and snap.tasks == {}
    snap = reader.read("r1")
    assert snap.run == FULL_RUN and snap.tasks == {"b": BARE_TASK}
    memory.save_task(FULL_TASK)
    assert reader.read("r1", reread=True).tasks == {"a": FULL_TASK, "b": BARE_TASK}
    assert memory.written_ahead() == ({}, {})


def test_one_stamp_tells_the_database_from_its_write_ahead_files(tmp_path: Path) -> None:
    path = tmp_path / "state.duckdb"
    assert store_stamp(path) == () and store_stamp(path, write_ahead=False) == ()
    with DuckDBRunStore(path) as store:
        store.save_run(BARE_RUN)
    whole, database = store_stamp(path), store_stamp(path, write_ahead=False)
    assert [name for name, *_ in database] == ["state.duckdb"]
    own = wal.WriteAheadFile(path)
    own.append(RUNS.insert, RUNS.row(FULL_RUN))
    assert store_stamp(path, write_ahead=False) == database, "a write-ahead file is not the database"
    assert store_stamp(path) != whole
    own.close(delete=True)
