"""Recent runs x tasks, each cell a task's state in a run; one task's durations across runs. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nbflow.store.base import AttemptRecord, RunRecord, TaskRecord
from nbflow.views.json import PANEL_TIMES, iso


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def grid_json(
    runs: Iterable[RunRecord], tasks_by_run: Mapping[str, Mapping[str, TaskRecord]], order: Sequence[str]
) -> dict[str, Any]:
    """The grid of ``runs`` (newest first) by tasks: ``order`` (the DAG's topological order), then
    any other task a run recorded (a task since removed), by name. A task a run did not record
    has no cell in it.

    ``{"runs": [{"run_id", "state", "started_at", "duration_s"}], "tasks": [name],
    "cells": {run_id: {task: {"state", "attempts", "duration_s"}}}}``
    """
    newest = sorted(runs, key=lambda r: (r.started_at, r.run_id), reverse=True)
    known = set(order)
    others = sorted({t for r in newest for t in tasks_by_run.get(r.run_id, {}) if t not in known})
    cells = {
        r.run_id: {
            name: {"state": t.state, "attempts": t.attempts, "duration_s": _round(t.duration_s)}
            for name, t in tasks_by_run.get(r.run_id, {}).items()
        }
        for r in newest
    }
    return {
        "runs": [
            {
                "run_id": r.run_id,
                "state": r.state,
                "started_at": iso(r.started_at, PANEL_TIMES),
                "duration_s": _round(r.duration_s),
            }
            for r in newest
        ],
        "tasks": [*order, *others],
        "cells": cells,
    }


def trend_json(task: str, attempts: Iterable[AttemptRecord]) -> dict[str, Any]:
    """One task's attempts across runs, oldest first: how long each took (None while it runs).

    ``{"task", "points": [{"run_id", "attempt", "started_at", "duration_s", "state"}]}``
    """
    points = sorted((a for a in attempts if a.task == task), key=lambda a: (a.started_at, a.run_id, a.attempt))
    return {
        "task": task,
        "points": [
            {
                "run_id": a.run_id,
                "attempt": a.attempt,
                "started_at": iso(a.started_at, PANEL_TIMES),
                "duration_s": _round(a.duration_s),
                "state": a.state,
            }
            for a in points
        ],
    }
