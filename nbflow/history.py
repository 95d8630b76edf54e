"""What the CLI's commands do, apart from parsing arguments and printing: calls into the core."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbflow.engine.runner import load_run
from nbflow.errors import UnknownTaskError
from nbflow.paths import StateDir, is_inside
from nbflow.store.base import AttemptRecord, RunRecord, RunStore, TaskRecord

if TYPE_CHECKING:
    from nbflow.views.notebook_html import NotebookHtml
    from nbflow.views.timeline import Timeline


#: an executed notebook larger than this is not put into a report at all (its link stays)
MAX_NOTEBOOK_FILE = 256 * 1024 * 1024


def open_store(path: str | Path, read_only: bool = False) -> RunStore:
    """The state store of the pipeline at ``path`` (no notebook is read); ``read_only``: a view's,
    which writes nothing (see :class:`~nbflow.store.duckdb.DuckDBRunStore`)."""
    from nbflow.store.duckdb import DuckDBRunStore

    return DuckDBRunStore(StateDir(Path(path).resolve()).store, read_only=read_only)


def task_log(
    store: RunStore, task: str, run_id: str | None, attempt: int | None, within: Path | None = None
) -> tuple[AttemptRecord, str]:
    """The captured output of a task's attempt (the last one by default), with its traceback.

    A running attempt's output is read from its log file; with ``within`` (a server's
    root), only from a file whose real path is inside it. A read-only store is not reaped.

    Raises
    ------
    RunNotFoundError, UnknownTaskError
    """
    run, tasks = load_run(store, run_id)
    if task not in tasks:
        raise UnknownTaskError(task, list(tasks), what=f"task in run {run.run_id}")
    attempts = store.get_attempts(run.run_id, task)
    if not attempts:
        raise UnknownTaskError(
            task, [t for t, r in tasks.items() if r.attempts], what=f"task that ran in run {run.run_id}"
        )
    chosen = attempts[-1] if attempt is None else next((a for a in attempts if a.attempt == attempt), None)
    if chosen is None:
        raise UnknownTaskError(str(attempt), [str(a.attempt) for a in attempts], what=f"attempt of {task}")
    text = store.get_log(run.run_id, task, chosen.attempt)
    log_path = Path(chosen.log_path) if chosen.log_path else None
    if text is None and log_path is not None and log_path.is_file():
        from nbflow.execution.logs import read_log_tail

        if within is None or is_inside(log_path, within):  # the path is the store's word: not trusted
            text = read_log_tail(log_path)  # a running attempt: read its file
    return chosen, text or ""


def _attempts_and_logs(store: RunStore, run: RunRecord) -> tuple[dict[str, list[AttemptRecord]], dict[str, str]]:
    """A run's attempts by task, and each task's last captured output."""
    attempts: dict[str, list[AttemptRecord]] = {}
    for attempt in store.get_attempts(run.run_id):
        attempts.setdefault(attempt.task, []).append(attempt)
    logs = {}
    for name, tried in attempts.items():
        text = store.get_log(run.run_id, name, tried[-1].attempt)
        if text:
            logs[name] = text
    return attempts, logs


def notebook_reader(root: Path) -> Callable[[str, AttemptRecord, int], NotebookHtml | None]:
    """A renderer for :func:`~nbflow.views.html_report.iter_report`: an attempt's executed notebook,
    read only from inside ``root`` (the store's path is not trusted), rendered within its budget."""
    from nbflow.views.notebook_html import NotebookHtml, notebook_to_html

    def render(task: str, attempt: AttemptRecord, budget: int) -> NotebookHtml | None:
        if not attempt.output_notebook:
            return None
        path = Path(attempt.output_notebook)
        if not path.is_absolute():
            path = root / path
        if not is_inside(path, root):
            return NotebookHtml("", not_shown="it is outside the pipeline's folder")
        try:
            size = path.stat().st_size
            if size > MAX_NOTEBOOK_FILE:
                return NotebookHtml("", not_shown=f"the file is {size / 2**20:,.0f} MiB")
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return NotebookHtml("", not_shown="the file is gone")
        except (OSError, UnicodeDecodeError) as e:
            return NotebookHtml("", not_shown=f"the file cannot be read ({type(e).__name__})")
        return notebook_to_html(text, budget)

    return render


def write_report(path: str | Path, run_id: str | None, out: str | Path) -> RunRecord:
    """Write a run of the pipeline in ``path`` (the latest by default) as one HTML page, with its
    timeline and its tasks' executed notebooks; the file appears whole or not at all.

    Raises
    ------
    RunNotFoundError, PipelineValidationError
    """
    from nbflow.pipeline import Pipeline
    from nbflow.views.html_report import iter_report
    from nbflow.views.svg import layout
    from nbflow.views.timeline import gantt_svg

    pipeline = Pipeline.from_dir(path, save_cache=False)  # looking: nbflow_tasks.py is read, not run
    root = Path(pipeline.root).resolve()
    with open_store(root, read_only=True) as store:
        run, tasks = load_run(store, run_id)
        attempts, logs = _attempts_and_logs(store, run)
        dag = pipeline.dag.subset([n for n in tasks if n in pipeline.specs]) if tasks else pipeline.dag
        timeline = run_timeline(store, root, run.run_id, dag.upstreams)  # kernel starts: the notebooks' own times
    tasks = {n: tasks[n] for n in dag.order if n in tasks} | tasks  # sections in the order tasks run
    target = Path(out).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    pieces = iter_report(
        run,
        tasks,
        layout(dag).svg,
        attempts,
        logs,
        base=target.parent,
        gantt=gantt_svg(timeline, width=960),
        notebooks=notebook_reader(root),
    )
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for piece in pieces:
                f.write(piece)
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return run


def write_junit(store: RunStore, run: RunRecord, tasks: dict[str, TaskRecord], path: str | Path) -> None:
    """Write the run as a JUnit XML report (``nbflow run --junit``), with tracebacks and output."""
    from nbflow.views.junit import run_to_junit

    attempts, logs = _attempts_and_logs(store, run)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(run_to_junit(run, tasks, attempts, logs), encoding="utf-8")


def _last_products(store: RunStore, run_id: str) -> dict[str, dict[str, str]]:
    """Each task's product checksums from its last attempt in a run."""
    found: dict[str, dict[str, str]] = {}
    for attempt in store.get_attempts(run_id):
        found[attempt.task] = attempt.products
    return found


def diff_runs(store: RunStore, run_a: str, run_b: str) -> dict[str, Any]:
    """What changed from run A to run B: parameters, environment and sources, task states and durations.

    Raises
    ------
    RunNotFoundError
    """
    from nbflow.engine.environment import changed, environment_changes

    a, tasks_a = load_run(store, run_a)
    b, tasks_b = load_run(store, run_b)
    products_a, products_b = _last_products(store, a.run_id), _last_products(store, b.run_id)
    tasks = {}
    for name in sorted(tasks_a.keys() | tasks_b.keys()):
        ta, tb = tasks_a.get(name), tasks_b.get(name)
        tasks[name] = {
            "state": [ta.state if ta else None, tb.state if tb else None],
            "duration_s": [ta.duration_s if ta else None, tb.duration_s if tb else None],
            "products": changed(products_a.get(name, {}), products_b.get(name, {})),
        }
    return {
        "runs": [a.run_id, b.run_id],
        "states": [a.state, b.state],
        "params": changed(a.params, b.params),
        "environment": environment_changes(a.environment, b.environment),
        "tasks": tasks,
    }


def changes_since(pipeline: Any, run: RunRecord) -> dict[str, Any]:
    """How the pipeline and this environment differ now from when ``run`` ran (``nbflow rerun``)."""
    from nbflow.engine.environment import capture, environment_changes
    from nbflow.kinds import kind_of

    specs = pipeline.specs
    now = capture(
        {n: s.source_hash for n, s in specs.items() if n in run.environment.get("sources", specs)},
        {
            n: s.kernel_name
            for n, s in specs.items()
            if kind_of(s.kind).uses_kernel and n in run.environment.get("kernels", specs)
        },
        Path(run.environment.get("outputs", "")),
    )
    return environment_changes(run.environment, now)


# -- monitoring: a run's timeline, the runs x tasks grid, a task's trend, a log followed ----------

#: an executed notebook larger than this is not read for its kernel's start time
_NOTEBOOK_READ_CAP = 64 * 1024 * 1024
_kernel_ready_cache: dict[tuple[str, int, int], datetime | None] = {}
#: the bits of a follower's offset that count bytes; the attempt's number is above them
_OFFSET_BITS = 40


def _utc(text: Any) -> datetime | None:
    """An ISO time (papermill's, with its offset) as the store keeps times: naive UTC."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def notebook_kernel_ready(path: Path) -> datetime | None:
    """When the executed notebook's first code cell began (papermill's cell metadata): its kernel
    was up then. The file is read as JSON, never run; None if it says nothing."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key in _kernel_ready_cache:
        return _kernel_ready_cache[key]
    found = None
    if stat.st_size <= _NOTEBOOK_READ_CAP:
        try:
            cells = json.loads(path.read_bytes()).get("cells", [])
        except (OSError, ValueError, AttributeError):
            cells = []
        for cell in cells if isinstance(cells, list) else []:
            meta = cell.get("metadata", {}) if isinstance(cell, dict) else {}
            started = _utc(meta.get("papermill", {}).get("start_time")) if isinstance(meta, dict) else None
            if cell.get("cell_type") == "code" and started is not None:
                found = started
                break
    if len(_kernel_ready_cache) > 512:
        _kernel_ready_cache.clear()
    _kernel_ready_cache[key] = found
    return found


