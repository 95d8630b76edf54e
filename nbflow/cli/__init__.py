"""The ``nbflow`` command line. Parses arguments and prints; the work is in the core.

Exit codes: 0 all tasks succeeded, 1 a task failed, 2 the pipeline or the command is
invalid, 130 the run was interrupted.
"""

from __future__ import annotations

import errno
import json
import signal
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from nbflow import __version__

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"nbflow: error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """An NbflowError becomes its message on stderr and exit code 2; no traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from nbflow.errors import NbflowError

        try:
            return func(*args, **kwargs)
        except NbflowError as e:
            _fail(str(e), e.exit_code)
        except KeyboardInterrupt:  # before a run started (a run handles its own)
            _fail("interrupted", 130)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            _fail(f"the disk is full: {e.filename or ''} could not be written ({e.strerror}). Free some space and try again.", 1)

    return wrapper  # type: ignore[return-value]


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nbflow")
def cli() -> None:
    """nbflow: run a folder of notebooks as a DAG, recorded in DuckDB."""


def _sigterm_as_interrupt() -> None:
    """SIGTERM and SIGINT stop a run as Ctrl-C does.

    SIGINT too, because a process started with it ignored (by a script's ``cmd &``, say)
    passes that on: a run started from such a Jupyter server would never hear the panel's
    Stop.
    """

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def executor_options(func: F) -> F:
    """``--executor``, ``--scheduler`` and ``--worker-root``: where the tasks execute."""
    func = click.option(
        "--worker-root",
        default=None,
        metavar="PATH",
        help="Where Dask workers see the pipeline folder, if not at the same path (a shared filesystem).",
    )(func)
    func = click.option(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="A running Dask scheduler (tcp://HOST:PORT); implies --executor dask.",
    )(func)
    func = click.option(
        "--executor",
        "executor_kind",
        type=click.Choice(["local", "dask"]),
        default=None,
        help="local: kernels on this machine. dask: every task on a Dask worker (a LocalCluster of "
        "--workers processes, or the cluster at --scheduler). Default: the project's executor setting, else local.",
    )(func)
    return func


def _make_executor(
    pipeline: Any,
    kind: str | None,
    scheduler: str | None,
    worker_root: str | None,
    workers: int | None,
    warm_kernels: int | None = None,
) -> Any:
    """The executor the options ask for, or None for the project's default (``executor``)."""
    from nbflow.errors import NbflowError

    if scheduler and kind == "local":
        raise NbflowError("--scheduler is for the Dask executor; it cannot be used with --executor local")
    effective = kind or ("dask" if scheduler else None) or pipeline.project.executor
    if worker_root and effective != "dask":
        raise NbflowError("--worker-root is for the Dask executor: add --executor dask")
    if kind is None and scheduler is None and worker_root is None:
        return None
    return pipeline.make_executor(
        effective, workers=workers, warm_kernels=warm_kernels, scheduler=scheduler, worker_root=worker_root
    )


