"""Show a run's progress: a live table on a terminal, plain lines elsewhere (CI, pipes)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import IO, Any

from nbflow import states
from nbflow.store.base import RunRecord, TaskRecord
from nbflow.views.text import counts_text, format_duration

_SYMBOL = {
    states.RUNNING: "…",
    states.SUCCESS: "✓",
    states.FAILED: "✗",
    states.UPSTREAM_FAILED: "-",
    states.INTERRUPTED: "!",
    states.PENDING: " ",
    states.UP_FOR_RETRY: "↻",
    states.SKIPPED: "-",
    states.UP_TO_DATE: "=",
}


def summary_line(run: RunRecord, tasks: Mapping[str, TaskRecord]) -> str:
    return f"run {run.run_id} {run.state} in {format_duration(run.duration_s)}: {counts_text(tasks)}"


def failure_lines(tasks: Mapping[str, TaskRecord]) -> list[str]:
    lines = []
    for t in tasks.values():
        if t.state == states.FAILED:
            lines.append(f"  {t.task}: {t.error}")
            if t.output_notebook:
                lines.append(f"    executed notebook: {t.output_notebook}")
            lines.append(f"    log: nbflow logs {t.task} --run {t.run_id}")
    return lines


class PlainProgress:
    """One line per state change, for logs and non-terminals."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr

    def _print(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", file=self.stream, flush=True)

    def on_run_start(self, *, run: RunRecord, tasks: Mapping[str, TaskRecord], **_: Any) -> None:
        self._print(f"run {run.run_id} started: {len(tasks)} tasks, {run.workers} workers")

    def on_task(self, *, run: RunRecord, task: TaskRecord, **_: Any) -> None:
        if task.state == states.RUNNING:
            extra = f" (attempt {task.attempts})" if task.attempts > 1 else ""
            self._print(f"{_SYMBOL[task.state]} {task.task} running{extra}")
        elif task.state == states.SUCCESS:
            self._print(f"{_SYMBOL[task.state]} {task.task} succeeded in {format_duration(task.duration_s)}")
        elif task.state in _SYMBOL:
            detail = f": {task.error}" if task.error else ""
            self._print(f"{_SYMBOL[task.state]} {task.task} {task.state}{detail}")

    def on_run_end(self, *, run: RunRecord, tasks: Mapping[str, TaskRecord], **_: Any) -> None:
        for line in failure_lines(tasks):
            print(line, file=self.stream)
        self._print(summary_line(run, tasks))


class LiveProgress:
    """A live table (rich) with a row per task; large pipelines show the active rows only."""

    MAX_ROWS = 25

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self._live: Any = None
        self._run: RunRecord | None = None
        self._tasks: dict[str, TaskRecord] = {}

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for col in ("", "task", "state", "time"):
            table.add_column(col)
        rows = list(self._tasks.values())
        if len(rows) > self.MAX_ROWS:
            rows = [t for t in rows if t.state not in (states.PENDING, states.SUCCESS)][: self.MAX_ROWS]
        styles = {
            states.SUCCESS: "green",
            states.FAILED: "red",
            states.RUNNING: "cyan",
            states.UPSTREAM_FAILED: "yellow",
        }
        for t in rows:
            elapsed = t.duration_s
            if t.state == states.RUNNING and t.started_at is not None:
                now = datetime.now(timezone.utc).replace(tzinfo=None)  # naive UTC, as the store keeps times
                elapsed = (now - t.started_at).total_seconds()
            style = styles.get(t.state, "")
            table.add_row(
                _SYMBOL.get(t.state, ""),
                t.task,
                f"[{style}]{t.state}[/]" if style else t.state,
                format_duration(elapsed) if elapsed is not None else "",
            )
        table.caption = counts_text(self._tasks, " · ")
        return table

    def on_run_start(self, *, run: RunRecord, tasks: Mapping[str, TaskRecord], **_: Any) -> None:
        from rich.live import Live

        self._run, self._tasks = run, dict(tasks)
        self.console.print(f"run [bold]{run.run_id}[/]: {len(tasks)} tasks, {run.workers} workers")
        self._live = Live(get_renderable=self._render, console=self.console, refresh_per_second=4, transient=False)
        self._live.start()

    def on_task(self, *, run: RunRecord, task: TaskRecord, **_: Any) -> None:
        self._tasks[task.task] = task

    def on_run_end(self, *, run: RunRecord, tasks: Mapping[str, TaskRecord], **_: Any) -> None:
        self._tasks = dict(tasks)
        if self._live is not None:
            self._live.stop()
        for line in failure_lines(tasks):
            self.console.print(line, markup=False, highlight=False)
        self.console.print(summary_line(run, tasks), markup=False, highlight=False)
