"""Every RunStore keeps the same contract; the DuckDB one is a real file any client can read."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from nbflow.store import AttemptRecord, RunRecord, TaskRecord
from nbflow.store.duckdb import DuckDBRunStore
from nbflow.store.memory import MemoryRunStore

T0 = datetime(2026, 11, 1, 12, 0, 0)


@pytest.fixture(params=["duckdb", "memory"])
def store(request, tmp_path: Path):
    s = DuckDBRunStore(tmp_path / "state.duckdb") if request.param == "duckdb" else MemoryRunStore()
    yield s
    s.close()


def _run(run_id: str, minutes: int, state: str = "success") -> RunRecord:
    return RunRecord(
        run_id,
        "/p",
        state,
        T0 + timedelta(minutes=minutes),
        T0 + timedelta(minutes=minutes, seconds=30),
        params={"n": 3, "train.lr": 0.1},
        workers=2,
        selected=["b"],
        nbflow_version="0.1.0",
        pid=1,
        hostname="h",
    )


def test_runs_newest_first_and_round_trip(store) -> None:
    store.save_run(_run("r1", 0))
    store.save_run(_run("r2", 5, "failed"))
    runs = store.list_runs()
    assert [r.run_id for r in runs] == ["r2", "r1"]
    assert store.latest_run().run_id == "r2"
    assert store.list_runs(limit=1)[0].run_id == "r2"
    got = store.get_run("r1")
    assert got == _run("r1", 0)
    assert got.duration_s == 30.0
    assert store.get_run("nope") is None


def test_later_writes_replace_earlier_ones(store) -> None:
    store.save_task(TaskRecord("r1", "a", "running", 1, T0))
    store.save_task(TaskRecord("r1", "a", "failed", 1, T0, T0 + timedelta(seconds=2), "ValueError: x", "/o.ipynb"))
    store.save_task(TaskRecord("r1", "b", "upstream_failed"))
    store.save_task(TaskRecord("r2", "a", "success", 1))
    tasks = store.get_tasks("r1")
    assert list(tasks) == ["a", "b"]
    assert tasks["a"].state == "failed" and tasks["a"].duration_s == 2.0 and tasks["a"].error == "ValueError: x"
    assert tasks["b"].attempts == 0 and tasks["b"].started_at is None


def test_attempts_and_logs(store) -> None:
    for n in (1, 2):
        store.save_attempt(
            AttemptRecord(
                "r1",
                "a",
                n,
                "failed" if n == 1 else "success",
                T0,
                T0 + timedelta(seconds=n),
                parameters={"upstream": {"x": "/p/x.csv"}, "s": 'a"b'},
                kernel_name="python3",
                source_hash="abc",
                output_notebook=f"/o{n}.ipynb",
                traceback="tb" if n == 1 else None,
            )
        )
        store.save_log("r1", "a", n, f"output {n}\n")
    store.save_attempt(AttemptRecord("r1", "b", 1, "success", T0))
    attempts = store.get_attempts("r1", "a")
    assert [(a.attempt, a.state) for a in attempts] == [(1, "failed"), (2, "success")]
    assert attempts[0].parameters == {"upstream": {"x": "/p/x.csv"}, "s": 'a"b'}
    assert attempts[0].traceback == "tb" and attempts[1].duration_s == 2.0
    assert len(store.get_attempts("r1")) == 3
    assert store.get_log("r1", "a", 2) == "output 2\n"
    assert store.get_log("r1", "a", 3) is None


def test_duckdb_file_is_queryable_by_any_client(tmp_path: Path) -> None:
    path = tmp_path / "state.duckdb"
    with DuckDBRunStore(path) as store:
        store.save_run(_run("r1", 0))
        store.save_task(TaskRecord("r1", "train", "success", 1, T0, T0 + timedelta(seconds=4)))
        store.save_run(_run("r2", 60 * 24 * 30))
        store.save_task(TaskRecord("r2", "train", "success", 1, T0, T0 + timedelta(seconds=9)))
    con = duckdb.connect(str(path), read_only=True)
    try:
        # "which task got slower": one query over the documented schema
        rows = con.execute(
            "SELECT task, max(t.duration_s) - min(t.duration_s) AS slower_by FROM tasks t JOIN runs USING (run_id) "
            "GROUP BY task ORDER BY slower_by DESC"
        ).fetchall()
        assert rows == [("train", 5.0)]
        assert con.execute("SELECT params->>'n' FROM runs WHERE run_id = 'r1'").fetchone() == ("3",)
    finally:
        con.close()


def test_reading_a_missing_store_finds_nothing(tmp_path: Path) -> None:
    store = DuckDBRunStore(tmp_path / "none" / "state.duckdb")
    assert store.list_runs() == [] and store.get_tasks("r") == {}
    assert not (tmp_path / "none").exists()


def test_a_store_from_a_development_build_is_refused_clearly(tmp_path: Path) -> None:
    from nbflow.errors import StoreSchemaError

    path = tmp_path / "state.duckdb"
    con = duckdb.connect(str(path))  # a file of the development builds' schema 1: runs had fewer columns
    con.execute("CREATE TABLE nbflow_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO nbflow_meta VALUES ('schema_version', '1')")
    con.execute(
        "CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, pipeline VARCHAR NOT NULL, state VARCHAR NOT NULL, "
        "started_at TIMESTAMP NOT NULL, ended_at TIMESTAMP, duration_s DOUBLE, params JSON, workers INTEGER, "
        "selected JSON, nbflow_version VARCHAR, pid INTEGER, hostname VARCHAR)"
    )
    con.execute(
        "INSERT INTO runs VALUES ('old', '/p', 'success', TIMESTAMP '2026-01-01', NULL, NULL, '{}', 1, NULL, '0.0.1', 1, 'h')"
    )
    con.close()
    for read_only in (False, True):
        with pytest.raises(StoreSchemaError, match="development build") as caught:
            DuckDBRunStore(path, read_only=read_only).list_runs()
        assert "runs table lacks resumed_from" in str(caught.value) and "move it aside" in str(caught.value)
    store = DuckDBRunStore(path)
    store.save_run(_run("new", 0))
    with pytest.raises(StoreSchemaError, match="development build"):
        store.flush()
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT run_id FROM runs").fetchall() == [("old",)], "neither upgraded nor written"
    con.close()


def test_a_store_from_a_newer_nbflow_is_refused_clearly(tmp_path: Path, nbflow_cli) -> None:
    from nbflow.errors import StoreSchemaError

    path = tmp_path / "_nbflow" / "state.duckdb"
    with DuckDBRunStore(path) as store:
        store.save_run(_run("r1", 0))
    con = duckdb.connect(str(path))
    con.execute("UPDATE nbflow_meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    store = DuckDBRunStore(path)
    store.save_run(_run("r2", 1))
    with pytest.raises(StoreSchemaError, match="written by a newer nbflow") as caught:
        store.flush()
    assert (caught.value.found, caught.value.expected) == ("999", 1)
    with pytest.raises(StoreSchemaError, match="schema 999"):
        DuckDBRunStore(path, read_only=True).get_run("r1")
    result = nbflow_cli("status", str(tmp_path))
    assert result.exit_code == 2 and "written by a newer nbflow" in result.stderr and "move it aside" in result.stderr
    assert "Traceback" not in result.stderr


HOLD = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1], read_only=True)
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold(path: Path, seconds: float):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_writes_wait_for_a_reader_that_holds_the_file_and_nothing_is_lost(tmp_path: Path, caplog) -> None:
    path = tmp_path / "state.duckdb"
    with DuckDBRunStore(path) as store:
        store.save_run(_run("r0", 0))
    holder = _hold(path, 3)
    store = DuckDBRunStore(path, lock_timeout=0.5)
    for i in range(20):
        store.save_task(TaskRecord("r1", f"t{i}", "success", 1))
    store.save_run(_run("r1", 1))
    store.close()  # gives up waiting after 0.5 s: the records stay in its write-ahead file
    assert f"kept in {store.wal_path.name}" in caplog.text
    assert store.wal_path.exists()
    holder.wait()
    holder.stdout.close()
    with DuckDBRunStore(path) as later:  # the next writer applies the orphaned file first
        later.save_run(_run("r2", 2))
    reader = DuckDBRunStore(path)
    assert [r.run_id for r in reader.list_runs()] == ["r2", "r1", "r0"]
    assert len(reader.get_tasks("r1")) == 20
    assert not store.wal_path.exists()
    assert not list(tmp_path.glob("*.jsonl")), "a store that closed with nothing pending leaves no file"


KILLED_WRITER = """
import sys, time
from nbflow.store.duckdb import DuckDBRunStore
from nbflow.store.base import TaskRecord
store = DuckDBRunStore(sys.argv[1])
store._ensure_schema()
store._write_batch = lambda batch: time.sleep(600)   # a write that has not landed when the kill comes
for i in range(5):
    store.save_task(TaskRecord("r1", f"t{i}", "success", 1))