@cli.command()
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="[TASK.]NAME=VALUE",
    help="Set a parameter (YAML/JSON literal, else a string); TASK.NAME for one task. Repeatable.",
)
@click.option(
    "--workers", "-w", type=click.IntRange(min=1), default=None, help="Tasks run at once (default: CPU count)."
)
@click.option("--only", multiple=True, metavar="TASK", help="Run only these tasks and what they need. Repeatable.")
@click.option("--force", is_flag=True, help="Run every selected task, up to date or not.")
@click.option(
    "--force-task",
    "force_tasks",
    multiple=True,
    metavar="TASK",
    help="Run this task (and what depends on it) even if up to date. Repeatable.",
)
@click.option("--dry-run", is_flag=True, help="Say what would run and why, and run nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's final status as JSON on stdout.")
@click.option("--progress/--no-progress", default=None, help="Live table (default on a terminal) or plain lines.")
@click.option("--logical-date", default=None, metavar="DATE", help="The schedule date this run is for (ISO).")
@click.option(
    "--warm-kernels",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Kernels started ahead of time for the next tasks (default 2, or the project's warm_kernels).",
)
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PATH",
    help="Also write the run as a JUnit XML report (one testcase per task) for a CI server.",
)
@executor_options
@handle_errors
def run(
    path: str,
    params: tuple[str, ...],
    workers: int | None,
    only: tuple[str, ...],
    force: bool,
    as_json: bool,
    progress: bool | None,
    logical_date: str | None,
    force_tasks: tuple[str, ...],
    dry_run: bool,
    warm_kernels: int | None,
    junit_path: str | None,
    executor_kind: str | None,
    scheduler: str | None,
    worker_root: str | None,
) -> None:
    """Run the pipeline in PATH (default: the current folder).

    Tasks that are up to date (same code, parameters, kernel and upstreams as their last
    success, products still there) are not run again; --force and --force-task override.
    """
    from nbflow.project.params import parse_assignments
    from nbflow.pipeline import Pipeline
    from nbflow.views.render import run_to_json

    _sigterm_as_interrupt()
    pipeline = Pipeline.from_dir(path, load_code=True)  # running: nbflow_tasks.py runs
    overrides = parse_assignments(params)
    if dry_run:
        decisions = pipeline.plan(overrides, list(only) or None, force, force_tasks)
        if as_json:
            _print_json({name: {"run": d.run, "reason": d.reason} for name, d in decisions.items()})
        else:
            from nbflow.views.render import table

            rows = [[name, "run" if d.run else "skip", d.reason] for name, d in decisions.items()]
            click.echo(table(rows, ["task", "action", "why"]), nl=False)
        return
    executor = _make_executor(pipeline, executor_kind, scheduler, worker_root, workers, warm_kernels)
    try:
        result = pipeline.run(
            params=overrides,
            workers=workers,
            only=list(only) or None,
            force=force,
            listeners=[_progress(progress)],
            logical_date=_iso_date(logical_date) if logical_date else None,
            force_tasks=force_tasks,
            warm_kernels=warm_kernels,
            executor=executor,
        )
    finally:
        if executor is not None:
            executor.close()
    if junit_path:
        from nbflow.history import open_store, write_junit

        with open_store(pipeline.root) as store:
            write_junit(store, result.run, result.tasks, junit_path)
    if as_json:
        _print_json(run_to_json(result.run, result.tasks))
    if result.problem is not None:
        click.echo(f"nbflow: error: {result.problem}", err=True)
    sys.exit(result.exit_code)


@cli.command()
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option("--run", "run_id", default=None, help="A run id (default: the latest run).")
@click.option(
    "-o",
    "--output",
    "out",
    default="nbflow-report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The HTML file to write.",
)
@handle_errors
def report(path: str, run_id: str | None, out: str) -> None:
    """Write a run of the pipeline in PATH as one self-contained HTML page (graph, tasks, errors, outputs)."""
    from nbflow.history import write_report

    run = write_report(path, run_id, out)
    click.echo(f"report of run {run.run_id} ({run.state}): {out}")


@cli.command()
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option("--run", "run_id", default=None, help="The run to resume (default: the latest).")
@click.option(
    "--workers", "-w", type=click.IntRange(min=1), default=None, help="Tasks run at once (default: CPU count)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the run's final status as JSON on stdout.")
@click.option("--progress/--no-progress", default=None, help="Live table (default on a terminal) or plain lines.")
@executor_options
@handle_errors
def resume(
    path: str,
    run_id: str | None,
    workers: int | None,
    as_json: bool,
    progress: bool | None,
    executor_kind: str | None,
    scheduler: str | None,
    worker_root: str | None,
) -> None:
    """Re-run what did not succeed in a run (interrupted, killed or failed), with its parameters."""
    from nbflow.pipeline import Pipeline
    from nbflow.views.render import run_to_json

    _sigterm_as_interrupt()
    pipeline = Pipeline.from_dir(path, load_code=True)
    executor = _make_executor(pipeline, executor_kind, scheduler, worker_root, workers)
    try:
        result = pipeline.resume(run_id=run_id, workers=workers, listeners=[_progress(progress)], executor=executor)
    finally:
        if executor is not None:
            executor.close()
    if as_json:
        _print_json(run_to_json(result.run, result.tasks))
    if result.problem is not None:
        click.echo(f"nbflow: error: {result.problem}", err=True)
    sys.exit(result.exit_code)


