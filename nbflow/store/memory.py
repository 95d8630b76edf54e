"""A state store in memory, for tests and throwaway runs."""

from __future__ import annotations

import copy
import threading

from nbflow import states
from nbflow.store.base import AttemptRecord, NotificationRecord, RunRecord, RunStore, TaskRecord


class MemoryRunStore(RunStore):
    """Keeps every record in dicts; thread-safe; forgets everything when dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, RunRecord] = {}
        self._tasks: dict[tuple[str, str], TaskRecord] = {}
        self._attempts: dict[tuple[str, str, int], AttemptRecord] = {}
        self._logs: dict[tuple[str, str, int], str] = {}
        self._notifications: list[NotificationRecord] = []

    def save_run(self, run: RunRecord) -> None:
        with self._lock:
            self._runs[run.run_id] = copy.deepcopy(run)

    def save_task(self, task: TaskRecord) -> None:
        with self._lock:
            self._tasks[(task.run_id, task.task)] = copy.deepcopy(task)

    def save_attempt(self, attempt: AttemptRecord) -> None:
        with self._lock:
            self._attempts[(attempt.run_id, attempt.task, attempt.attempt)] = copy.deepcopy(attempt)

    def save_log(self, run_id: str, task: str, attempt: int, text: str) -> None:
        with self._lock:
            self._logs[(run_id, task, attempt)] = text

    def save_notification(self, record: NotificationRecord) -> None:
        with self._lock:
            self._notifications.append(copy.deepcopy(record))

    def get_notifications(self, run_id: str) -> list[NotificationRecord]:
        with self._lock:
            return [copy.deepcopy(n) for n in self._notifications if n.run_id == run_id]

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._lock:
            run = self._runs.get(run_id)
            return copy.deepcopy(run) if run else None

    def list_runs(self, limit: int | None = None) -> list[RunRecord]:
        with self._lock:
            runs = sorted(self._runs.values(), key=lambda r: (r.started_at, r.run_id), reverse=True)
            return copy.deepcopy(runs[:limit] if limit is not None else runs)

    def get_tasks(self, run_id: str) -> dict[str, TaskRecord]:
        with self._lock:
            return {t.task: copy.deepcopy(t) for (rid, _), t in sorted(self._tasks.items()) if rid == run_id}

    def get_attempts(self, run_id: str, task: str | None = None) -> list[AttemptRecord]:
        with self._lock:
            return [
                copy.deepcopy(a)
                for key, a in sorted(self._attempts.items())
                if key[0] == run_id and (task is None or key[1] == task)
            ]

    def last_successes(self) -> dict[str, AttemptRecord]:
        with self._lock:
            latest: dict[str, AttemptRecord] = {}
            for a in self._attempts.values():
                if a.state != states.SUCCESS or a.ended_at is None:
                    continue
                best = latest.get(a.task)
                if best is None or best.ended_at is None or a.ended_at >= best.ended_at:
                    latest[a.task] = copy.deepcopy(a)
            return latest

    def get_log(self, run_id: str, task: str, attempt: int) -> str | None:
        with self._lock:
            return self._logs.get((run_id, task, attempt))
