"""The commands that run a pipeline: ``run``, ``resume``, ``rerun``, ``backfill``."""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from nbflow import states
from nbflow.cli.options import (
    RUN_JSON_HELP,
    executor_options,
    fail,
    handle_errors,
    json_option,
    path_argument,
    print_json,
    progress_option,
    run_id_option,
    workers_option,
)


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


def _make_executor(
    pipeline: Any,
    kind: str | None,
    scheduler: str | None,
    worker_root: str | None,
    workers: int | None,
    warm_kernels: int | None = None,
    kernel_start: str | None = None,
) -> Any:
    """The executor the options ask for, or None for the project's default (``executor``)."""
    from nbflow.errors import ExecutorOptionError

    if scheduler and kind == "local":
        raise ExecutorOptionError("--scheduler", conflicting="--executor local")
    effective = kind or ("dask" if scheduler else None) or pipeline.project.executor
    if worker_root and effective != "dask":
        raise ExecutorOptionError("--worker-root")
    if kind is None and scheduler is None and worker_root is None:
        return None
    return pipeline.make_executor(
        effective,
        workers=workers,
        warm_kernels=warm_kernels,
        scheduler=scheduler,
        worker_root=worker_root,
        kernel_start=kernel_start,
    )


def _progress(progress: bool | None) -> Any:
    from nbflow.views.progress import LiveProgress, PlainProgress

    live = progress if progress is not None else sys.stderr.isatty()
    return LiveProgress() if live else PlainProgress()


def _iso_date(text: str) -> str:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text).isoformat(timespec="seconds")
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO date like 2026-11-25 or 2026-11-25T06:00") from None


def _finish(result: Any) -> None:
    """Say the run's problem, if any, and exit with the run's code."""
    if result.problem is not None:
        click.echo(f"nbflow: error: {result.problem}", err=True)
    sys.exit(result.exit_code)


@click.command()
@path_argument
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="[TASK.]NAME=VALUE",
    help="Set a parameter (YAML/JSON literal, else a string); TASK.NAME for one task. Repeatable.",
)
@workers_option()
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
@json_option(RUN_JSON_HELP)
@progress_option
@click.option("--logical-date", default=None, metavar="DATE", help="The schedule date this run is for (ISO).")
@click.option(
    "--warm-kernels",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Kernels started ahead of time for the next tasks (default 2, or the project's warm_kernels).",
)
@click.option(
    "--kernel-start",
    type=click.Choice(["fork", "fresh"]),
    default=None,
    help="fork: notebook kernels are forked from a template that imported ipykernel once (default, "
    "or the project's kernel_start); fresh: each kernel is a new interpreter.",
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
    kernel_start: str | None,
    junit_path: str | None,
    executor_kind: str | None,
    scheduler: str | None,
    worker_root: str | None,
) -> None:
    """Run the pipeline in PATH (default: the current folder).

    Tasks that are up to date (same code, parameters, kernel and upstreams as their last
    success, products still there) are not run again; --force and --force-task override.
    """
    from nbflow.pipeline import Pipeline
    from nbflow.project.params import parse_assignments
    from nbflow.views.json import run_to_json

    _sigterm_as_interrupt()
    pipeline = Pipeline.from_dir(path, load_code=True)  # running: nbflow_tasks.py runs
    overrides = parse_assignments(params)
    if dry_run:
        decisions = pipeline.plan(overrides, list(only) or None, force, force_tasks)
        if as_json:
            print_json({name: {"run": d.run, "reason": d.reason} for name, d in decisions.items()})
        else:
            from nbflow.views.text import table

            rows = [[name, "run" if d.run else "skip", d.reason] for name, d in decisions.items()]
            click.echo(table(rows, ["task", "action", "why"]), nl=False)
        return
    executor = _make_executor(pipeline, executor_kind, scheduler, worker_root, workers, warm_kernels, kernel_start)
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
            kernel_start=kernel_start,
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
        print_json(run_to_json(result.run, result.tasks))
    _finish(result)


@click.command()
@path_argument
@run_id_option("The run to resume (default: the latest).")
@workers_option()
@json_option(RUN_JSON_HELP)
@progress_option
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
    from nbflow.views.json import run_to_json

    _sigterm_as_interrupt()
    pipeline = Pipeline.from_dir(path, load_code=True)
    executor = _make_executor(pipeline, executor_kind, scheduler, worker_root, workers)
    try:
        result = pipeline.resume(run_id=run_id, workers=workers, listeners=[_progress(progress)], executor=executor)
    finally:
        if executor is not None:
            executor.close()
    if as_json:
        print_json(run_to_json(result.run, result.tasks))
    _finish(result)


@click.command()
@click.argument("run_id")
@path_argument
@workers_option()
@json_option(RUN_JSON_HELP)
@progress_option
@handle_errors
def rerun(run_id: str, path: str, workers: int | None, as_json: bool, progress: bool | None) -> None:
    """Run RUN_ID's tasks again with its parameters, all of them, saying first what differs since it ran."""
    from nbflow.engine.environment import is_empty
    from nbflow.history import changes_since, load_run, open_store
    from nbflow.pipeline import Pipeline
    from nbflow.views.json import run_to_json
    from nbflow.views.text import changes_to_text

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
        print_json({**run_to_json(result.run, result.tasks), "rerun_of": earlier.run_id, "differences": changes})
    _finish(result)


@click.command()
@path_argument
@click.option("--start", required=True, metavar="DATE", help="First date (ISO), included.")
@click.option("--end", required=True, metavar="DATE", help="Last date (ISO), included.")
@workers_option("Tasks run at once.")
@progress_option
@handle_errors
def backfill(path: str, start: str, end: str, workers: int | None, progress: bool | None) -> None:
    """Run the schedule's dates from START to END, in order, skipping dates that already succeeded."""
    from datetime import datetime

    from nbflow.errors import NoScheduleError
    from nbflow.integrations.cron import backfill_dates
    from nbflow.pipeline import Pipeline
    from nbflow.project.params import logical_date_text

    _sigterm_as_interrupt()
    pipeline = Pipeline.from_dir(path, load_code=True)
    if not pipeline.project.schedule:
        raise NoScheduleError(path)
    first, last = datetime.fromisoformat(_iso_date(start)), datetime.fromisoformat(_iso_date(end))
    with pipeline.open_store() as store:
        done = {r.logical_date for r in store.list_runs() if r.state == states.SUCCESS and r.logical_date}
    exit_code = 0
    for when in backfill_dates(pipeline.project.schedule, first, last):
        date = logical_date_text(when)
        if date in done:
            click.echo(f"{date}: already succeeded, skipped", err=True)
            continue
        result = pipeline.run(workers=workers, force=True, listeners=[_progress(progress)], logical_date=date)
        click.echo(f"{date}: run {result.run_id} {result.state}", err=True)
        if result.problem is not None:
            fail(str(result.problem), result.exit_code)
        if result.exit_code == 130:
            sys.exit(130)
        exit_code = max(exit_code, result.exit_code)
    sys.exit(exit_code)


COMMANDS = (run, resume, rerun, backfill)
