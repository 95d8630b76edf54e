"""What the CLI's commands do, apart from parsing arguments and printing: calls into the core."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbflow.engine.runner import load_run
from nbflow.errors import UnknownTaskError
from nbflow.paths import StateDir
from nbflow.store.base import AttemptRecord, RunRecord, RunStore, TaskRecord


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
        from nbflow.paths import is_inside

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


def write_report(path: str | Path, run_id: str | None, out: str | Path) -> RunRecord:
    """Write a run of the pipeline in ``path`` (the latest by default) as one HTML page.

    Raises
    ------
    RunNotFoundError, PipelineValidationError
    """
    from nbflow.pipeline import Pipeline
    from nbflow.views.html_report import run_to_html
    from nbflow.views.svg import layout

    pipeline = Pipeline.from_dir(path, save_cache=False)  # looking: nbflow_tasks.py is read, not run
    with open_store(pipeline.root, read_only=True) as store:
        run, tasks = load_run(store, run_id)
        attempts, logs = _attempts_and_logs(store, run)
    dag = pipeline.dag.subset([n for n in tasks if n in pipeline.specs]) if tasks else pipeline.dag
    tasks = {n: tasks[n] for n in dag.order if n in tasks} | tasks  # sections in the order tasks run
    target = Path(out).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    page = run_to_html(run, tasks, layout(dag).svg, attempts, logs, base=target.parent)
    target.write_text(page, encoding="utf-8")
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