@cli.command()
@click.argument("run_id")
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option(
    "--workers", "-w", type=click.IntRange(min=1), default=None, help="Tasks run at once (default: CPU count)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the run's final status as JSON on stdout.")
@click.option("--progress/--no-progress", default=None, help="Live table (default on a terminal) or plain lines.")
@handle_errors
def rerun(run_id: str, path: str, workers: int | None, as_json: bool, progress: bool | None) -> None:
    """Run RUN_ID's tasks again with its parameters, all of them, saying first what differs since it ran."""
    from nbflow.history import changes_since, load_run, open_store
    from nbflow.engine.environment import changes_to_text, is_empty
    from nbflow.pipeline import Pipeline
    from nbflow.views.render import run_to_json

    _sigterm_as_interrupt()
    pipeline = Pipeline.from_dir(path, load_code=True)
    with open_store(pipeline.root) as store:
        earlier, _tasks = load_run(store, run_id)
    changes = changes_since(pipeline, earlier)
    if not earlier.environment:
        click.echo(f"run {earlier.run_id} recorded no environment (an older nbflow): differences unknown", err=True)
    elif is_empty(changes):
        click.echo(f"rerun of {earlier.run_id}: same sources, kernels, Python and packages", err=True)
    else:
        click.echo(f"rerun of {earlier.run_id}: differences since it ran:", err=True)
        for line in changes_to_text(changes):
            click.echo(f"  {line}", err=True)
    result = pipeline.run(
        params=earlier.params, workers=workers, only=earlier.selected, force=True, listeners=[_progress(progress)]
    )
    if as_json:
        _print_json({**run_to_json(result.run, result.tasks), "rerun_of": earlier.run_id, "differences": changes})
    if result.problem is not None:
        click.echo(f"nbflow: error: {result.problem}", err=True)
    sys.exit(result.exit_code)


@cli.command()
@click.argument("run_a")
@click.argument("run_b")
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@handle_errors
def diff(run_a: str, run_b: str, path: str, as_json: bool) -> None:
    """What changed from RUN_A to RUN_B: parameters, sources, environment, task states and durations."""
    from nbflow.history import diff_runs, open_store
    from nbflow.engine.environment import changes_to_text
    from nbflow.views.render import format_duration, table

    with open_store(path) as store:
        found = diff_runs(store, run_a, run_b)
    if as_json:
        _print_json(found)
        return
    a, b = found["runs"]
    click.echo(f"{a} ({found['states'][0]}) -> {b} ({found['states'][1]})")
    params = found["params"]
    lines = [f"parameter added: {k}={v!r}" for k, v in params["added"].items()]
    lines += [f"parameter removed: {k}={v!r}" for k, v in params["removed"].items()]
    lines += [f"parameter changed: {k} {old!r} -> {new!r}" for k, (old, new) in params["changed"].items()]
    lines += changes_to_text(found["environment"])
    for name, t in found["tasks"].items():
        lines += [f"product changed: {name} {path}" for path in t["products"]["changed"]]
    for line in lines or ["same parameters, sources, kernels, Python and packages"]:
        click.echo(f"  {line}")
    rows = [
        [
            name,
            f"{t['state'][0] or '-'} -> {t['state'][1] or '-'}",
            f"{format_duration(t['duration_s'][0])} -> {format_duration(t['duration_s'][1])}",
        ]
        for name, t in found["tasks"].items()
    ]
    click.echo("\n" + table(rows, ["task", "state", "duration"]), nl=False)


def _progress(progress: bool | None) -> Any:
    from nbflow.views.progress import LiveProgress, PlainProgress

    live = progress if progress is not None else sys.stderr.isatty()
    return LiveProgress() if live else PlainProgress()


