"""Cron schedules: when a pipeline's next runs are due, the long-running scheduler, backfills.

The scheduler starts each run as its own ``nbflow run`` process, so a run that fails or
crashes never takes the scheduler down, and SIGTERM is passed on to the runs it started
(which record themselves ``interrupted``). Time comes from an injectable clock.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from nbflow.errors import NoScheduleError
from nbflow.project.params import logical_date_text

#: the scheduler's account of what it starts and stops (INFO); `nbflow scheduler` prints it
logger = logging.getLogger("nbflow.scheduler")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def fire_times(schedule: str, after: datetime, until: datetime | None = None) -> Iterator[datetime]:
    """The schedule's times strictly after ``after`` (up to ``until``, inclusive)."""
    from croniter import croniter

    it = croniter(schedule, after)
    while True:
        when = it.get_next(datetime)
        if until is not None and when > until:
            return
        yield when


@dataclass
class ScheduledPipeline:
    path: Path
    schedule: str
    max_active_runs: int = 1
    next_at: datetime | None = None
    active: list[subprocess.Popen[bytes]] = field(default_factory=list)
    queued: list[datetime] = field(default_factory=list)


class CronScheduler:
    """Starts runs of scheduled pipelines on time; one ``tick`` is one look at the clock.

    Parameters
    ----------
    pipelines
        Folders whose settings carry a ``schedule``.
    clock
        Returns the current UTC time (tests pass a fake one).
    launch
        Starts a run for a logical date and returns its process (tests may pass their own).
    log
        Told what the scheduler does, a line at a time (default: the ``nbflow.scheduler``
        logger, at INFO).
    """

    def __init__(
        self,
        pipelines: Sequence[Path],
        clock: Callable[[], datetime] = _utcnow,
        launch: Callable[[Path, datetime], subprocess.Popen[bytes]] | None = None,
        log: Callable[[str], None] = logger.info,
    ) -> None:
        from nbflow.project.settings import load_project

        self.clock = clock
        self.launch = launch or launch_run
        self.log = log
        self.pipelines: list[ScheduledPipeline] = []
        for path in pipelines:
            project = load_project(Path(path).resolve())
            if not project.schedule:
                raise NoScheduleError(str(path))
            self.pipelines.append(ScheduledPipeline(Path(path).resolve(), project.schedule, project.max_active_runs))
        self._stop = threading.Event()
        now = self.clock()
        for p in self.pipelines:
            p.next_at = next(fire_times(p.schedule, now))
            self.log(f"{p.path}: {p.schedule!r}, next run at {p.next_at:%Y-%m-%d %H:%M:%S} UTC")

    def tick(self) -> list[tuple[Path, datetime]]:
        """Start what is due; returns the runs started now."""
        now = self.clock()
        started: list[tuple[Path, datetime]] = []
        for p in self.pipelines:
            finished = [proc for proc in p.active if proc.poll() is not None]
            for proc in finished:
                p.active.remove(proc)
                self.log(f"{p.path}: a run ended with exit code {proc.returncode}")
            while p.next_at is not None and p.next_at <= now:
                if len(p.active) + len(p.queued) < p.max_active_runs:
                    p.queued.append(p.next_at)
                else:
                    self.log(
                        f"{p.path}: skipped the run due at {p.next_at:%Y-%m-%d %H:%M:%S}: "
                        f"{p.max_active_runs} run(s) still active"
                    )
                p.next_at = next(fire_times(p.schedule, p.next_at))
            while p.queued and not p.active:  # one run of a pipeline folder at a time
                when = p.queued.pop(0)
                p.active.append(self.launch(p.path, when))
                started.append((p.path, when))
                self.log(f"{p.path}: started the run for {logical_date_text(when)}")
        return started

    def seconds_to_next(self) -> float:
        now = self.clock()
        pending = [p.next_at for p in self.pipelines if p.next_at is not None]
        wait = min(((t - now).total_seconds() for t in pending), default=60.0)
        return max(0.0, min(wait, 1.0))

    def serve(self) -> None:
        """Run until :meth:`stop` (or SIGTERM, when set up by the CLI)."""
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.seconds_to_next())
        self.shutdown()

    def stop(self) -> None:
        self._stop.set()

    def shutdown(self, grace: float = 60.0) -> None:
        """Pass SIGTERM on to the runs in progress and wait for them to record themselves."""
        for p in self.pipelines:
            for proc in p.active:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in p.active:
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            p.active.clear()
        self.log("scheduler stopped")


def launch_run(path: Path, when: datetime) -> subprocess.Popen[bytes]:
    """``nbflow run PATH --logical-date WHEN`` as its own process, its output on ours."""
    return subprocess.Popen(
        # a scheduled run runs every task, as Airflow's do: the world may have changed since the last
        [
            sys.executable,
            "-m",
            "nbflow",
            "run",
            str(path),
            "--no-progress",
            "--force",
            "--logical-date",
            logical_date_text(when),
        ],
        env={**os.environ},
    )


def backfill_dates(schedule: str, start: datetime, end: datetime) -> list[datetime]:
    """The schedule's times from ``start`` to ``end``, both included."""
    from datetime import timedelta

    return list(fire_times(schedule, start - timedelta(microseconds=1), end))


def wait_forever_with_sigterm(scheduler: CronScheduler) -> None:
    """Serve until SIGTERM or Ctrl-C, then shut down cleanly."""
    signal.signal(signal.SIGTERM, lambda *_: scheduler.stop())
    try:
        scheduler.serve()
    except KeyboardInterrupt:
        scheduler.shutdown()