def declared_upstreams(folder: Path, within: Path | None = None) -> dict[str, list[str]]:
    """Each task's upstreams as the folder declares them now, in the DAG's order (read, never run);
    none for a folder that does not validate."""
    from nbflow.errors import PipelineValidationError
    from nbflow.pipeline import Pipeline

    try:
        pipeline = Pipeline.from_dir(folder, save_cache=False, within=within)
    except PipelineValidationError:
        return {}
    return {name: list(pipeline.dag.upstreams[name]) for name in pipeline.dag.order}


def run_timeline(
    store: RunStore,
    folder: str | Path,
    run_id: str | None = None,
    dag_upstreams: Mapping[str, Sequence[str]] | None = None,
    within: Path | None = None,
) -> Timeline:
    """The timeline of a run (the latest by default) of the pipeline in ``folder``: its attempts
    from the store, each notebook's kernel start from its executed notebook (only a file inside
    ``folder``, and inside ``within`` if given). ``dag_upstreams``: the DAG's (default: read now).

    Raises
    ------
    RunNotFoundError
    """
    from nbflow.execution.base import utcnow
    from nbflow.views.timeline import build_timeline

    root = Path(folder).resolve()
    upstreams = dict(dag_upstreams) if dag_upstreams is not None else declared_upstreams(root, within)
    run, tasks = load_run(store, run_id)
    attempts = store.get_attempts(run.run_id)
    kernel_ready = {}
    for attempt in attempts:
        path = Path(attempt.output_notebook) if attempt.output_notebook else None
        if path is None or not is_inside(path, root) or (within is not None and not is_inside(path, within)):
            continue  # the path is the store's word: not trusted
        started = notebook_kernel_ready(path)
        if started is not None:
            kernel_ready[(attempt.task, attempt.attempt)] = started
    return build_timeline(run, tasks, attempts, upstreams, kernel_ready, now=utcnow())


