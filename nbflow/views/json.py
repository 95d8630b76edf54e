"""JSON-ready dicts: the ``--json`` outputs of the CLI and the runs of the REST API. Pure.

A run is built by one function, :func:`run_json`, in the shape each reader has relied on:

- ``nbflow status --json`` / ``run --json`` (:data:`STATUS_FIELDS`, plus ``tasks``), times
  to the millisecond: ``2026-01-02T03:04:05.678Z``;
- ``nbflow history --json`` (:data:`HISTORY_FIELDS`), same times;
- the panel's ``status`` route (:data:`PANEL_FIELDS`), times as ``datetime.isoformat`` writes
  them (microseconds, none when zero) and a ``duration`` text: ``2026-01-02T03:04:05.678901Z``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from nbflow.core.dag import DAG
from nbflow.store.base import NotificationRecord, RunRecord, TaskRecord
from nbflow.views.text import format_duration

#: ``timespec`` of the CLI's times (``isoformat``'s): milliseconds
CLI_TIMES = "milliseconds"
#: ``timespec`` of the REST API's times: ``isoformat``'s default
PANEL_TIMES = "auto"


def iso(value: datetime | None, timespec: str = CLI_TIMES) -> str | None:
    """A naive UTC time as ISO 8601 with a ``Z``; None stays None."""
    return None if value is None else value.isoformat(timespec=timespec) + "Z"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


#: each field a run's JSON may have: how it is written, given the ``timespec`` of its times
_RUN_FIELDS: dict[str, Callable[[RunRecord, str], Any]] = {
    "run_id": lambda r, _: r.run_id,
    "state": lambda r, _: r.state,
    "pipeline": lambda r, _: r.pipeline,
    "started_at": lambda r, ts: iso(r.started_at, ts),
    "ended_at": lambda r, ts: iso(r.ended_at, ts),
    "duration_s": lambda r, _: _round(r.duration_s),
    "duration": lambda r, _: format_duration(r.duration_s) if r.ended_at else None,
    "params": lambda r, _: r.params,
    "selected": lambda r, _: r.selected,
    "resumed_from": lambda r, _: r.resumed_from,
    "logical_date": lambda r, _: r.logical_date,
    "workers": lambda r, _: r.workers,
    "pid": lambda r, _: r.pid,
}
#: ``nbflow status --json`` and ``run --json`` (then ``tasks``)
STATUS_FIELDS = (
    "run_id",
    "state",
    "pipeline",
    "started_at",
    "ended_at",
    "duration_s",
    "params",
    "selected",
    "resumed_from",
    "logical_date",
)
#: one run of ``nbflow history --json``
HISTORY_FIELDS = ("run_id", "state", "started_at", "ended_at", "duration_s", "params", "selected", "workers")
#: a run in the REST API's ``status`` answer (``Wire.IRun`` in the extension's tokens.ts)
PANEL_FIELDS = ("run_id", "state", "started_at", "ended_at", "duration", "params", "pid")


def run_json(run: RunRecord, fields: Sequence[str] = STATUS_FIELDS, timespec: str = CLI_TIMES) -> dict[str, Any]:
    """A run as JSON: ``fields`` of :data:`_RUN_FIELDS`, in that order, times to ``timespec``."""
    return {name: _RUN_FIELDS[name](run, timespec) for name in fields}


def panel_run_json(run: RunRecord) -> dict[str, Any]:
    """A run as the REST API's ``status`` route answers it."""
    return run_json(run, PANEL_FIELDS, PANEL_TIMES)


def task_to_json(task: TaskRecord) -> dict[str, Any]:
    return {
        "state": task.state,
        "attempts": task.attempts,
        "duration_s": _round(task.duration_s),
        "output_notebook": task.output_notebook,
        "error": task.error,
        "started_at": iso(task.started_at),
        "ended_at": iso(task.ended_at),
        "reason": task.reason,
    }


def run_to_json(run: RunRecord, tasks: Mapping[str, TaskRecord]) -> dict[str, Any]:
    """The ``nbflow status --json`` shape: ``{"run_id", "state", "tasks": {name: {...}}, ...}``."""
    return {**run_json(run), "tasks": {name: task_to_json(t) for name, t in tasks.items()}}


def history_to_json(runs: list[RunRecord]) -> dict[str, Any]:
    return {"runs": [run_json(r, HISTORY_FIELDS) for r in runs]}


def alerts_to_json(alerts: list[NotificationRecord]) -> list[dict[str, Any]]:
    return [
        {
            "event": a.event,
            "task": a.task,
            "attempt": a.attempt,
            "channel": a.channel,
            "ok": a.ok,
            "error": a.error,
            "sent_at": iso(a.sent_at),
        }
        for a in alerts
    ]


def dag_to_json(dag: DAG) -> dict[str, Any]:
    """``{"nodes": [...], "edges": [[from, to], ...]}``; nodes in topological order."""
    return {"nodes": list(dag.order), "edges": [[a, b] for a, b in dag.edges]}
