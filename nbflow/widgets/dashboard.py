"""The pipeline dashboard: graph, task panel, run history and controls, in one widget.

It reads the state store and never writes it. A run it starts goes to a background
thread (the kernel stays usable) and reports to it as a run listener; runs started
anywhere else are noticed by a :class:`~nbflow.store.watch.StoreWatcher`.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from nbflow import states
from nbflow.core.dag import DAG
from nbflow.engine.runner import pid_alive
from nbflow.errors import NbflowError, UnknownTaskError
from nbflow.execution.base import utcnow
from nbflow.execution.logs import read_log_tail
from nbflow.history import run_timeline
from nbflow.paths import StateDir, is_inside
from nbflow.store.base import AttemptRecord, RunRecord, TaskRecord
from nbflow.store.reader import Snapshot, StoreReader
from nbflow.store.watch import StoreWatcher
from nbflow.views import live as model
from nbflow.views import svg as graph_layout
from nbflow.views.grid import grid_json
from nbflow.views.svg import GraphLayout
from nbflow.views.timeline import Timeline, gantt_svg
from nbflow.widgets.graph import GraphView
from nbflow.widgets.links import lab_url
from nbflow.widgets.monitor import MonitorView

if TYPE_CHECKING:
    from nbflow.engine.runner import RunResult
    from nbflow.pipeline import Pipeline


@dataclasses.dataclass(frozen=True)
class FormDefault:
    """A parameter's default as the form shows it: a string's value (no quotes), else its source text."""

    text: str
    is_text: bool = False


def form_default(source: str) -> FormDefault:
    """The form's field for a default written as ``source`` (Python or R literal text, never run)."""
    if source != model.VARIES:
        try:
            value = ast.literal_eval(source.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            value = None
        if isinstance(value, str):
            return FormDefault(value, True)
    return FormDefault(source)


class _Live:
    """The run this dashboard started, as its listener hears it (ahead of the store)."""

    def __init__(self, run: RunRecord, tasks: Mapping[str, TaskRecord]) -> None:
        self.run = dataclasses.replace(run)
        self.tasks = {n: dataclasses.replace(t) for n, t in tasks.items()}


class Dashboard(widgets.VBox):
    """A live view of a pipeline, and controls to run it; see :func:`nbflow.show`.

    Parameters
    ----------
    pipeline
        The pipeline to show.
    reload
        Makes the pipeline afresh (from its folder) before each run, so edits to the
        notebooks are picked up; without it, ``pipeline`` is run as it is.
    poll_interval
        Seconds between checks of the state store for runs made elsewhere.
    use_dot
        Lay the graph out with Graphviz's ``dot`` (a simple layout is used without it).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        reload: Callable[[], Pipeline] | None = None,
        poll_interval: float = 0.2,
        use_dot: bool = True,
        history_limit: int = 50,
    ) -> None:
        self.pipeline = pipeline
        self._reload = reload
        self._use_dot = use_dot
        self.history_limit = history_limit
        self.reader = StoreReader(pipeline.state_path, history_limit)
        self._store = self.reader.store
        self._lock = threading.RLock()
        self._shown: str | None = None  # the run chosen in the history; None follows the latest
        self.run_record: RunRecord | None = None
        self.tasks: dict[str, TaskRecord] = {}
        self._live: _Live | None = None
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._result: RunResult | None = None
        self._updating = False
        self._panel_key: tuple[Any, ...] | None = None
        self._history: list[tuple[str, str]] = []
        self._layout_thread: threading.Thread | None = None
        self._log_read_at = 0.0
        self.layout_engine = ""
        self._attempt: int | None = None  # the attempt shown in the task panel; None: the latest
        self._grid_tasks: dict[str, dict[str, TaskRecord]] = {}  # finished runs' tasks, read once
        self._grid_key: tuple[Any, ...] | None = None
        self._timeline_key: tuple[Any, ...] | None = None
        self._timeline: Timeline | None = None
        self._timeline_drawn_at = 0.0

        super().__init__(self._build())
        self._use_pipeline(pipeline)
        self.watcher = StoreWatcher(
            pipeline.state_path, self._on_store_change, poll_interval, self._on_watch_error, self._on_idle
        )
        self.refresh()
        self.watcher.check()  # remember the store as it is now, then follow it
        self.watcher.start()

    def _build(self) -> list[widgets.Widget]:
        """Make the parts, wire their events; returns the dashboard's rows."""
        self.graph = GraphView()
        self.header = widgets.HTML()
        self.message = widgets.HTML()
        self.note = widgets.HTML()
        self.run_button = widgets.Button(description="Run", icon="play", button_style="primary")
        self.run_task_button = widgets.Button(
            description="Run selected", icon="step-forward", tooltip="Run the selected task and its upstreams"
        )
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger", disabled=True)
        self.force = widgets.Checkbox(description="even if up to date", indent=False)
        self.task_picker = widgets.Dropdown(description="Task", layout=widgets.Layout(width="95%"))
        self.task_detail = widgets.HTML()
        self.task_log = widgets.HTML()
        self.history = widgets.Select(rows=6)  # as wide as the dashboard: graph.css
        self.history.add_class("nbflow-history")
        self.param_fields: dict[str, widgets.Text] = {}
        self.monitor = MonitorView(colours=dict(states.COLOURS))
        self._params_box = widgets.VBox()

        self.run_button.on_click(lambda _: self.run(params=self.form_params(), force=self.force.value))
        self.run_task_button.on_click(lambda _: self._run_selected())
        self.stop_button.on_click(lambda _: self.stop())
        self.task_picker.observe(self._on_pick, names="value")
        self.graph.observe(self._on_graph_select, names="selected")
        self.history.observe(self._on_history, names="value")
        self.monitor.observe(self._on_monitor_click, names="clicked")

        controls = widgets.HBox([self.run_button, self.run_task_button, self.stop_button, self.force])
        params = widgets.Accordion(children=[self._params_box], selected_index=None)
        params.set_title(0, "Parameters")
        panel = widgets.VBox(
            [self.task_picker, self.task_detail, widgets.HTML("<b>Output</b>"), self.task_log],
            layout=widgets.Layout(flex="2 1 0", min_width="260px", padding="0 0 0 8px"),
        )
        self.graph.layout = widgets.Layout(flex="3 1 0", min_width="0")
        return [
            self.header,
            controls,
            params,
            self.message,
            self.note,
            widgets.HBox([self.graph, panel], layout=widgets.Layout(width="100%")),
            self.monitor,
            widgets.HTML("<b>Run history</b> <span style='color:#5f6368'>(choose a run to show it)</span>"),
            self.history,
        ]

    # -- the pipeline's structure ------------------------------------------------------

    @property
    def dag(self) -> DAG:
        return self.pipeline.dag

    def _use_pipeline(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        dag = pipeline.dag
        known = graph_layout.cached(dag) if self._use_dot else None
        if known is None and self._use_dot and graph_layout.is_big(dag):
            # a big graph is drawn plainly at once, then in dot's layout when that is ready
            self._draw(GraphLayout(graph_layout.layered_svg(dag), "pending", "Laying the graph out with Graphviz…"))
            self._layout_thread = threading.Thread(
                target=self._lay_out_in_background, args=(dag,), daemon=True, name="nbflow-layout"
            )
            self._layout_thread.start()
        else:
            self._draw(known or graph_layout.layout(dag, use_dot=self._use_dot))
        names = list(pipeline.dag.order)
        if list(self.task_picker.options) != names:
            self._updating = True
            try:
                self.task_picker.options = names
                self.task_picker.value = self.graph.selected if self.graph.selected in names else None
            finally:
                self._updating = False
        declared = {name: form_default(source) for name, source in model.declared_parameters(pipeline.specs).items()}
        if declared.keys() != self.param_fields.keys():
            self.param_fields = {
                name: widgets.Text(
                    value="" if default.text == model.VARIES else default.text,
                    placeholder=default.text,
                    description=name,
                    tooltip="text, sent as it is" if default.is_text else "a value, read like nbflow run -p",
                    style={"description_width": "initial"},
                )
                for name, default in declared.items()
            }
            self._params_box.children = list(self.param_fields.values()) or [
                widgets.HTML("<i>No notebook declares parameters.</i>")
            ]
        self._declared = declared
        if pipeline.code_note:  # tasks defined in code are listed, not loaded, until a run
            self._say(pipeline.code_note)

    def _draw(self, drawing: GraphLayout) -> None:
        self.layout_engine = drawing.engine
        self.note.value = model.note_html(drawing.note)
        if drawing.svg != self.graph.svg:
            self.graph.svg = drawing.svg

    def _lay_out_in_background(self, dag: DAG) -> None:
        drawing = graph_layout.layout(dag)
        with self._lock:
            if self.pipeline.dag is dag:  # not replaced meanwhile by a reloaded pipeline
                self._draw(drawing)

    def wait_for_layout(self, timeout: float | None = None) -> str:
        """Wait for a big graph's Graphviz layout; returns the layout engine (``dot`` or ``fallback``)."""
        if self._layout_thread is not None:
            self._layout_thread.join(timeout)
        return self.layout_engine

    # -- reading the store -------------------------------------------------------------

    def refresh(self, reread: bool = False) -> None:
        """Show the store as it is now (``reread``: read the database even if its file did not change)."""
        with self._lock:
            self._show_snapshot(self.reader.read(self._shown, reread, early=self._show_snapshot))

    def _show_snapshot(self, snap: Snapshot) -> None:
        live = self._live
        if live is not None and (self._shown is None or self._shown == live.run.run_id):
            self._show(live.run, dict(live.tasks))  # the listener is ahead of the store
        else:
            self._show(snap.run, snap.tasks)
        self._update_history(snap.runs)
        self._update_grid(snap)
        self._update_timeline(snap)

    def _show(self, run: RunRecord | None, tasks: dict[str, TaskRecord]) -> None:
        self.run_record, self.tasks = run, tasks
        paint = model.graph_paint(self.dag, tasks)
        if paint != self.graph.paint:
            self.graph.paint = paint
        self.header.value = model.header_html(self.pipeline.root, len(self.dag.order), run, tasks)
        self._update_panel()
        self._update_buttons()

    def _update_history(self, runs: Sequence[RunRecord]) -> None:
        options = model.history_options(runs)
        if options == self._history:
            return
        self._history = options
        self._updating = True
        try:
            self.history.options = options
            self.history.value = self._shown or ""
        finally:
            self._updating = False

    # -- the timeline and the grid -----------------------------------------------------

    #: runs in the grid
    GRID_RUNS = 15
    #: the Gantt chart's width in pixels (the browser scales it down to fit)
    GANTT_WIDTH = 640
    #: seconds between redraws of a running run's timeline while nothing else changes
    TIMELINE_REFRESH_S = 1.0

    def _update_grid(self, snap: Snapshot) -> None:
        """The recent runs x tasks grid; a finished run's tasks are read once, a running run's on each change."""
        runs = snap.runs[: self.GRID_RUNS]
        key: tuple[Any, ...] = (
            tuple((r.run_id, r.state, r.ended_at) for r in runs),
            tuple(self.dag.order),
            self._shown_key(),
        )
        if snap.run is not None:
            key += (snap.run.run_id, tuple(dataclasses.astuple(t) for t in snap.tasks.values()))
        if key == self._grid_key:
            return
        self._grid_key = key
        by_run: dict[str, dict[str, TaskRecord]] = {}
        for run in runs:
            known = self._grid_tasks.get(run.run_id)
            if known is not None:
                by_run[run.run_id] = known
                continue
            tasks = snap.tasks if snap.run is not None and run.run_id == snap.run.run_id else None
            tasks = tasks if tasks is not None else self._store.get_tasks(run.run_id)
            by_run[run.run_id] = tasks
            if run.ended_at is not None and all(t.state in states.TASK_FINISHED for t in tasks.values()):
                self._grid_tasks[run.run_id] = tasks  # ended, and its records written through: read once
        keep = {r.run_id for r in runs}
        self._grid_tasks = {k: v for k, v in self._grid_tasks.items() if k in keep}
        grid = grid_json(runs, by_run, list(self.dag.order))
        if grid != self.monitor.grid:
            self.monitor.grid = grid
        self._sync_shown()

    def _shown_key(self) -> tuple[str, str]:
        return (self.run_record.run_id if self.run_record else "", self.graph.selected)

    def _sync_shown(self) -> None:
        run, task = self._shown_key()
        shown = {"run": run, "task": task}
        if shown != self.monitor.shown:
            self.monitor.shown = shown

    def _update_timeline(self, snap: Snapshot) -> None:
        """The Gantt chart of the run shown; its executed notebooks (the kernels' start) are read
        again only when that run's attempts changed."""
        run = snap.run
        if run is None:
            self._timeline_key, self._timeline = None, None
            self._set_timeline("")
            return
        attempts = self._store.get_attempts(run.run_id)  # one query; the records written ahead come later
        key = (
            dataclasses.astuple(run),
            tuple(dataclasses.astuple(t) for t in snap.tasks.values()),
            tuple((a.task, a.attempt, a.state, a.started_at, a.ended_at, a.output_notebook) for a in attempts),
            self.dag.upstreams,
        )
        if key != self._timeline_key:
            self._timeline_key = key
            upstreams = {name: tuple(self.dag.upstreams[name]) for name in self.dag.order}
            self._timeline = run_timeline(self._store, self.pipeline.root, run.run_id, upstreams)
        self._draw_timeline()

    def _draw_timeline(self) -> None:
        tl = self._timeline
        if tl is None:
            return
        if tl.state == states.RUNNING:  # running bars grow to now, without reading anything again
            elapsed = (utcnow() - tl.started_at).total_seconds()
            tl = dataclasses.replace(tl, now_s=round(max(tl.now_s, elapsed), 1))
        self._timeline_drawn_at = time.monotonic()
        self._set_timeline(gantt_svg(tl, width=self.GANTT_WIDTH))

    def _set_timeline(self, svg: str) -> None:
        if svg != self.monitor.timeline_svg:
            self.monitor.timeline_svg = svg

    def _on_monitor_click(self, change: dict[str, Any]) -> None:
        clicked = change["new"] or {}
        run_id, task, attempt = clicked.get("run"), clicked.get("task"), clicked.get("attempt")
        task = task if isinstance(task, str) and task else None
        if not isinstance(run_id, str) or run_id not in self.monitor.grid.get("cells", {}):
            return  # not a run of the grid shown (a stale page): nothing to show
        if task is not None and task not in self.dag.upstreams:
            return
        self.show_attempt(run_id, task, attempt if isinstance(attempt, int) and attempt > 0 else None)

    def show_attempt(self, run_id: str, task: str | None = None, attempt: int | None = None) -> None:
        """Show a run, and in the task panel ``task``'s ``attempt`` (default: its latest) with its log."""
        with self._lock:
            if task is not None and task not in self.dag.upstreams:
                raise UnknownTaskError(task, self.dag.order)
            latest = self._history[1][1] if len(self._history) > 1 else None
            self.show_run(None if run_id == latest and self._shown is None else run_id)
            if task is not None:
                self.graph.selected = task
            self._attempt = attempt
            self._update_panel(force=True)
            self._update_buttons()
            self._sync_shown()

    def _attempts(self, name: str) -> list[AttemptRecord]:
        if self.run_record is None:
            return []
        return self._store.get_attempts(self.run_record.run_id, name)

    def _log_text(self, name: str, task: TaskRecord, attempts: Sequence[AttemptRecord]) -> str | None:
        run_id = task.run_id
        number = attempts[-1].attempt if attempts else task.attempts
        if number < 1:
            return None
        if task.state not in (states.RUNNING, states.UP_FOR_RETRY) or number < task.attempts:
            stored = self._store.get_log(run_id, name, number)
            if stored is not None:
                return stored
        path = Path(attempts[-1].log_path) if attempts and attempts[-1].log_path else None
        path = path or StateDir(self.pipeline.root).attempt(run_id, name, number).log
        # the path is the store's word: only a file inside the pipeline's folder is shown
        return read_log_tail(path) if path.is_file() and is_inside(path, self.pipeline.root.resolve()) else None

    def _update_panel(self, force: bool = False) -> None:
        name = self.graph.selected
        if not name:
            self.task_detail.value = "<i style='color:#5f6368'>Choose a task in the graph or the list.</i>"
            self.task_log.value = ""
            self._panel_key = None
            return
        task = self.tasks.get(name)
        key = (name, dataclasses.astuple(task) if task else None)
        if key == self._panel_key and not force and (task is None or task.state != states.RUNNING):
            return
        self._panel_key = key
        attempts = self._attempts(name) if task is not None else []
        chosen = [a for a in attempts if a.attempt == self._attempt]
        if chosen:  # an attempt chosen in the grid: shown as the panel's latest
            attempts = attempts[: attempts.index(chosen[0]) + 1]
        notebook = (attempts[-1].output_notebook if attempts else None) or (task.output_notebook if task else None)
        link = lab_url(notebook) if notebook and Path(notebook).exists() else None
        self.task_detail.value = model.task_detail_html(name, task, attempts, link, self.pipeline.root)
        self.task_log.value = model.log_html(self._log_text(name, task, attempts)) if task else ""

    def _update_buttons(self) -> None:
        own = self.running
        other = self.run_record is not None and self.run_record.state == states.RUNNING and not own
        self.run_button.disabled = own or other
        self.run_task_button.disabled = own or other or not self.graph.selected
        self.stop_button.disabled = not (own or (other and self._stoppable(self.run_record)))

    def _on_store_change(self) -> None:
        self.refresh()

    #: seconds between reads of a running task's log while nothing else changes
    LOG_REFRESH_S = 1.0

    def _on_idle(self) -> None:
        """Follow the growing log of the selected task while it runs."""
        task = self.tasks.get(self.graph.selected)
        now = time.monotonic()
        tl = self._timeline
        if tl is not None and tl.state == states.RUNNING and now - self._timeline_drawn_at >= self.TIMELINE_REFRESH_S:
            with self._lock:
                self._draw_timeline()
        if task is not None and task.state == states.RUNNING and now - self._log_read_at >= self.LOG_REFRESH_S:
            with self._lock:
                self._log_read_at = now
                self._update_panel(force=True)

    def _on_watch_error(self, error: BaseException) -> None:
        self._say(f"Could not read the state store: {error}", error=True)

    # -- choosing ----------------------------------------------------------------------

    def select_task(self, name: str) -> None:
        """Show ``name`` in the task panel (and outline it in the graph)."""
        if name not in self.dag.upstreams:
            raise UnknownTaskError(name, self.dag.order)
        self.graph.selected = name

    def show_run(self, run_id: str | None) -> None:
        """Show an earlier run (its states in the graph), or follow the latest with None."""
        self._shown = run_id or None
        self._updating = True
        try:
            self.history.value = run_id or ""
        finally:
            self._updating = False
        self.refresh()

    def _on_pick(self, change: dict[str, Any]) -> None:
        if not self._updating and change["new"] and change["new"] != self.graph.selected:
            self.graph.selected = change["new"]

    def _on_graph_select(self, change: dict[str, Any]) -> None:
        with self._lock:
            if change["old"] and change["new"] != change["old"]:
                self._attempt = None  # another task: its latest attempt
            self._sync_shown()
            if self.task_picker.value != change["new"] and change["new"] in self.task_picker.options:
                self._updating = True
                try:
                    self.task_picker.value = change["new"]
                finally:
                    self._updating = False
            self._update_panel(force=True)
            self._update_buttons()

    def _on_history(self, change: dict[str, Any]) -> None:
        if not self._updating:
            self._attempt = None
            self.show_run(change["new"] or None)

    # -- running -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether a run started from this dashboard is going on."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def result(self) -> RunResult | None:
        """The outcome of the last run this dashboard started, once it has finished."""
        return self._result

    def form_params(self) -> dict[str, Any]:
        """The parameter form's changed values: a parameter whose default is a string gets the text as it
        is typed (``5`` stays ``"5"``); any other is typed like ``nbflow run -p`` types it."""
        changed: dict[str, Any] = {}
        for name, field in self.param_fields.items():
            default = self._declared.get(name)
            if default is None or not default.is_text:
                changed |= model.form_overrides({name: field.value}, {name: default.text if default else ""})
            elif field.value and field.value != default.text:
                changed[name] = field.value
        return changed

    def run(
        self, params: Mapping[str, Any] | None = None, only: Sequence[str] | None = None, force: bool = False
    ) -> threading.Thread | None:
        """Start a run in the background and follow it; returns its thread (None if it could not start).

        Problems (another run going on, a bad parameter, an invalid pipeline) are shown
        in the widget and nothing runs.
        """
        with self._lock:
            if self.running:
                self._say("A run started here is still going on.", error=True)
                return None
            try:
                pipeline = self._reload() if self._reload is not None else self.pipeline
                pipeline.load_code()  # the user runs it: the folder's nbflow_tasks.py runs now, not when shown
                self._use_pipeline(pipeline)
                self.pipeline.validate_params(params)
            except NbflowError as e:
                self._say(str(e), error=True)
                return None
            self._stop_event = threading.Event()
            self._result = None
            self._shown = None
            self._say("Running in the background; this notebook's kernel stays free.")
            self._thread = threading.Thread(
                target=self._run_in_background, args=(dict(params or {}), only, force), daemon=True, name="nbflow-run"
            )
            self._thread.start()
            self._update_buttons()
            return self._thread

    def _run_selected(self) -> None:
        if self.graph.selected:
            self.run(params=self.form_params(), only=[self.graph.selected], force=self.force.value)

    def _run_in_background(self, params: dict[str, Any], only: Sequence[str] | None, force: bool) -> None:
        try:
            self._result = self.pipeline.run(
                params=params or None, only=only, force=force, listeners=[_Listener(self)], stop=self._stop_event
            )
            res = self._result
            self._say(f"Run {res.run_id} {res.state}.", error=not res.ok)
        except NbflowError as e:
            self._say(str(e), error=True)
        except Exception as e:  # shown, not lost in a thread's stderr
            self._say(f"The run stopped with an unexpected error: {type(e).__name__}: {e}", error=True)
        finally:
            with self._lock:
                self._live = None
            self.watcher.poke()

    def stop(self) -> bool:
        """Stop the run going on: this dashboard's own, or another process's on this machine.

        Returns whether a stop was requested. The run's kernels are killed and it is
        recorded ``interrupted``.
        """
        if self.running:
            self._stop_event.set()
            self._say("Stopping…")
            return True
        run = self.run_record
        if run is not None and run.state == states.RUNNING and self._stoppable(run):
            from nbflow.engine.runlock import lock_holder

            if lock_holder(StateDir(self.pipeline.root).lock) != run.pid:  # the store's pid is only data
                self._say(f"Process {run.pid} is not running this pipeline any more; nothing was stopped.")
                return False
            os.kill(run.pid, signal.SIGINT)  # nbflow run stops its kernels on SIGINT, as on Ctrl-C
            self._say(f"Asked process {run.pid} to stop run {run.run_id}.")
            return True
        self._say("No run is going on.")
        return False

    @staticmethod
    def _stoppable(run: RunRecord | None) -> bool:
        return (
            run is not None
            and run.hostname == socket.gethostname()
            and run.pid > 0
            and run.pid != os.getpid()
            and pid_alive(run.pid)
        )

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """Wait for the run started here to end; returns its result (None if it did not start or end)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                return None
        self.refresh()
        return self._result

    def _say(self, text: str, error: bool = False) -> None:
        import html

        colour = "#b3261e" if error else "#1e6b34"
        self.message.value = (
            f"<span style='color:{colour};white-space:pre-wrap'>{html.escape(text)}</span>" if text else ""
        )

    # -- listener events (from the run's thread) ---------------------------------------

    def _heard(
        self, run: RunRecord, task: TaskRecord | None = None, tasks: Mapping[str, TaskRecord] | None = None
    ) -> None:
        with self._lock:
            if tasks is not None:
                self._live = _Live(run, tasks)
            elif self._live is not None and self._live.run.run_id == run.run_id:
                self._live.run = dataclasses.replace(run)
                if task is not None:
                    self._live.tasks[task.task] = dataclasses.replace(task)
            live = self._live
            if live is not None and (self._shown is None or self._shown == live.run.run_id):
                self._show(live.run, dict(live.tasks))
        self.watcher.poke()  # the history list and anything else from the store

    _skip_next_display = False

    def _ipython_display_(self) -> None:
        if self._skip_next_display:  # nbflow.show() displayed it already, in this very cell
            self._skip_next_display = False
            return
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)

    def close(self) -> None:
        """Stop watching the store (a run started here goes on) and close the widget."""
        self.watcher.stop()
        for child in (self.graph, self.history, self.task_picker, self.monitor):
            child.close()
        super().close()


class _Listener:
    """Forwards a run's events to its dashboard."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard

    def on_run_start(self, *, run: RunRecord, tasks: Mapping[str, TaskRecord], **_: Any) -> None:
        self.dashboard._heard(run, tasks=tasks)

    def on_task(self, *, run: RunRecord, task: TaskRecord, **_: Any) -> None:
        self.dashboard._heard(run, task=task)

    def on_run_end(self, *, run: RunRecord, tasks: Mapping[str, TaskRecord], **_: Any) -> None:
        self.dashboard._heard(run, tasks=tasks)
