"""Schedules: an injected clock for timing, real runs, one real short-interval scheduler, backfill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from nbflow.errors import InvalidSettingsError
from nbflow.integrations.cron import CronScheduler, backfill_dates
from nbflow.project.settings import load_project
from nbflow.store.duckdb import DuckDBRunStore
from tests.conftest import nbflow_process, write_notebook


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class FakeProcess:
    def __init__(self) -> None:
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


def _pipeline(root: Path, schedule: str, extra: str = "") -> Path:
    (root / "nbflow.toml").write_text(f'schedule = "{schedule}"\n{extra}')
    write_notebook(
        root,
        "daily",
        "upstream = None\nlogical_date = None\nproduct = 'dates.txt'",
        "open(product, 'a').write(logical_date + '\\n')",
    )
    return root


def test_runs_start_on_time_with_an_injected_clock(tmp_path: Path) -> None:
    _pipeline(tmp_path, "0 6 * * *")
    clock = Clock(datetime(2026, 11, 25, 5, 59, 30))
    scheduler = CronScheduler([tmp_path], clock=clock, log=lambda text: None)
    assert scheduler.tick() == []
    clock.now = datetime(2026, 11, 25, 6, 0, 0)
    [(path, when)] = scheduler.tick()
    assert when == datetime(2026, 11, 25, 6, 0)
    [proc] = scheduler.pipelines[0].active
    assert proc.wait(120) == 0
    assert (tmp_path / "dates.txt").read_text() == "2026-11-25T06:00:00\n"
    run = DuckDBRunStore(tmp_path / "_nbflow" / "state.duckdb").latest_run()
    assert run.logical_date == "2026-11-25T06:00:00" and run.state == "success"


def test_never_two_runs_at_once_and_a_failing_run_is_survived(tmp_path: Path) -> None:
    _pipeline(tmp_path, "@hourly")
    launched: list[tuple[datetime, FakeProcess]] = []

    def launch(path: Path, when: datetime) -> FakeProcess:
        launched.append((when, FakeProcess()))
        return launched[-1][1]

    logs: list[str] = []
    clock = Clock(datetime(2026, 11, 25, 0, 30))
    scheduler = CronScheduler([tmp_path], clock=clock, launch=launch, log=logs.append)
    clock.now = datetime(2026, 11, 25, 1, 0)
    scheduler.tick()
    clock.now = datetime(2026, 11, 25, 2, 0)  # the 01:00 run is still going: the 02:00 one is skipped
    assert scheduler.tick() == []
    assert any("skipped the run due at 2026-11-25 02:00:00" in line for line in logs)
    launched[0][1].returncode = 1  # it failed
    clock.now = datetime(2026, 11, 25, 3, 0)
    assert scheduler.tick() == [(tmp_path, datetime(2026, 11, 25, 3, 0))]
    assert any("a run ended with exit code 1" in line for line in logs)


def test_max_active_runs_queues_instead_of_skipping(tmp_path: Path) -> None:
    _pipeline(tmp_path, "@hourly", "max_active_runs = 2\n")
    procs: list[FakeProcess] = []
    clock = Clock(datetime(2026, 11, 25, 0, 30))
    scheduler = CronScheduler(
        [tmp_path], clock=clock, launch=lambda p, w: procs.append(FakeProcess()) or procs[-1], log=lambda text: None
    )
    clock.now = datetime(2026, 11, 25, 2, 0)  # 01:00 and 02:00 are due: one runs, one waits its turn
    assert [w.hour for _, w in scheduler.tick()] == [1]
    procs[0].returncode = 0
    assert [w.hour for _, w in scheduler.tick()] == [2]


def test_a_real_scheduler_process_runs_on_a_short_interval_and_stops_on_sigterm(tmp_path: Path) -> None:
    _pipeline(tmp_path, "* * * * * */2")  # every 2 seconds (croniter's seconds field)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbflow", "scheduler", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "dates.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert "scheduler stopped" in err
    dates = (tmp_path / "dates.txt").read_text().split()
    assert dates and all(datetime.fromisoformat(d).second % 2 == 0 for d in dates)
    runs = json.loads(nbflow_process("history", str(tmp_path), "--json").stdout)["runs"]
    assert runs and {r["state"] for r in runs} <= {"success", "interrupted"}


def test_backfill_runs_past_dates_in_order_and_skips_what_succeeded(tmp_path: Path) -> None:
    _pipeline(tmp_path, "@daily")
    first = nbflow_process("backfill", str(tmp_path), "--start", "2026-11-01", "--end", "2026-11-03")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "dates.txt").read_text().split() == [f"2026-11-0{d}T00:00:00" for d in (1, 2, 3)]
    second = nbflow_process("backfill", str(tmp_path), "--start", "2026-11-01", "--end", "2026-11-04")
    assert second.returncode == 0, second.stderr
    assert "2026-11-02T00:00:00: already succeeded, skipped" in second.stderr
    assert (tmp_path / "dates.txt").read_text().split()[-1] == "2026-11-04T00:00:00"
    assert len((tmp_path / "dates.txt").read_text().split()) == 4


def test_schedule_settings_are_validated(tmp_path: Path) -> None:
    (tmp_path / "nbflow.toml").write_text('schedule = "every tuesday"\n')
    with pytest.raises(InvalidSettingsError, match="'schedule' must be a cron line"):
        load_project(tmp_path)
    assert backfill_dates("@daily", datetime(2026, 1, 1), datetime(2026, 1, 1) + timedelta(days=1)) == [
        datetime(2026, 1, 1),
        datetime(2026, 1, 2),
    ]
