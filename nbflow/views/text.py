"""Text for people: tables, durations, parameters, task counts, and the run, history, alerts and
diff outputs of the CLI. Pure."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from nbflow.core.dag import DAG
from nbflow.store.base import NotificationRecord, RunRecord, TaskRecord


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


def params_text(params: Mapping[str, Any], limit: int | None = None) -> str:
    """``a=1, b="x"``: parameters by name, values as JSON; cut to ``limit`` characters with ``…``."""
    text = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in sorted(params.items()))
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def task_counts(tasks: Mapping[str, TaskRecord] | Iterable[TaskRecord]) -> dict[str, int]:
    """How many tasks are in each state, the most common state first (ties by the state's name)."""
    records = tasks.values() if isinstance(tasks, Mapping) else tasks
    counts: dict[str, int] = {}
    for t in records:
        counts[t.state] = counts.get(t.state, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def counts_text(tasks: Mapping[str, TaskRecord] | Iterable[TaskRecord], sep: str = ", ") -> str:
    """The :func:`task_counts` of a summary line: ``2 success, 1 failed``."""
    return sep.join(f"{n} {state}" for state, n in task_counts(tasks).items())


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
        head += "params: " + params_text(run.params) + "\n"
    return head + "\n" + table(rows, ["task", "state", "attempts", "duration", "error"])


def history_to_text(runs: list[RunRecord]) -> str:
    if not runs:
        return "No runs recorded yet.\n"
    rows = [
        [r.run_id, r.state, f"{r.started_at:%Y-%m-%d %H:%M:%S}", format_duration(r.duration_s), params_text(r.params)]
        for r in runs
    ]
    return table(rows, ["run", "state", "started (UTC)", "duration", "params"])


def alerts_to_text(alerts: list[NotificationRecord]) -> str:
    if not alerts:
        return ""
    failed = [a for a in alerts if not a.ok]
    lines = [f"\nalerts: {len(alerts) - len(failed)} sent, {len(failed)} failed"]
    lines += [f"  {a.event} {a.task or '(run)'} by {a.channel}: {a.error}" for a in failed]
    return "\n".join(lines) + "\n"


def changes_to_text(changes: Mapping[str, Any]) -> list[str]:
    """One line a difference between two environments (``environment_changes``), for people."""
    lines = [f"{key}: {value[0]} -> {value[1]}" for key, value in changes.items() if isinstance(value, list)]
    for part in ("sources", "kernels", "packages"):
        diff = changes.get(part, {})
        what = {"sources": "task source", "kernels": "task kernel", "packages": "package"}[part]
        lines += [f"{what} added: {k} {v or ''}".rstrip() for k, v in diff.get("added", {}).items()]
        lines += [f"{what} removed: {k} {v or ''}".rstrip() for k, v in diff.get("removed", {}).items()]
        lines += [f"{what} changed: {k} {old} -> {new}" for k, (old, new) in diff.get("changed", {}).items()]
    return lines


def diff_to_text(found: Mapping[str, Any]) -> str:
    """``nbflow diff``: the two runs, what changed between them, and a table of the tasks' states and durations.

    ``found`` is what ``history.diff_runs`` returns (the ``nbflow diff --json`` shape).
    """
    a, b = found["runs"]
    params = found["params"]
    lines = [f"parameter added: {k}={v!r}" for k, v in params["added"].items()]
    lines += [f"parameter removed: {k}={v!r}" for k, v in params["removed"].items()]
    lines += [f"parameter changed: {k} {old!r} -> {new!r}" for k, (old, new) in params["changed"].items()]
    lines += changes_to_text(found["environment"])
    for name, t in found["tasks"].items():
        lines += [f"product changed: {name} {path}" for path in t["products"]["changed"]]
    rows = [
        [
            name,
            f"{t['state'][0] or '-'} -> {t['state'][1] or '-'}",
            f"{format_duration(t['duration_s'][0])} -> {format_duration(t['duration_s'][1])}",
        ]
        for name, t in found["tasks"].items()
    ]
    out = [f"{a} ({found['states'][0]}) -> {b} ({found['states'][1]})\n"]
    out += [f"  {line}\n" for line in lines or ["same parameters, sources, kernels, Python and packages"]]
    return "".join(out) + "\n" + table(rows, ["task", "state", "duration"])