print("queued", flush=True)
sys.stdin.readline()
"""


def test_a_killed_process_keeps_its_records_and_a_live_ones_file_is_left_alone(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "state.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "queued"
    reader = DuckDBRunStore(path)
    assert reader.get_tasks("r1") == {}, "the live process's write-ahead file is not taken from it"
    assert len(list(tmp_path.glob("state.duckdb.wal-*.jsonl"))) == 1
    proc.kill()
    proc.communicate()
    tasks = DuckDBRunStore(path).get_tasks("r1")  # the next reader applies what the killed process queued
    assert sorted(tasks) == [f"t{i}" for i in range(5)]
    assert {t.state for t in tasks.values()} == {"success"}
    assert not list(tmp_path.glob("state.duckdb.wal-*.jsonl"))


def test_a_reader_and_a_writer_in_one_process(tmp_path: Path) -> None:
    import threading

    store = DuckDBRunStore(tmp_path / "state.duckdb")
    store.save_run(_run("r1", 0))
    store.flush()
    reader = DuckDBRunStore(tmp_path / "state.duckdb")
    done = threading.Event()

    def write() -> None:
        for i in range(200):
            store.save_task(TaskRecord("r1", f"t{i % 7}", "running", i))
        store.flush()
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    reads = 0
    while not done.is_set():
        reader.get_tasks("r1")  # must neither fail nor make the writer fail
        reads += 1
    thread.join()
    store.close()
    assert reads > 0
    assert {t.attempts for t in reader.get_tasks("r1").values()} == {193, 194, 195, 196, 197, 198, 199}


def test_a_damaged_store_file_is_a_clear_error(tmp_path: Path, nbflow_cli) -> None:
    (tmp_path / "_nbflow").mkdir()
    (tmp_path / "_nbflow" / "state.duckdb").write_text("this is not a database")
    result = nbflow_cli("status", str(tmp_path))
    assert result.exit_code == 2
    assert "cannot be used" in result.stderr and "move it aside" in result.stderr
    assert "Traceback" not in result.stderr


def test_notifications(store) -> None:
    from nbflow.store.base import NotificationRecord

    store.save_notification(NotificationRecord("r1", "a", 1, "failure", "email", True, None, T0))
    store.save_notification(NotificationRecord("r1", None, None, "run_end", "webhook", False, "URLError: refused", T0))
    store.save_notification(NotificationRecord("r2", "a", 1, "failure", "email", True, None, T0))
    got = store.get_notifications("r1")
    assert [(n.event, n.channel, n.ok, n.error) for n in got] == [
        ("failure", "email", True, None),
        ("run_end", "webhook", False, "URLError: refused"),
    ]


def test_last_successes_across_runs(store) -> None:
    for run_id, minutes, state, fp in (
        ("r1", 0, "success", "f1"),
        ("r2", 5, "success", "f2"),
        ("r3", 9, "failed", "f3"),
    ):
        store.save_attempt(
            AttemptRecord(
                run_id,
                "a",
                1,
                state,
                T0 + timedelta(minutes=minutes),
                T0 + timedelta(minutes=minutes, seconds=1),
                fingerprint=fp,
            )
        )
    store.save_attempt(AttemptRecord("r1", "b", 1, "success", T0, T0 + timedelta(seconds=1), fingerprint="g"))
    latest = store.last_successes()
    assert {t: a.fingerprint for t, a in latest.items()} == {"a": "f2", "b": "g"}
    assert latest["a"].run_id == "r2"
