"""The commands that look and run nothing: ``dag``, ``status``, ``logs``, ``history``,
``diff``, ``report``. They stay quick: no kernel machinery is imported."""

from __future__ import annotations

from typing import Any

import click

from nbflow.cli.options import handle_errors, json_option, path_argument, print_json, run_id_option


@click.command()
@path_argument
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
    from nbflow.views.dot import dag_to_dot
    from nbflow.views.json import dag_to_json
    from nbflow.views.text import dag_to_text

    pipeline = Pipeline.from_dir(path, load_code=load_code, save_cache=False)
    graph = pipeline.dag
    if fmt == "json":
        print_json({**dag_to_json(graph), **_code_json(pipeline)})
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


@click.command()
@path_argument
@run_id_option()
@json_option("Print JSON.")
@click.option("--why", "why", default=None, metavar="TASK", help="Say why TASK ran or was skipped in the run.")
@handle_errors
def status(path: str, run_id: str | None, as_json: bool, why: str | None) -> None:
    """Show the state of each task in a run."""
    from nbflow.history import load_run, open_store
    from nbflow.views.json import alerts_to_json, run_to_json
    from nbflow.views.text import alerts_to_text, status_to_text

    with open_store(path) as store:
        run_record, tasks = load_run(store, run_id)
        alerts = store.get_notifications(run_record.run_id) if why is None else []
    if why is not None:
        from nbflow.errors import UnknownTaskError

        if why not in tasks:
            raise UnknownTaskError(why, list(tasks), what=f"task in run {run_record.run_id}")
        click.echo(f"{why}: {tasks[why].state} in run {run_record.run_id}: {tasks[why].reason or 'no reason recorded'}")
        return
    if as_json:
        print_json({**run_to_json(run_record, tasks), "alerts": alerts_to_json(alerts)})
    else:
        click.echo(status_to_text(run_record, tasks) + alerts_to_text(alerts), nl=False)


@click.command()
@click.argument("args", nargs=-1, required=True, metavar="[PATH] TASK")
@run_id_option()
@click.option("--attempt", type=int, default=None, help="An attempt number (default: the last one).")
@handle_errors
def logs(args: tuple[str, ...], run_id: str | None, attempt: int | None) -> None:
    """Print a task's captured output and, if it failed, its traceback."""
    from nbflow.history import open_store, task_log

    if len(args) > 2:
        raise click.UsageError("expected [PATH] TASK")
    path, task = (".", args[0]) if len(args) == 1 else args
    with open_store(path) as store:
        chosen, text = task_log(store, task, run_id, attempt)
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


@click.command()
@path_argument
@json_option("Print JSON.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Newest runs to show.")
@handle_errors
def history(path: str, as_json: bool, limit: int) -> None:
    """List past runs: state, start, duration, parameters."""
    from nbflow.history import open_store
    from nbflow.views.json import history_to_json
    from nbflow.views.text import history_to_text

    with open_store(path) as store:
        runs = store.list_runs(limit=limit)
    if as_json:
        print_json(history_to_json(runs))
    else:
        click.echo(history_to_text(runs), nl=False)


@click.command()
@click.argument("run_a")
@click.argument("run_b")
@path_argument
@json_option("Print the differences as JSON.")
@handle_errors
def diff(run_a: str, run_b: str, path: str, as_json: bool) -> None:
    """What changed from RUN_A to RUN_B: parameters, sources, environment, task states and durations."""
    from nbflow.history import diff_runs, open_store
    from nbflow.views.text import diff_to_text

    with open_store(path) as store:
        found = diff_runs(store, run_a, run_b)
    if as_json:
        print_json(found)
        return
    click.echo(diff_to_text(found), nl=False)


@click.command()
@path_argument
@run_id_option()
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
    """Write a run of the pipeline in PATH as one self-contained HTML page (graph, timeline, tasks,
    errors, outputs and executed notebooks, collapsed)."""
    from nbflow.history import write_report

    run = write_report(path, run_id, out)
    click.echo(f"report of run {run.run_id} ({run.state}): {out}")


COMMANDS = (dag, status, logs, history, diff, report)
