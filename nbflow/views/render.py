"""Turn graphs and run records into text, JSON-ready dicts and Graphviz source. Pure."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

from nbflow import states
from nbflow.core.dag import DAG
from nbflow.store.base import NotificationRecord, RunRecord, TaskRecord


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def dag_to_json(dag: DAG) -> dict[str, Any]:
    """``{"nodes": [...], "edges": [[from, to], ...]}``; nodes in topological order."""
    return {"nodes": list(dag.order), "edges": [[a, b] for a, b in dag.edges]}


def dot_quote(text: str) -> str:
    """A double-quoted DOT identifier.

    DOT's only escape in a quoted string is ``\\"``; a ``\\`` stays two characters, so backslashes
    are doubled (an unambiguous identifier; :func:`dot_label` shows the name as it is).
    """
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot_label(text: str) -> str:
    """A DOT label (or tooltip) that Graphviz shows as ``text``, character for character.

    Graphviz reads ``\\n``, ``\\l``, ``\\N``, ``\\G``... in labels as escapes, and ``&name;`` as
    an entity, so ``\\`` is written ``\\\\`` and ``&`` as ``&amp;``.
    """
    return dot_quote(text.replace("&", "&amp;"))


def _needs_label(name: str) -> bool:
    """Whether Graphviz's default label (the node's identifier) would not show ``name`` as it is."""
    return "\\" in name or "&" in name


def dag_to_dot(dag: DAG, task_states: Mapping[str, str] | None = None) -> str:
    """Graphviz source for the DAG, left to right; nodes coloured by state when given."""
    lines = ["digraph pipeline {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fillcolor="#ffffff"];']
    for name in dag.order:
        attrs = [f"label={dot_label(name)}"] if _needs_label(name) else []
        if task_states and name in task_states:
            colour = states.COLOURS.get(task_states[name], states.NO_STATE_COLOUR)
            attrs += [f'fillcolor="{colour}"', f"tooltip={dot_label(task_states[name])}"]
        lines.append(f"  {dot_quote(name)}{' [' + ', '.join(attrs) + ']' if attrs else ''};")
    for a, b in dag.edges:
        lines.append(f"  {dot_quote(a)} -> {dot_quote(b)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


#: the attribute of a drawn task's ``<g class="node">`` that names it (see :func:`svg_task_key`)
TASK_KEY_ATTR = "data-task-key"
#: what cannot be drawn as it is: control characters, and what is not Unicode text (an undecodable
#: file name's surrogates, the noncharacters XML forbids)
_UNDRAWABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def _drawable(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the control character's picture: a newline shows as U+240A
    return "\u2421" if code == 0x7F else "\ufffd"


def shown_name(name: str) -> str:
    """A task name as a drawing shows it: as it is, but with control characters as their visible
    symbols and non-text as U+FFFD, so it is one line of well-formed XML."""
    return _UNDRAWABLE.sub(_drawable, name)


def svg_task_key(name: str) -> str:
    """The task of a drawn node, percent-encoded: ASCII, so it survives any markup and parser unchanged,
    and read back exactly (``decodeURIComponent`` in the browser, :func:`task_of_svg_key` here)."""
    return quote(name, safe="", errors="surrogateescape")


def task_of_svg_key(key: str) -> str:
    """The task name :func:`svg_task_key` encoded."""
    return unquote(key, errors="surrogateescape")


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
