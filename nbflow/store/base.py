"""The state store's records and interface."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nbflow.errors import NbflowError


@dataclass
class RunRecord:
    """One run of a pipeline. Times are UTC."""

    run_id: str
    pipeline: str
    state: str
    started_at: datetime
    ended_at: datetime | None = None
    params: dict[str, Any] = field(default_factory=dict)
    workers: int = 1
    selected: list[str] | None = None
    nbflow_version: str = ""
    pid: int = 0
    hostname: str = ""
    #: the run this one resumed (re-running what did not succeed there), if any
    resumed_from: str | None = None
    #: the schedule's date this run is for (scheduler, backfill), ISO text
    logical_date: str | None = None
    #: what reproducing it takes: Python, platform, packages, each task's source hash and kernel
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()


@dataclass
class TaskRecord:
    """A task's state within one run (the latest of its attempts)."""

    run_id: str
    task: str
    state: str
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    output_notebook: str | None = None
    #: why the task ran or was skipped in this run ("its code changed", "up to date since ...")
    reason: str | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


@dataclass
class AttemptRecord:
    """One try at running a task: its own executed notebook, log and outcome."""

    run_id: str
    task: str
    attempt: int
    state: str
    started_at: datetime
    ended_at: datetime | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    kernel_name: str | None = None
    source_hash: str | None = None
    output_notebook: str | None = None
    log_path: str | None = None
    error: str | None = None
    traceback: str | None = None
    #: code, effective parameters, kernel and upstreams' fingerprints, hashed: equal means up to date
    fingerprint: str | None = None
    #: the declared products a successful attempt wrote: path -> "sha256:..." (or size and mtime if huge)
    products: dict[str, str] = field(default_factory=dict)
    #: where the attempt ran when not in this process's kernels: a Dask worker's address
    worker: str | None = None

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()


@dataclass
class NotificationRecord:
    """One alert delivery by one channel: whether it went out, and if not, why."""

    run_id: str
    task: str | None
    attempt: int | None
    event: str
    channel: str
    ok: bool
    error: str | None
    sent_at: datetime


class RunStore(abc.ABC):
    """Where runs are recorded. Writes may be buffered; :meth:`flush` makes them durable.

    Every implementation passes ``tests/test_store_contract.py``.
    """

    @abc.abstractmethod
    def save_run(self, run: RunRecord) -> None:
        """Insert or replace a run."""

    @abc.abstractmethod
    def save_task(self, task: TaskRecord) -> None:
        """Insert or replace a task's state in a run."""

    @abc.abstractmethod
    def save_attempt(self, attempt: AttemptRecord) -> None:
        """Insert or replace an attempt."""

    @abc.abstractmethod
    def save_log(self, run_id: str, task: str, attempt: int, text: str) -> None:
        """Store an attempt's captured output (already capped by the caller)."""

    @abc.abstractmethod
    def save_notification(self, record: NotificationRecord) -> None:
        """Record an alert delivery."""

    @abc.abstractmethod
    def get_notifications(self, run_id: str) -> list[NotificationRecord]:
        """A run's alert deliveries, in the order they were recorded."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or None."""

    @abc.abstractmethod
    def list_runs(self, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first."""

    @abc.abstractmethod
    def get_tasks(self, run_id: str) -> dict[str, TaskRecord]:
        """Every task recorded for a run, by name."""

    @abc.abstractmethod
    def get_attempts(self, run_id: str, task: str | None = None) -> list[AttemptRecord]:
        """A run's attempts (of one task, if given), by task then attempt number."""

    @abc.abstractmethod
    def last_successes(self) -> dict[str, AttemptRecord]:
        """Each task's latest successful attempt, across all runs."""

    @abc.abstractmethod
    def get_log(self, run_id: str, task: str, attempt: int) -> str | None:
        """An attempt's captured output, or None."""

    # -- what a live view reads; a store that can do better overrides these -------------

    def runs_and_tasks(
        self, run_id: str | None = None, limit: int | None = None
    ) -> tuple[list[RunRecord], dict[str, TaskRecord]]:
        """Runs, newest first, and the tasks of ``run_id`` (default: the newest run).

        The DuckDB store reads both through one connection; this reads them one after the other.
        """
        runs = self.list_runs(limit)
        chosen = run_id or (runs[0].run_id if runs else None)
        return runs, self.get_tasks(chosen) if chosen is not None else {}

    def recent_tasks(self, limit: int | None = None) -> tuple[list[RunRecord], dict[str, dict[str, TaskRecord]]]:
        """The ``limit`` newest runs, newest first, and each one's tasks by name (a grid of runs).

        The DuckDB store reads them in one query; this reads the runs' tasks one run at a time.
        """
        runs = self.list_runs(limit)
        return runs, {r.run_id: self.get_tasks(r.run_id) for r in runs}

    def task_attempts(self, task: str, limit: int | None = None) -> list[AttemptRecord]:
        """The ``limit`` latest attempts of ``task`` across runs, oldest first (its duration trend)."""
        found: list[AttemptRecord] = []
        for run in self.list_runs():
            found += reversed(self.get_attempts(run.run_id, task))
            if limit is not None and len(found) >= limit:
                break
        found.sort(key=lambda a: (a.started_at, a.run_id, a.attempt))
        return found[-limit:] if limit is not None else found

    def written_ahead(self) -> tuple[dict[str, RunRecord], dict[tuple[str, str], TaskRecord]]:
        """Runs and task states made but perhaps not yet readable through the other methods
        (a writer's write-ahead files). Keys: run id; (run id, task). None here: every
        write of a store that keeps none is readable at once."""
        return {}, {}

    @property
    def failure(self) -> NbflowError | None:
        """Why writes can no longer be recorded (a full disk, say); None while they can."""
        return None

    def latest_run(self) -> RunRecord | None:
        """The newest run, or None."""
        runs = self.list_runs(limit=1)
        return runs[0] if runs else None

    def flush(self) -> None:
        """Make every write so far durable and visible to other readers."""

    def close(self) -> None:
        """Flush and release resources."""
        self.flush()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
