"""What a DAG file written by ``nbflow export airflow`` calls inside Airflow 3.

* :func:`run_task` runs one task of the pipeline with nbflow's single-task runner
  (papermill in a fresh kernel for a notebook; DuckDB, a function or a request for the
  others), exactly as ``nbflow run`` would run it, and fails the Airflow task if it fails.
  Each connection the task may use (the project's, and those it names) is Airflow's
  connection of the same id when Airflow has one (:func:`airflow_connections`);
* :class:`NbflowAlert` is an Airflow notifier sending nbflow's alerts (the pipeline's
  ``[email]`` and ``[webhook]`` channels);
* :class:`NbflowRetryPolicy` applies a task's ``retry_rules`` (Airflow 3.3's ``retry_policy``).

Airflow imports this module in its own processes; nothing here touches nbflow's state
store: the run's record is Airflow's.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier
from airflow.sdk.exceptions import AirflowFailException

from nbflow import states
from nbflow.errors import AirflowTaskFailedError
from nbflow.integrations.airflow.connections import connection_variables, environment_updates

if TYPE_CHECKING:
    from nbflow.pipeline import Pipeline

try:  # Airflow 3.3 and newer
    from airflow.sdk.definitions.retry_policy import RetryDecision, RetryPolicy
except ImportError:  # pragma: no cover - older Airflow 3: rules that fail at once still apply
    RetryPolicy = object  # type: ignore[assignment,misc]
    RetryDecision = None  # type: ignore[assignment,misc]

#: the lines of a failed task's output copied into Airflow's task log
LOG_LINES = 200


#: a task of the pipeline failed; carries nbflow's error name for the retry rules (the name
#: DAG files and Airflow's logs have always used)
NbflowTaskFailed = AirflowTaskFailedError


def _safe(run_id: str) -> str:
    """An Airflow run id (``manual__2026-11-25T10:00:00+00:00``) as a folder name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id)


def _logical_date(context: Mapping[str, Any]) -> str | None:
    """The run's logical date as ``nbflow run --logical-date`` gives it (UTC, to the second)."""
    from datetime import timezone

    from nbflow.project.params import logical_date_text

    when = context.get("logical_date") or context.get("data_interval_start")
    if when is None:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    return logical_date_text(when)


class NbflowTaskFailedForGood(AirflowFailException):
    """A task of the pipeline failed, and a retry rule says not to retry it."""

    def __init__(self, failure: NbflowTaskFailed) -> None:
        self.task, self.error, self.ename, self.notebook = failure.task, failure.error, failure.ename, failure.notebook
        super().__init__(f"{failure}\n(an nbflow retry rule says this error is not retried)")


def airflow_uri(conn_id: str) -> str | None:
    """Airflow's connection ``conn_id`` as a URI (``Connection.get_uri``); None if Airflow has none."""
    try:  # Airflow 3
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:  # pragma: no cover - Airflow 2
        from airflow.exceptions import AirflowNotFoundException  # type: ignore[no-redef]
        from airflow.hooks.base import BaseHook  # type: ignore[no-redef]
    try:
        return str(BaseHook.get_connection(conn_id).get_uri())
    except AirflowNotFoundException:
        return None
    except Exception as e:  # noqa: BLE001 - Airflow's secrets backends raise what they raise
        print(f"nbflow: could not read Airflow's connection {conn_id!r} ({type(e).__name__}); the environment is used")
        return None


@contextlib.contextmanager
def airflow_connections(project: Pipeline, name: str) -> Iterator[dict[str, str]]:
    """While task ``name`` runs, each connection it may use that Airflow has is Airflow's: the
    connection's URI is in the variable nbflow reads it from, in this process's environment
    (which its kernel or process inherits), never in a file. Yields ``{connection: variable}``
    of those; the environment is put back afterwards."""
    specs = [project.specs[name]] if name in project.specs else []
    variables = connection_variables(project.project.connections, specs)
    updates = environment_updates(variables, os.environ, airflow_uri)
    saved = {variable: os.environ.get(variable) for variable in updates}
    for variable, (conn, uri) in updates.items():
        os.environ[variable] = uri
        print(f"nbflow: connection {conn!r} is Airflow's connection {conn!r} (in ${variable} for this task)")
    try:
        yield {conn: variable for variable, (conn, _) in updates.items()}
    finally:
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value


