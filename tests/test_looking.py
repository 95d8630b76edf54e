"""Looking is never running: the dashboard, ``nbflow dag`` and ``nbflow report`` run no code of
a folder and write nothing into it; its code runs when the user runs the pipeline."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from conftest import nbflow_process
from hostile_folders import code_folder, markers_made, pickle_folder, snapshot, wal_folder

import nbflow
from nbflow import states
from nbflow.pipeline import Pipeline


def _until(check: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """(root, markers): the three hostile folders below root, their files old enough to be cached."""
    root, markers = tmp_path / "root", tmp_path / "markers"
    markers.mkdir()
    pickle_folder(root / "pickled", markers / "unpickled")
    code_folder(root / "coded", markers / "imported")
    wal_folder(root / "walled", markers / "copied")
    shutil.copy(root / "coded" / "nbflow_tasks.py", root / "walled" / "nbflow_tasks.py")  # code and runs
    for path in root.rglob("*.*"):
        os.utime(path, (time.time() - 60, time.time() - 60))
    return root, markers


def test_showing_the_dashboard_runs_nothing_and_writes_nothing(folders: tuple[Path, Path]) -> None:
    root, markers = folders
    before = snapshot(root)
    for name in ("pickled", "coded", "walled"):
        for dashboard in (nbflow.show(root / name), Pipeline.from_dir(root / name, save_cache=False).widget()):
            try:
                watcher, ticks = dashboard.watcher, dashboard.watcher.ticks
                _until(lambda w=watcher, t=ticks: w.ticks >= t + 3, "the store watcher to look a few times")
                if name == "walled":
                    assert dashboard.run_record is not None and dashboard.run_record.run_id == "r2"
                    dashboard.select_task("load")  # the task panel reads attempts and the log
                    assert "from the dead writer" in dashboard.task_log.value
                if name != "pickled":
                    assert "nbflow_tasks.py defines tasks in code" in dashboard.message.value
                    assert "double" in dashboard.dag.upstreams
            finally:
                dashboard.close()
    assert snapshot(root) == before, "showing wrote nothing"
    assert markers_made(markers) == [], "showing ran nothing"


def test_the_dashboards_run_is_when_the_code_runs(folders: tuple[Path, Path]) -> None:
    root, markers = folders
    dashboard = nbflow.show(root / "coded")
    try:
        assert markers_made(markers) == []
        assert dashboard.run(only=["double"]) is not None
        result = dashboard.wait(180)
        assert result is not None and result.states == {"load": states.SUCCESS, "double": states.SUCCESS}
        assert markers_made(markers) == ["imported", "imported.setup"], "the user ran it: now it ran"
        assert (root / "coded" / "double.txt").read_text() == "42"
        assert dashboard.message.value.count("defines tasks in code") == 0
    finally:
        dashboard.close()


def test_dag_and_report_from_a_terminal_run_nothing_and_write_nothing(folders: tuple[Path, Path], tmp_path) -> None:
    root, markers = folders
    before = snapshot(root)
    for name in ("pickled", "coded", "walled"):
        dag = nbflow_process("dag", str(root / name))
        assert dag.returncode == 0, dag.stderr
        assert ("double" in dag.stdout) == (name != "pickled")
        assert nbflow_process("dag", str(root / name), "--format", "dot").returncode == 0
    report = nbflow_process("report", str(root / "walled"), "-o", str(tmp_path / "report.html"))
    assert report.returncode == 0, report.stderr
    assert "r2" in (tmp_path / "report.html").read_text()
    assert snapshot(root) == before and markers_made(markers) == []
    status = nbflow_process("status", str(root / "walled"), "--run", "r1")  # a writer: it adopts the dead WAL
    assert status.returncode == 0, status.stderr
    assert markers_made(markers) == [], "a write-ahead file's SQL is never run; only nbflow's own records are"
    assert nbflow_process("history", str(root / "walled")).stdout.count("failed") == 1
    loaded = nbflow_process("dag", str(root / "coded"), "--load-code")
    assert loaded.returncode == 0 and markers_made(markers) == ["imported", "imported.setup"], "asked to run it"


def test_a_read_only_store_refuses_an_older_file_without_writing_it(tmp_path: Path) -> None:
    from nbflow.errors import StoreSchemaError
    from nbflow.store.duckdb import DuckDBRunStore
    from nbflow.store.duckdb.schema import SCHEMA

    path = tmp_path / "_nbflow" / "state.duckdb"
    path.parent.mkdir()
    con = duckdb.connect(str(path))  # a development build's file of schema 7: attempts had no worker column
    con.execute(SCHEMA)
    con.execute("ALTER TABLE attempts DROP COLUMN worker")
    con.execute("INSERT INTO nbflow_meta VALUES ('schema_version', '7')")
    con.execute(
        "INSERT INTO runs (run_id, pipeline, state, started_at) VALUES ('r1', ?, 'success', TIMESTAMP '2026-01-01')",
        [str(tmp_path)],
    )
    con.close()
    before = snapshot(tmp_path)
    store = DuckDBRunStore(path, read_only=True)
    with pytest.raises(StoreSchemaError, match="schema 7"):
        store.list_runs()
    with pytest.raises(RuntimeError, match="read-only"):
        store.save_log("r1", "load", 1, "text")
    store.close()
    assert snapshot(tmp_path) == before, "not upgraded, not written"
    assert duckdb.connect(str(path), read_only=True).execute("SELECT value FROM nbflow_meta").fetchone() == ("7",)


def test_a_view_shows_a_dead_run_as_interrupted_without_recording_it(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    from datetime import datetime

    from nbflow.history import load_run, open_store
    from nbflow.store.base import RunRecord, TaskRecord
    from nbflow.store.duckdb import DuckDBRunStore

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that no longer runs: the run's process died
    started = datetime(2026, 1, 1)
    store = DuckDBRunStore(tmp_path / "_nbflow" / "state.duckdb")
    store.save_run(RunRecord("r1", str(tmp_path), "running", started, pid=gone.pid, hostname=socket.gethostname()))
    store.save_task(TaskRecord("r1", "load", "running", 1, started))
    store.close()
    before = snapshot(tmp_path)
    with open_store(tmp_path, read_only=True) as view:
        run, tasks = load_run(view, None)
    assert run.state == states.INTERRUPTED and tasks["load"].state == states.INTERRUPTED
    assert snapshot(tmp_path) == before, "shown as interrupted, not recorded"
    with open_store(tmp_path) as writer:  # a command that may write records it
        assert load_run(writer, None)[0].state == states.INTERRUPTED
        assert writer.get_run("r1").state == states.INTERRUPTED
