"""Turn graphs and run records into text, JSON-ready dicts and Graphviz source. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from nbflow import states
from nbflow.graph import DAG
from nbflow.store.base import NotificationRecord, RunRecord, TaskRecord


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def dag_to_json(dag: DAG) -> dict[str, Any]:
    """``{"nodes": [...], "edges": [[from, to], ...]}``; nodes in topological order."""
    return {"nodes": list(dag.order), "edges": [[a, b] for a, b in dag.edges]}


def dot_quote(text: str) -> str:
    """A double-quoted DOT string: JSON's escapes, but non-ASCII as it is (DOT has no ``\\uXXXX``)."""
    return json.dumps(text, ensure_ascii=False)


def dag_to_dot(dag: DAG, task_states: Mapping[str, str] | None = None) -> str:
    """Graphviz source for the DAG, left to right; nodes coloured by state when given."""
    lines = ["digraph pipeline {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fillcolor="#ffffff"];']
    for name in dag.order:
        attrs = ""
        if task_states and name in task_states:
            attrs = f' [fillcolor="{states.COLOURS.get(task_states[name], states.NO_STATE_COLOUR)}", tooltip={dot_quote(task_states[name])}]'
        lines.append(f"  {dot_quote(name)}{attrs};")
    for a, b in dag.edges:
        lines.append(f"  {dot_quote(a)} -> {dot_quote(b)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def dag_to_text(dag: DAG) -> str:
    """One line a task, in topological order: ``name <- up1, up2``."""
    if not dag.order:
        return "(no tasks)\n"
    width = max(len(n) for n in dag.order)
    lines = []
    for name in dag.order:
        ups = dag.upstreams[name]
        lines.append(f"{name:<{width}}  <- {', '.join(ups)}" if ups else name)
    roots = sum(1 for n in dag.order if not dag.upstreams[n])
    lines.append(f"\n{len(dag.order)} tasks, {len(dag.edges)} edges, {roots} roots")
    return "\n".join(lines) + "\n"


def task_to_json(task: TaskRecord) -> dict[str, Any]:
    return {
        "state": task.state,
        "attempts": task.attempts,
        "duration_s": _round(task.duration_s),
        "output_notebook": task.output_notebook,
        "error": task.error,
        "started_at": _iso(task.started_at),
        "ended_at": _iso(task.ended_at),
        "reason": task.reason,
    }


def run_to_json(run: RunRecord, tasks: Mapping[str, TaskRecord]) -> dict[str, Any]:
    """The ``nbflow status --json`` shape: ``{"run_id", "state", "tasks": {name: {...}}, ...}``."""
    return {
        "run_id": run.run_id,
        "state": run.state,
        "pipeline": run.pipeline,
        "started_at": _iso(run.started_at),
        "ended_at": _iso(run.ended_at),
        "duration_s": _round(run.duration_s),
        "params": run.params,
        "selected": run.selected,
        "resumed_from": run.resumed_from,
        "logical_date": run.logical_date,
        "tasks": {name: task_to_json(t) for name, t in tasks.items()},
    }


def alerts_to_json(alerts: list[NotificationRecord]) -> list[dict[str, Any]]:
    return [
        {
            "event": a.event,
            "task": a.task,
            "attempt": a.attempt,
            "channel": a.channel,
            "ok": a.ok,
            "error": a.error,
            "sent_at": _iso(a.sent_at),
        }
        for a in alerts
    ]


def alerts_to_text(alerts: list[NotificationRecord]) -> str:
    if not alerts:
        return ""
    failed = [a for a in alerts if not a.ok]
    lines = [f"\nalerts: {len(alerts) - len(failed)} sent, {len(failed)} failed"]
    lines += [f"  {a.event} {a.task or '(run)'} by {a.channel}: {a.error}" for a in failed]
    return "\n".join(lines) + "\n"


def history_to_json(runs: list[RunRecord]) -> dict[str, Any]:
    return {
        "runs": [
            {
                "run_id": r.run_id,
                "state": r.state,
                "started_at": _iso(r.started_at),
                "ended_at": _iso(r.ended_at),
                "duration_s": _round(r.duration_s),
                "params": r.params,
                "selected": r.selected,
                "workers": r.workers,
            }
            for r in runs
        ]
    }


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain left-aligned text table."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    out = ["  ".join(h.upper().ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(out) + "\n"


def status_to_text(run: RunRecord, tasks: Mapping[str, TaskRecord]) -> str:
    rows = []
    for name, t in tasks.items():
        error = (t.error or "").splitlines()[0][:80] if t.error else ""
        rows.append([name, t.state, str(t.attempts), format_duration(t.duration_s), error])
    head = (
        f"run {run.run_id}: {run.state}  (started {run.started_at:%Y-%m-%d %H:%M:%S} UTC, "
        f"{format_duration(run.duration_s)})\n"
    )
    if run.params:
        head += "params: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(run.params.items())) + "\n"
    return head + "\n" + table(rows, ["task", "state", "attempts", "duration", "error"])


def history_to_text(runs: list[RunRecord]) -> str:
    if not runs:
        return "No runs recorded yet.\n"
    rows = [
        [
            r.run_id,
            r.state,
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            format_duration(r.duration_s),
            ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(r.params.items())),
        ]
        for r in runs
    ]
    return table(rows, ["run", "state", "started (UTC)", "duration", "params"])