@cli.command()
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "dot"]), default="text", show_default=True)
@click.option(
    "--load-code",
    is_flag=True,
    help="Run the folder's nbflow_tasks.py to list its tasks (by default it is read, not run).",
)
@handle_errors
def dag(path: str, fmt: str, load_code: bool) -> None:
    """Validate the pipeline in PATH and print its graph.

    Looking runs nothing and writes nothing: the tasks of nbflow_tasks.py are read from its
    source (without running it) unless --load-code.
    """
    from nbflow.pipeline import Pipeline
    from nbflow.views.render import dag_to_dot, dag_to_json, dag_to_text

    pipeline = Pipeline.from_dir(path, load_code=load_code, save_cache=False)
    graph = pipeline.dag
    if fmt == "json":
        _print_json({**dag_to_json(graph), **_code_json(pipeline)})
    elif fmt == "dot":
        click.echo(dag_to_dot(graph), nl=False)
    else:
        click.echo(dag_to_text(graph), nl=False)
        if pipeline.code_note:
            click.echo(f"\n{pipeline.code_note} (nbflow dag --load-code runs it.)")


def _code_json(pipeline: Any) -> dict[str, Any]:
    """``{"code": ...}``, the tasks of the folder's nbflow_tasks.py, when it has one."""
    from nbflow.pipeline import TASKS_FILE

    if not (pipeline.root / TASKS_FILE).is_file():
        return {}
    return {
        "code": {
            "file": TASKS_FILE,
            "loaded": pipeline.code_loaded,
            "not_loaded": sorted(pipeline.not_loaded),
            "unread": list(pipeline.code_unread),
        }
    }


@cli.command()
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option("--run", "run_id", default=None, help="A run id (default: the latest run).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--why", "why", default=None, metavar="TASK", help="Say why TASK ran or was skipped in the run.")
@handle_errors
def status(path: str, run_id: str | None, as_json: bool, why: str | None) -> None:
    """Show the state of each task in a run."""
    from nbflow.history import load_run, open_store
    from nbflow.views.render import alerts_to_json, alerts_to_text, run_to_json, status_to_text

    store = open_store(path)
    run_record, tasks = load_run(store, run_id)
    if why is not None:
        from nbflow.errors import UnknownTaskError

        if why not in tasks:
            raise UnknownTaskError(why, list(tasks), what=f"task in run {run_record.run_id}")
        click.echo(f"{why}: {tasks[why].state} in run {run_record.run_id}: {tasks[why].reason or 'no reason recorded'}")
        return
    alerts = store.get_notifications(run_record.run_id)
    if as_json:
        _print_json({**run_to_json(run_record, tasks), "alerts": alerts_to_json(alerts)})
    else:
        click.echo(status_to_text(run_record, tasks) + alerts_to_text(alerts), nl=False)


@cli.command()
@click.argument("args", nargs=-1, required=True, metavar="[PATH] TASK")
@click.option("--run", "run_id", default=None, help="A run id (default: the latest run).")
@click.option("--attempt", type=int, default=None, help="An attempt number (default: the last one).")
@handle_errors
def logs(args: tuple[str, ...], run_id: str | None, attempt: int | None) -> None:
    """Print a task's captured output and, if it failed, its traceback."""
    from nbflow.history import open_store, task_log

    if len(args) > 2:
        raise click.UsageError("expected [PATH] TASK")
    path, task = (".", args[0]) if len(args) == 1 else args
    chosen, text = task_log(open_store(path), task, run_id, attempt)
    header = f"== {task}, run {chosen.run_id}, attempt {chosen.attempt}: {chosen.state}"
    if chosen.worker:
        header += f" (on Dask worker {chosen.worker})"
    click.echo(header)
    if chosen.output_notebook:
        click.echo(f"== executed notebook: {chosen.output_notebook}")
    click.echo(text, nl=not text.endswith("\n"))
    if chosen.error:
        click.echo(f"== error: {chosen.error}")
    if chosen.traceback:
        click.echo(chosen.traceback)


@cli.command()
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Newest runs to show.")
@handle_errors
def history(path: str, as_json: bool, limit: int) -> None:
    """List past runs: state, start, duration, parameters."""
    from nbflow.history import open_store
    from nbflow.views.render import history_to_json, history_to_text

    runs = open_store(path).list_runs(limit=limit)
    if as_json:
        _print_json(history_to_json(runs))
    else:
        click.echo(history_to_text(runs), nl=False)