def run_grid(store: RunStore, order: Sequence[str], limit: int = 25) -> dict[str, Any]:
    """The ``limit`` newest runs x tasks (``order``: the DAG's), as :func:`~nbflow.views.grid.grid_json`."""
    from nbflow.views.grid import grid_json

    runs, tasks = store.recent_tasks(limit)
    return grid_json(runs, tasks, order)


def task_trend(store: RunStore, task: str, limit: int = 50) -> dict[str, Any]:
    """The ``limit`` latest attempts of ``task``, oldest first, as :func:`~nbflow.views.grid.trend_json`."""
    from nbflow.views.grid import trend_json

    return trend_json(task, store.task_attempts(task, limit))


@dataclass
class LogPiece:
    """What a log follower reads: the attempt, its text (after ``offset`` when it gave one),
    where to read next, whether the attempt has ended, and whether ``text`` starts over
    (another attempt than the offset's, or only the store's tail is left)."""

    attempt: AttemptRecord
    text: str
    offset: int
    complete: bool
    restart: bool = False


def follow_log(
    store: RunStore,
    task: str,
    run_id: str | None,
    attempt: int | None,
    offset: int | None,
    within: Path | None = None,
) -> LogPiece:
    """A task's output for a follower: without ``offset`` as :func:`task_log` gives it, else only
    what follows ``offset`` (from an earlier answer), read from the attempt's log file, never
    the whole of it. A finished attempt's text comes from the store when its file is gone.

    Raises
    ------
    RunNotFoundError, UnknownTaskError
    """
    from nbflow.execution.follow import read_log_from, read_log_tail_at
    from nbflow.states import RUNNING

    record, text = task_log(store, task, run_id, attempt, within)
    complete = record.ended_at is not None or record.state != RUNNING
    path = Path(record.log_path) if record.log_path else None
    readable = (
        path is not None and path.is_file() and (within is None or is_inside(path, within))
    )  # the path is the store's word: not trusted
    base = record.attempt << _OFFSET_BITS
    if offset is None:
        if readable and path is not None and not complete:
            text, end = read_log_tail_at(path)
            return LogPiece(record, text, base + end, complete)
        end = path.stat().st_size if readable and path is not None else len(text.encode())
        return LogPiece(record, text, base + end, complete)
    same = offset >> _OFFSET_BITS == record.attempt
    start = offset & ((1 << _OFFSET_BITS) - 1) if same else 0
    if readable and path is not None:
        piece, end = read_log_from(path, start)
        return LogPiece(record, piece, base + end, complete and end >= path.stat().st_size, restart=not same)
    if not complete:  # no file yet: nothing to read
        return LogPiece(record, "", base + start if same else base, False, restart=not same)
    return LogPiece(record, text, base + len(text.encode()), True, restart=True)
