"""What the live views, the dashboard (``nbflow.widgets``) and the lab panel (``nbflow.server``), show, computed from run
records: each task's paint, the parameters form, the history list, HTML fragments. Pure: no widgets, no I/O."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nbflow import states
from nbflow.core.dag import DAG
from nbflow.project.params import parse_value
from nbflow.project.specs import RESERVED_NAMES, TaskSpec
from nbflow.store.base import AttemptRecord, RunRecord, TaskRecord
from nbflow.views.text import counts_text, format_duration, params_text

#: what the graph shows for one task: [state, fill colour, the line under its name]
TaskPaint = list[str]
#: a parameter declared with different defaults by different notebooks
VARIES = "(varies by notebook)"


def task_paint(task: TaskRecord | None) -> TaskPaint:
    """How one task is drawn: its state's colour, and its duration once it has finished."""
    if task is None:
        return ["", states.NO_STATE_COLOUR, ""]
    note = ""
    if task.state in states.TASK_FINISHED and task.duration_s is not None and task.state != states.UP_TO_DATE:
        note = format_duration(task.duration_s)
    elif task.state == states.UP_TO_DATE:
        note = "up to date"
    elif task.state == states.UP_FOR_RETRY:
        note = f"retry {task.attempts + 1}"
    return [task.state, states.COLOURS.get(task.state, states.NO_STATE_COLOUR), note]


def graph_paint(dag: DAG, tasks: Mapping[str, TaskRecord]) -> dict[str, TaskPaint]:
    """Every task of the DAG, drawn as in ``tasks`` (a run's records); tasks not in the run are blank."""
    return {name: task_paint(tasks.get(name)) for name in dag.order}


def _local(ts: datetime | None) -> str:
    if ts is None:
        return "-"
    return ts.replace(tzinfo=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def run_label(run: RunRecord) -> str:
    """One row of the history list: id, state, local start time, duration, parameters."""
    duration = format_duration(run.duration_s) if run.ended_at else "…"
    parts = [run.run_id, run.state.ljust(11), _local(run.started_at), duration.rjust(7)]
    if run.params:
        parts.append(params_text(run.params, 60))
    return "  ".join(parts)


def history_options(runs: Sequence[RunRecord]) -> list[tuple[str, str]]:
    """The history list's options, newest first, with "follow the latest run" on top."""
    return [("latest run (follow)", ""), *((run_label(r), r.run_id) for r in runs)]


def summary(run: RunRecord | None, tasks: Mapping[str, TaskRecord]) -> str:
    """A line about the run shown: its state, counts by state, duration."""
    if run is None:
        return "No runs yet."
    parts = counts_text(tasks)
    took = f" in {format_duration(run.duration_s)}" if run.ended_at else ""
    return f"Run {run.run_id}: {run.state}{took} — {parts}"


def header_html(root: Path | str, task_count: int, run: RunRecord | None, tasks: Mapping[str, TaskRecord]) -> str:
    """The dashboard's first lines: the pipeline's folder and size, then the :func:`summary` of the run shown."""
    esc = html.escape
    return f"<b>nbflow pipeline</b> <code>{esc(str(root))}</code> · {task_count} tasks<br>{esc(summary(run, tasks))}"


def note_html(note: str) -> str:
    """A note about the graph (how it was laid out), greyed."""
    return f"<span style='color:#5f6368'>{html.escape(note)}</span>" if note else ""


def declared_parameters(specs: Mapping[str, TaskSpec]) -> dict[str, str]:
    """Parameters a run may override: name -> default source text (``VARIES`` if notebooks differ)."""
    found: dict[str, str] = {}
    for spec in specs.values():
        for name, default in spec.params.defaults.items():
            if name in RESERVED_NAMES:
                continue
            found[name] = default if found.get(name, default) == default else VARIES
    return dict(sorted(found.items()))


def form_overrides(values: Mapping[str, str], defaults: Mapping[str, str]) -> dict[str, Any]:
    """The parameter form's changed fields, typed as ``nbflow run -p`` types them."""
    changed = {}
    for name, text in values.items():
        text = text.strip()
        if text and text != defaults.get(name, "").strip() and text != VARIES:
            changed[name] = parse_value(text)
    return changed


def _row(label: str, value: str) -> str:
    return f"<tr><th style='text-align:left;padding-right:1em;vertical-align:top'>{label}</th><td>{value}</td></tr>"


def _attempts_text(task: TaskRecord, attempts: Sequence[AttemptRecord]) -> str:
    """``3`` or, after retries, ``3: failed 0.4s, failed 0.5s, success 0.3s``."""
    if len(attempts) < 2:
        return str(task.attempts)
    each = ", ".join(f"{html.escape(a.state)} {format_duration(a.duration_s)}" for a in attempts)
    return f"{task.attempts}: {each}"


def _shown_path(path: str, root: Path | None) -> str:
    if root is not None:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            pass
    return path


def task_detail_html(
    name: str,
    task: TaskRecord | None,
    attempts: Sequence[AttemptRecord],
    link: str | None = None,
    root: Path | None = None,
) -> str:
    """The task panel's summary: state, attempts, duration, why, parameters, error and traceback.

    ``link`` opens the executed notebook (in JupyterLab); paths are shown relative to ``root``.
    """
    esc = html.escape
    if task is None:
        return f"<b>{esc(name)}</b>: not part of this run."
    colour = states.COLOURS.get(task.state, states.NO_STATE_COLOUR)
    rows = [
        _row("state", f"<span style='background:{colour};padding:0 4px'>{esc(task.state)}</span>"),
        _row("attempts", _attempts_text(task, attempts)),
        _row("duration", esc(format_duration(task.duration_s))),
    ]
    if task.reason:
        rows.append(_row("why", esc(task.reason)))
    latest = attempts[-1] if attempts else None
    if latest is not None:
        shown = {k: v for k, v in latest.parameters.items() if k not in RESERVED_NAMES}
        if shown:
            rows.append(_row("parameters", f"<code>{esc(params_text(shown, 400))}</code>"))
    notebook = (latest.output_notebook if latest else None) or task.output_notebook
    if notebook:
        text = esc(_shown_path(notebook, root))
        target = (
            f"<a class='nbflow-notebook-link' href='{esc(link)}' target='_blank' rel='noopener' "
            f"style='color:var(--jp-content-link-color,#1a73e8);text-decoration:underline'>{text}</a>"
            if link
            else f"<code>{text}</code>"
        )
        rows.append(_row("executed notebook", target))
    error = ""
    if task.error:
        error = f"<div style='color:#b3261e;margin-top:4px'><b>error:</b> {esc(task.error)}</div>"
        if latest is not None and latest.traceback:
            error += (
                "<details><summary>traceback</summary><pre style='max-height:16em;overflow:auto;"
                f"font-size:11px'>{esc(latest.traceback[-4000:])}</pre></details>"
            )
    return f"<b>{esc(name)}</b><table style='font-size:12px'>{''.join(rows)}</table>{error}"


def log_html(text: str | None, limit: int = 20_000) -> str:
    """A log's tail in a scrollable box."""
    if not text:
        return "<i style='color:#5f6368'>no output captured</i>"
    tail = text[-limit:]
    cut = "…\n" if len(text) > limit else ""
    return (
        "<pre style='max-height:14em;overflow:auto;font-size:11px;background:#f8f9fa;padding:4px;margin:0'>"
        f"{html.escape(cut + tail)}</pre>"
    )