def _iso_date(text: str) -> str:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text).isoformat(timespec="seconds")
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO date like 2026-11-25 or 2026-11-25T06:00") from None


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(file_okay=False, exists=True))
@handle_errors
def scheduler(paths: tuple[str, ...]) -> None:
    """Start runs of the pipelines in PATHS on their schedules, until SIGTERM or Ctrl-C.

    Each pipeline's schedule is its settings' `schedule` (a cron line or @daily/@hourly/...).
    """
    from nbflow.integrations.cron import CronScheduler, wait_forever_with_sigterm

    wait_forever_with_sigterm(CronScheduler([Path(p) for p in (paths or (".",))]))


@cli.command()
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option("--start", required=True, metavar="DATE", help="First date (ISO), included.")
@click.option("--end", required=True, metavar="DATE", help="Last date (ISO), included.")
@click.option("--workers", "-w", type=click.IntRange(min=1), default=None, help="Tasks run at once.")
@click.option("--progress/--no-progress", default=None, help="Live table (default on a terminal) or plain lines.")
@handle_errors
def backfill(path: str, start: str, end: str, workers: int | None, progress: bool | None) -> None:
    """Run the schedule's dates from START to END, in order, skipping dates that already succeeded."""
    from datetime import datetime

    from nbflow.errors import NbflowError
    from nbflow.pipeline import Pipeline
    from nbflow.integrations.cron import backfill_dates, logical_date_text

    _sigterm_as_interrupt()
    pipeline = Pipeline.from_dir(path, load_code=True)
    if not pipeline.project.schedule:
        raise NbflowError(f'{path} has no schedule: set schedule = "@daily" (or a cron line) in its nbflow.toml.')
    first, last = datetime.fromisoformat(_iso_date(start)), datetime.fromisoformat(_iso_date(end))
    with pipeline.open_store() as store:
        done = {r.logical_date for r in store.list_runs() if r.state == "success" and r.logical_date}
    exit_code = 0
    for when in backfill_dates(pipeline.project.schedule, first, last):
        date = logical_date_text(when)
        if date in done:
            click.echo(f"{date}: already succeeded, skipped", err=True)
            continue
        result = pipeline.run(workers=workers, force=True, listeners=[_progress(progress)], logical_date=date)
        click.echo(f"{date}: run {result.run_id} {result.state}", err=True)
        if result.problem is not None:
            _fail(str(result.problem), result.exit_code)
        if result.exit_code == 130:
            sys.exit(130)
        exit_code = max(exit_code, result.exit_code)
    sys.exit(exit_code)


#: optional modules that cost seconds to import and that nbflow's own process never needs
SKIPPED_IMPORTS = (
    # jsonschema (imported by nbformat) builds an Earley parser for IRIs at import time when
    # rfc3987-syntax is installed, as JupyterLab's dependencies install it: ~1 s per `nbflow run`
    "rfc3987_syntax",
)


@cli.group()
def export() -> None:
    """Write the pipeline for another orchestrator."""


@export.command("airflow")
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option(
    "-o",
    "--output",
    "dags_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="The folder to write the DAG file in (Airflow's dags folder).",
)
@click.option("--dag-id", default=None, help="The DAG's id (default: the pipeline folder's name).")
@click.option(
    "--notebooks-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Where Airflow's runs write executed notebooks and logs (default: the pipeline's _nbflow/airflow).",
)
@handle_errors
def export_airflow(path: str, dags_dir: str, dag_id: str | None, notebooks_dir: str | None) -> None:
    """Write the pipeline in PATH as an Airflow 3 DAG file: one task per nbflow task, the same
    dependencies, retries, timeouts, trigger rules, schedule and alerts."""
    from nbflow.integrations.airflow.export import export as write_dag
    from nbflow.pipeline import Pipeline

    pipeline = Pipeline.from_dir(path, load_code=True)  # the DAG file runs every task, code ones too
    out = write_dag(
        pipeline, dags_dir, dag_id=dag_id, output_dir=str(Path(notebooks_dir).resolve()) if notebooks_dir else None
    )
    click.echo(f"wrote {out} ({len(pipeline.specs)} tasks)")


def main() -> None:
    for name in SKIPPED_IMPORTS:  # the command's own process only: never done to a user's kernel
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "import" raises ImportError
    cli(prog_name="nbflow")


if __name__ == "__main__":
    main()