def run_task(pipeline: str, name: str, context: Mapping[str, Any], output_dir: str | None = None) -> str:
    """Run task ``name`` of the pipeline in folder ``pipeline`` for this Airflow task instance.

    The task runs with Airflow's connections where Airflow has them (:func:`airflow_connections`).
    The DAG run's ``params`` (the DAG's declared ones and the trigger's ``conf``) are the
    overrides (``name`` or ``task.name``, as ``-p``). The executed notebook and log go to
    ``output_dir/<dag_id>/<run_id>/<task>/attempt-<try_number>.*`` (default ``output_dir``:
    the pipeline's ``_nbflow/airflow``); the executed notebook's path is returned (XCom).

    Raises
    ------
    NbflowTaskFailed
        The task failed; Airflow's retries apply.
    AirflowFailException
        The task failed and a ``retry_rules`` entry says not to retry it.
    """
    from nbflow.engine.retry import matching_rule
    from nbflow.integrations.single import run_one
    from nbflow.paths import StateDir
    from nbflow.pipeline import Pipeline

    ti = context["ti"]
    dag_id = context["dag"].dag_id
    project = Pipeline.from_dir(pipeline, load_code=True)  # running a task: nbflow_tasks.py runs
    params = {k: v for k, v in dict(context.get("params") or {}).items() if v is not None}
    base = Path(output_dir) if output_dir else StateDir(project.root).airflow
    with airflow_connections(project, name):
        request, outcome = run_one(
            project,
            name,
            run_id=context["run_id"],
            run_dir=base / dag_id / _safe(context["run_id"]),
            attempt=ti.try_number,
            params=params,
            logical_date=_logical_date(context),
        )
    output = outcome.log.rstrip()
    if output:  # the task's own output, in Airflow's task log
        lines = output.splitlines()[-LOG_LINES:]
        print(f"--- output of {name} (full log: {request.log_path}) ---", *lines, sep="\n")
    notebook = str(request.output_notebook)
    if outcome.state == states.SUCCESS:
        print(f"{name} succeeded; executed notebook: {notebook}")
        return notebook
    error = outcome.error or f"the task ended {outcome.state}"
    failure = NbflowTaskFailed(name, error, outcome.ename, outcome.traceback, notebook)
    rule = matching_rule(project.settings[name], outcome.ename, error)
    if rule is not None and rule.action == "fail":
        raise NbflowTaskFailedForGood(failure)
    raise failure


def retry_policy(pipeline: str, task: str) -> dict[str, Any]:
    """``{"retry_policy": ...}`` for a task's ``.override(**...)`` on Airflow 3.3 and newer;
    nothing on an older Airflow 3 (which has no retry policies: rules that say ``fail``
    still fail at once, through :func:`run_task`)."""
    return {"retry_policy": NbflowRetryPolicy(pipeline, task)} if RetryDecision is not None else {}


class NbflowRetryPolicy(RetryPolicy):  # type: ignore[misc,valid-type]
    """A task's nbflow ``retry_rules`` as an Airflow retry policy (first match decides)."""

    def __init__(self, pipeline: str, task: str) -> None:
        self.pipeline, self.task = pipeline, task

    def evaluate(self, exception: BaseException, try_number: int, max_tries: int, context: Any = None) -> Any:
        from nbflow.engine.retry import matching_rule
        from nbflow.pipeline import Pipeline

        if not isinstance(exception, NbflowTaskFailed):
            return RetryDecision()
        settings = Pipeline.from_dir(self.pipeline, load_code=True).settings[self.task]
        rule = matching_rule(settings, exception.ename, exception.error)
        if rule is not None and rule.action == "fail":
            return RetryDecision.fail(f"an nbflow retry rule says {exception.ename} fails at once")
        if rule is not None and rule.action == "retry":
            delay = timedelta(seconds=rule.delay) if rule.delay is not None else None
            return RetryDecision.retry(delay, f"an nbflow retry rule matched {exception.ename}")
        return RetryDecision()

    def serialize(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "task": self.task}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> NbflowRetryPolicy:
        return cls(data["pipeline"], data["task"])


class NbflowAlert(BaseNotifier):
    """Sends nbflow's alert for an Airflow task (or DAG run) event to the pipeline's channels.

    ``event`` is nbflow's: ``failure``, ``retry``, ``success`` (a task) or ``run_end`` (the DAG
    run); ``task`` the nbflow task's name (``etl/clean``, where Airflow says ``etl.clean``).
    """

    template_fields = ()

    def __init__(self, pipeline: str, event: str, task: str | None = None) -> None:
        super().__init__()
        self.pipeline, self.event, self.task = pipeline, event, task

    def notify(self, context: Any) -> None:
        from nbflow.engine.alerts import Alert, channels_for
        from nbflow.project.settings import load_project

        ti = context.get("ti")
        task = None if self.event == "run_end" else self.task or (ti.task_id if ti is not None else None)
        dag_run = context.get("dag_run")
        state = {"failure": states.FAILED, "retry": states.UP_FOR_RETRY, "success": states.SUCCESS}.get(self.event)
        if state is None:
            state = str(getattr(dag_run, "state", "") or "ended")
        exception = context.get("exception")
        error = getattr(exception, "error", None) or (str(exception) if exception else None)
        alert = Alert(
            event=self.event,
            pipeline=self.pipeline,
            run_id=str(context.get("run_id")),
            task=task,
            attempt=ti.try_number if task and ti is not None else None,
            state=state,
            error=error,
            output_notebook=getattr(exception, "notebook", None),
        )
        for channel in channels_for(load_project(Path(self.pipeline))):
            channel.send(alert)
