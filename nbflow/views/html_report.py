"""A run as one self-contained HTML page (``nbflow report``): nothing is fetched to view it. Pure.

The graph is the dashboard's SVG layout with each node painted in its task's state, then
the run's Gantt timeline; below them, one section per task with its state, attempts,
duration, parameters, error and traceback, its output's tail, a link to its executed
notebook and that notebook rendered (collapsed). The page is made in pieces
(:func:`iter_report`), so a writer holds one rendered notebook at a time; a
Content-Security-Policy forbids every script and every request the page could make.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timezone
from pathlib import Path
from urllib.parse import quote

from nbflow import __version__, states
from nbflow.project.specs import RESERVED_NAMES
from nbflow.store.base import AttemptRecord, RunRecord, TaskRecord
from nbflow.views.notebook_html import NOTEBOOK_BUDGET, REPORT_BUDGET, NotebookHtml, highlight_css
from nbflow.views.svg import TASK_KEY_ATTR, task_of_svg_key
from nbflow.views.text import counts_text, format_duration

#: a task's latest attempt and the bytes its notebook may take -> the notebook rendered, or None
NotebookRenderer = Callable[[str, AttemptRecord, int], "NotebookHtml | None"]

SVG_NS = "http://www.w3.org/2000/svg"
OUTPUT_TAIL = 8_000
#: what is left of the report's budget below which no more notebooks are embedded
MIN_NOTEBOOK_ROOM = 16 * 1024
#: no script runs and nothing is fetched: inline styles and data: images only
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'"

STYLE = """
:root { color-scheme: light dark; --fg: #202124; --muted: #5f6368; --bg: #fff; --line: #dadce0;
  --code: #f8f9fa; --error: #b3261e; --error-bg: #fdecea; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8eaed; --muted: #9aa0a6; --bg: #202124;
  --line: #5f6368; --code: #2d2e31; --error: #f28b82; --error-bg: #3b2626; } }
body { font-family: system-ui, sans-serif; margin: 24px; color: var(--fg); background: var(--bg); }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 24px 0 8px; }
h3 { font-size: 15px; margin: 4px 0; }
a { color: #1a73e8; } @media (prefers-color-scheme: dark) { a { color: #8ab4f8; } }
.summary { color: var(--muted); margin-bottom: 12px; }
.graph { border: 1px solid var(--line); padding: 8px; overflow: auto; max-width: 100%; background: #fff; }
.graph svg { max-width: 100%; height: auto; }
.state { padding: 0 6px; border-radius: 3px; border: 1px solid #ccc; color: #202124; }
table { border-collapse: collapse; } td, th { text-align: left; padding: 2px 12px 2px 0; vertical-align: top; }
table.fields { table-layout: fixed; width: 100%; } table.fields th { width: 10em; } table.fields td { overflow-wrap: anywhere; }
section.task { border-top: 1px solid var(--line); padding: 8px 0; }
.gantt { border: 1px solid var(--line); padding: 8px; overflow: auto; }
.note { color: var(--muted); font-style: italic; }
details.notebook > summary { cursor: pointer; margin: 4px 0; }
.nbflow-notebook { border: 1px solid var(--line); padding: 8px; overflow: auto; max-height: 60em; }
.nbflow-notebook .prompt { color: var(--muted); font: 11px monospace; }
.nbflow-notebook .input_area pre, .nbflow-notebook .output_text pre { max-height: none; }
.nbflow-notebook .output_stderr pre, .nbflow-notebook .output_error pre { background: var(--error-bg); }
.nbflow-notebook img { max-width: 100%; height: auto; }
.nbflow-notebook table { margin: 4px 0; font-size: 12px; }
.nbflow-notebook td, .nbflow-notebook th { border: 1px solid var(--line); padding: 2px 6px; }
pre { background: var(--code); padding: 6px; max-height: 24em; overflow: auto; font-size: 12px; white-space: pre-wrap; }
.error { color: var(--error); }
"""


def paint_svg(svg: str, tasks: Mapping[str, TaskRecord]) -> str:
    """The layout's SVG with each task's node filled in its state's colour and its duration written."""
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", "http://www.w3.org/1999/xlink")
    root = ET.fromstring(svg)
    for g in root.iter(f"{{{SVG_NS}}}g"):
        if g.get("class") != "node":
            continue
        key = g.get(TASK_KEY_ATTR)
        if key is None:
            continue
        name = task_of_svg_key(key)
        task = tasks.get(name)
        colour = states.COLOURS.get(task.state, states.NO_STATE_COLOUR) if task else states.NO_STATE_COLOUR
        shapes = [el for el in g if el.tag.split("}")[-1] in ("path", "polygon", "rect", "ellipse")]
        if shapes:
            shapes[0].set("fill", colour)
        texts = g.findall(f"{{{SVG_NS}}}text")
        if task is not None and len(texts) > 1 and task.duration_s is not None:
            texts[-1].text = format_duration(task.duration_s)
        g.set("data-task", name)
        g.set("data-state", task.state if task else "")
    return ET.tostring(root, encoding="unicode")


def _relative_url(posix_path: str) -> str:
    """A relative link to a file, percent-encoded: a ``#``, ``%`` or ``?`` in a name is part of the
    path, and a ``:`` is too (``javascript:x`` is the file ``javascript%3Ax``, never a scheme)."""
    return quote(posix_path, errors="surrogateescape")


def _link(path: str | None, base: Path | None) -> str:
    if not path:
        return ""
    target = Path(path)
    href = target.as_uri() if target.is_absolute() else _relative_url(target.as_posix())
    if base is not None:
        with contextlib.suppress(ValueError):  # another drive: keep the absolute link
            href = _relative_url(Path(os.path.relpath(target, base)).as_posix())
    return f"<a href='{html.escape(href)}'>{html.escape(target.name)}</a> <code>{html.escape(path)}</code>"


def _kib(size: int) -> str:
    return f"{size / 1024:,.0f} KiB"


def _outputs(count: int) -> str:
    return "its largest output is" if count == 1 else f"{count} of its largest outputs are"


def _notebook_block(rendered: NotebookHtml | None, link: str, room: int, budget: int) -> str:
    """The task's executed notebook, collapsed; or a note saying why it is not shown."""
    if room <= 0:
        return f"<p class='note'>Executed notebook not embedded: the report reached its {_kib(budget)} size budget. Open it: {link}</p>"
    if rendered is None:
        return ""
    if rendered.not_shown:
        return f"<p class='note'>Executed notebook not embedded: {html.escape(rendered.not_shown)}. Open it: {link}</p>"
    omitted = ""
    if rendered.omitted_outputs:
        omitted = (
            f"<p class='note'>{_outputs(rendered.omitted_outputs)} ({_kib(rendered.omitted_bytes)}) left out"
            f" to keep the report small: open the executed notebook for all of it: {link}</p>"
        )
    size = _kib(len(rendered.html.encode("utf-8")))
    return (
        f"<details class='notebook'><summary>executed notebook ({size}"
        f"{', outputs left out' if rendered.omitted_outputs else ''})</summary>{omitted}"
        f"<div class='nbflow-notebook'>{rendered.html}</div></details>"
    )


def _task_section(
    name: str,
    task: TaskRecord,
    attempts: Sequence[AttemptRecord],
    log: str | None,
    base: Path | None,
    notebook: str = "",
) -> str:
    esc = html.escape
    colour = states.COLOURS.get(task.state, states.NO_STATE_COLOUR)
    latest = attempts[-1] if attempts else None
    params = {k: v for k, v in (latest.parameters if latest else {}).items() if k not in RESERVED_NAMES}
    rows = [
        ("state", f"<span class='state' style='background:{colour}'>{esc(task.state)}</span>"),
        ("duration", esc(format_duration(task.duration_s))),
        (
            "attempts",
            ", ".join(f"{a.attempt}: {esc(a.state)} {format_duration(a.duration_s)}" for a in attempts) or "0",
        ),
    ]
    if task.reason:
        rows.append(("why", esc(task.reason)))
    if params:
        rows.append(("parameters", f"<code>{esc(json.dumps(params, default=str, sort_keys=True))}</code>"))
    executed = (latest.output_notebook if latest else None) or task.output_notebook
    if executed:
        rows.append(("executed notebook", _link(executed, base)))
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    parts = [
        f"<section class='task' id='task-{esc(name)}' data-task='{esc(name)}'><h3>{esc(name)}</h3>"
        f"<table class='fields'>{body}</table>"
    ]
    if task.error:
        parts.append(f"<p class='error'><b>error:</b> {esc(task.error)}</p>")
    if latest is not None and latest.traceback:
        parts.append(
            f"<details open><summary>traceback</summary><pre>{esc(latest.traceback[-OUTPUT_TAIL:])}</pre></details>"
        )
    if log:
        parts.append(f"<details><summary>output</summary><pre>{esc(log[-OUTPUT_TAIL:])}</pre></details>")
    parts.append(notebook)
    parts.append("</section>")
    return "".join(parts)


def iter_report(
    run: RunRecord,
    tasks: Mapping[str, TaskRecord],
    svg: str,
    attempts: Mapping[str, Sequence[AttemptRecord]] | None = None,
    logs: Mapping[str, str] | None = None,
    base: Path | None = None,
    gantt: str | None = None,
    notebooks: NotebookRenderer | None = None,
    budget: int = REPORT_BUDGET,
) -> Iterator[str]:
    """The report page in pieces: the head, then one task's section at a time.

    ``gantt`` is the run's timeline as SVG; ``notebooks(task, attempt, budget)`` renders a
    task's executed notebook in at most ``budget`` bytes (the smaller of a notebook's budget
    and what is left of the report's ``budget``), called as its section is made.
    """
    attempts = attempts or {}
    logs = logs or {}
    esc = html.escape
    started = run.started_at.replace(tzinfo=timezone.utc).isoformat(timespec="seconds")
    summary = counts_text(tasks)
    params = esc(json.dumps(run.params, default=str, sort_keys=True)) if run.params else "none"
    timeline = f"<h2>Timeline</h2>\n<div class='gantt'>{gantt}</div>\n" if gantt else ""
    head = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>nbflow run {esc(run.run_id)}: {esc(run.state)}</title>
<style>{STYLE}{highlight_css(".nbflow-notebook") if notebooks else ""}</style></head>
<body>
<h1>nbflow run {esc(run.run_id)}: <span class="state" style="background:{states.COLOURS.get(run.state, "#fff")}">{esc(run.state)}</span></h1>
<div class="summary">{esc(run.pipeline)} · started {esc(started)} · {esc(format_duration(run.duration_s))} · {esc(summary)}
 · parameters: <code>{params}</code> · nbflow {esc(__version__)}</div>
<div class="graph">{paint_svg(svg, tasks)}</div>
{timeline}<h2>Tasks</h2>
"""
    left = budget - len(head.encode("utf-8"))
    yield head
    for name, task in tasks.items():
        tried = attempts.get(name, [])
        block = ""
        if notebooks is not None and tried and tried[-1].output_notebook:
            room = min(NOTEBOOK_BUDGET, left) if left >= MIN_NOTEBOOK_ROOM else 0
            rendered = notebooks(name, tried[-1], room) if room > 0 else None
            block = _notebook_block(rendered, _link(tried[-1].output_notebook, base), room, budget)
        section = _task_section(name, task, tried, logs.get(name), base, block)
        left -= len(section.encode("utf-8"))
        yield section
    yield "</body></html>\n"


def run_to_html(
    run: RunRecord,
    tasks: Mapping[str, TaskRecord],
    svg: str,
    attempts: Mapping[str, Sequence[AttemptRecord]] | None = None,
    logs: Mapping[str, str] | None = None,
    base: Path | None = None,
    gantt: str | None = None,
) -> str:
    """The report page, whole, without notebooks. ``base`` is the folder the page will be in
    (links to executed notebooks are relative to it)."""
    return "".join(iter_report(run, tasks, svg, attempts, logs, base, gantt))
