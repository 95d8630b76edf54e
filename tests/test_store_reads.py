"""The reads a watching dashboard makes: one-connection snapshots, and records still written ahead."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from nbflow.store.base import RunRecord, TaskRecord
from nbflow.store.duckdb import DuckDBRunStore


def _run(run_id: str, minute: int, state: str = "success") -> RunRecord:
    return RunRecord(run_id, "/p", state, datetime(2026, 11, 25, 10, minute))


def test_runs_and_tasks_reads_the_newest_run_or_a_chosen_one(tmp_path: Path) -> None:
    with DuckDBRunStore(tmp_path / "state.duckdb") as store:
        assert store.runs_and_tasks() == ([], {})
        for run_id, minute in (("old", 1), ("new", 2)):
            store.save_run(_run(run_id, minute))
            store.save_task(TaskRecord(run_id, "a", "success", 1))
            store.save_task(TaskRecord(run_id, "b", "failed" if run_id == "old" else "success", 1))
        runs, tasks = store.runs_and_tasks(limit=1)
        assert [r.run_id for r in runs] == ["new"] and {n: t.state for n, t in tasks.items()} == {
            "a": "success",
            "b": "success",
        }
        runs, tasks = store.runs_and_tasks("old")
        assert [r.run_id for r in runs] == ["new", "old"] and tasks["b"].state == "failed"
        assert tasks == store.get_tasks("old")


def test_records_written_ahead_are_visible_before_the_database_has_them(tmp_path: Path) -> None:
    path = tmp_path / "state.duckdb"
    writer = DuckDBRunStore(path)
    writer.save_run(_run("r1", 1, "running"))
    writer.flush()
    holder = subprocess.Popen(  # another process holds the database: the writer must wait
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        writer.save_task(TaskRecord("r1", "a", "running", 1, datetime(2026, 11, 25, 10, 1)))
        writer.save_task(
            TaskRecord("r1", "a", "success", 1, datetime(2026, 11, 25, 10, 1), datetime(2026, 11, 25, 10, 2))
        )
        writer.save_run(_run("r1", 1, "success"))
        reader = DuckDBRunStore(path)
        runs, tasks = reader.written_ahead()
        assert runs["r1"].state == "success", "the newest record of the run"
        assert tasks[("r1", "a")].state == "success" and tasks[("r1", "a")].duration_s == 60.0
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    writer.flush(timeout=30)
    deadline = time.monotonic() + 60
    while DuckDBRunStore(path).written_ahead() != ({}, {}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert DuckDBRunStore(path).written_ahead() == ({}, {}), "applied, the write-ahead file is emptied"
    assert DuckDBRunStore(path).get_tasks("r1")["a"].state == "success"
    writer.close()
