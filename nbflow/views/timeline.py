"""A run's timeline: each attempt's wait, kernel start and work, and its Gantt chart as SVG. Pure.

Times are seconds since the run's start. An attempt was *ready* when its upstreams had all
ended (the run's start for a root; a retry: when the attempt before it ended), so the time
from ``ready_s`` to ``start_s`` is its wait for a worker or a retry's delay. A notebook's
kernel had started by ``kernel_ready_s`` (its first cell began then), so ``start_s`` to
``kernel_ready_s`` is the kernel's start and ``kernel_ready_s`` to ``end_s`` the notebook's
own time. ``end_s`` is None while the attempt runs.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from nbflow.states import COLOURS, NO_STATE_COLOUR
from nbflow.store.base import AttemptRecord, RunRecord, TaskRecord
from nbflow.views.json import PANEL_TIMES, iso
from nbflow.views.svg import shown_name


@dataclass(frozen=True)
class Bar:
    """One attempt of one task on the timeline (seconds since the run's start)."""

    task: str
    attempt: int
    state: str
    ready_s: float
    start_s: float
    kernel_ready_s: float | None
    end_s: float | None


@dataclass(frozen=True)
class Timeline:
    """A run's attempts, in rows: ``tasks`` in the order they first started (then those that never did)."""

    run_id: str
    state: str
    started_at: datetime
    duration_s: float | None
    #: seconds from the run's start to its end, or to when this was read while it runs
    now_s: float
    tasks: list[str] = field(default_factory=list)
    #: each task's state in the run (the latest of its attempts)
    states: dict[str, str] = field(default_factory=dict)
    bars: list[Bar] = field(default_factory=list)


def _since(start: datetime, moment: datetime | None) -> float | None:
    return None if moment is None else round((moment - start).total_seconds(), 3)


def _ended(task: TaskRecord | None, attempts: list[AttemptRecord]) -> datetime | None:
    """When a task ended in the run: its record's end, else its last attempt's."""
    if task is not None and task.ended_at is not None:
        return task.ended_at
    return attempts[-1].ended_at if attempts else None


def build_timeline(
    run: RunRecord,
    tasks: Mapping[str, TaskRecord],
    attempts: Iterable[AttemptRecord],
    upstreams: Mapping[str, Iterable[str]],
    kernel_ready: Mapping[tuple[str, int], datetime] | None = None,
    now: datetime | None = None,
) -> Timeline:
    """The timeline of ``run``: its tasks' records, their ``attempts``, the DAG's ``upstreams``
    (task -> its upstreams, in the DAG's order) and the moment each notebook attempt's first
    cell began (``(task, attempt) -> time``, as the store's times: naive UTC).

    ``now`` is when a running run was read (default: the latest time recorded in it).
    """
    kernel_ready = kernel_ready or {}
    by_task: dict[str, list[AttemptRecord]] = {}
    for attempt in sorted(attempts, key=lambda a: (a.task, a.attempt)):
        by_task.setdefault(attempt.task, []).append(attempt)
    start = run.started_at

    bars: list[Bar] = []
    for name, tried in by_task.items():
        ends = [_ended(tasks.get(up), by_task.get(up, [])) for up in upstreams.get(name, ()) if up in tasks]
        ready_at = max([e for e in ends if e is not None], default=start)
        for attempt in tried:
            start_s = _since(start, attempt.started_at) or 0.0
            ready_s = min(max(_since(start, ready_at) or 0.0, 0.0), start_s)
            end_s = _since(start, attempt.ended_at)
            kernel_s = _since(start, kernel_ready.get((name, attempt.attempt)))
            if kernel_s is not None and (kernel_s < start_s or (end_s is not None and kernel_s > end_s)):
                kernel_s = None  # a time outside its own attempt (another attempt's notebook, a clock step)
            bars.append(Bar(name, attempt.attempt, attempt.state, ready_s, start_s, kernel_s, end_s))
            if attempt.ended_at is not None:
                ready_at = attempt.ended_at  # a retry waits from the end of the attempt before it

    known = [b.end_s or b.kernel_ready_s or b.start_s for b in bars]
    if run.ended_at is not None:
        now_s = _since(start, run.ended_at) or 0.0
    elif now is not None:
        now_s = max([_since(start, now) or 0.0, *known])
    else:
        now_s = max(known, default=0.0)

    position = {name: i for i, name in enumerate(upstreams)}
    first = {name: min(b.start_s for b in bars if b.task == name) for name in by_task}
    names = list(dict.fromkeys([*upstreams, *tasks, *by_task]))
    shown = [n for n in names if n in tasks or n in by_task]
    shown.sort(key=lambda n: (first.get(n, math.inf), position.get(n, len(position))))
    states = {n: tasks[n].state if n in tasks else by_task[n][-1].state for n in shown}
    return Timeline(run.run_id, run.state, start, run.duration_s, round(now_s, 3), shown, states, bars)


def timeline_json(tl: Timeline) -> dict[str, Any]:
    """The timeline as JSON (the REST API's ``timeline`` route)."""
    return {
        "run_id": tl.run_id,
        "state": tl.state,
        "started_at": iso(tl.started_at, PANEL_TIMES),
        "duration_s": None if tl.duration_s is None else round(tl.duration_s, 3),
        "now_s": tl.now_s,
        "tasks": list(tl.tasks),
        "states": dict(tl.states),
        "bars": [asdict(b) for b in tl.bars],
    }


# -- the Gantt chart ----------------------------------------------------------------------------

_ROW = 22
_BAR = 14
_AXIS = 24
_PAD = 8
_CHAR = 6.5  # about one character's width at 11px
_NICE = (1, 2, 5)


def _tick_step(span: float, room: float) -> float:
    """A round step (1, 2, 5 x 10^k seconds) giving ticks about 80 pixels apart."""
    wanted = span / max(room / 80, 1)
    power = 10 ** math.floor(math.log10(wanted)) if wanted > 0 else 1
    for nice in _NICE:
        if nice * power >= wanted:
            return nice * power
    return 10 * power


def _seconds(value: float) -> str:
    return f"{value:g}s" if value < 60 or value % 60 else f"{value / 60:g}m"


def gantt_svg(tl: Timeline, width: int = 720) -> str:
    """The timeline as an SVG Gantt chart, ``width`` pixels wide: one row per task, one bar per
    attempt (its wait hatched, its kernel's start shaded, its work in its state's colour).

    No script, no external reference; names escaped. Text is ``currentColor`` and every part
    has a class (``nbflow-gantt-label``, ``-axis``, ``-queued``, ``-kernel``, ``-run``) that a
    theme may restyle.
    """
    labels = [shown_name(n) for n in tl.tasks]
    labels = [s if len(s) <= 28 else s[:27] + "…" for s in labels]
    left = min(max([len(s) for s in labels] + [4]) * _CHAR + 2 * _PAD, width / 3)
    right = 2 * _PAD
    room = max(width - left - right, 40)
    span = max(tl.now_s, max((b.end_s or b.start_s for b in tl.bars), default=0.0), 1.0)
    scale = room / span
    height = _AXIS + _ROW * max(len(tl.tasks), 1) + _PAD

    def x(seconds: float) -> str:
        return f"{left + min(max(seconds, 0.0), span) * scale:.1f}"

    def w(a: float, b: float) -> str:
        return f"{max((min(b, span) - min(a, span)) * scale, 1.0):.1f}"

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="nbflow-gantt" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" role="img">',
        f"<title>{html.escape(f'Run {tl.run_id}: {tl.state}')}</title>",
        '<defs><pattern id="nbflow-gantt-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#e8eaed" fill-opacity="0.5"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#9aa0a6" stroke-width="2"/></pattern></defs>',
        '<g class="nbflow-gantt-axis" stroke="currentColor" stroke-opacity="0.25" fill="currentColor">',
    ]
    step = _tick_step(span, room)
    ticks = int(span // step) + 1
    for i in range(ticks):
        at = i * step
        out.append(
            f'<line x1="{x(at)}" y1="{_AXIS - 4}" x2="{x(at)}" y2="{height - _PAD}"/>'
            f'<text x="{x(at)}" y="{_AXIS - 8}" text-anchor="middle" stroke="none" fill-opacity="0.8">'
            f"{html.escape(_seconds(round(at, 6)))}</text>"
        )
    out.append("</g>")
    rows = {name: i for i, name in enumerate(tl.tasks)}
    for name, label in zip(tl.tasks, labels, strict=True):
        y = _AXIS + rows[name] * _ROW + _ROW / 2 + 4
        state = tl.states.get(name, "")
        out.append(
            f'<text class="nbflow-gantt-label" x="{left - _PAD}" y="{y:.1f}" text-anchor="end" '
            f'fill="currentColor"><title>{html.escape(f"{shown_name(name)}: {state}")}</title>'
            f"{html.escape(label)}</text>"
        )
    for bar in tl.bars:
        top = f"{_AXIS + rows[bar.task] * _ROW + (_ROW - _BAR) / 2:.1f}"
        end = tl.now_s if bar.end_s is None else bar.end_s
        colour = COLOURS.get(bar.state, NO_STATE_COLOUR)
        tip = html.escape(
            f"{shown_name(bar.task)} attempt {bar.attempt}: {bar.state}, waited {bar.start_s - bar.ready_s:.1f}s"
            + ("" if bar.kernel_ready_s is None else f", kernel {bar.kernel_ready_s - bar.start_s:.1f}s")
            + f", ran {end - bar.start_s:.1f}s"
            + (" so far" if bar.end_s is None else "")
        )
        out.append(f'<g class="nbflow-gantt-attempt" data-attempt="{bar.attempt}"><title>{tip}</title>')
        if bar.start_s > bar.ready_s:
            out.append(
                f'<rect class="nbflow-gantt-queued" x="{x(bar.ready_s)}" y="{top}" '
                f'width="{w(bar.ready_s, bar.start_s)}" height="{_BAR}" fill="url(#nbflow-gantt-hatch)"/>'
            )
        work_from = bar.start_s
        if bar.kernel_ready_s is not None:
            out.append(
                f'<rect class="nbflow-gantt-kernel" x="{x(bar.start_s)}" y="{top}" '
                f'width="{w(bar.start_s, bar.kernel_ready_s)}" height="{_BAR}" fill="#9aa0a6"/>'
            )
            work_from = bar.kernel_ready_s
        out.append(
            f'<rect class="nbflow-gantt-run nbflow-gantt-{html.escape(bar.state)}" x="{x(work_from)}" '
            f'y="{top}" width="{w(work_from, end)}" height="{_BAR}" fill="{colour}" '
            f'stroke="currentColor" stroke-opacity="0.35"/></g>'
        )
    out.append("</svg>")
    return "".join(out)
