"""``nbflow export airflow``: the pipeline as an Airflow 3 DAG file (``airflow.sdk``).

One Airflow task per nbflow task, the same dependencies; nbflow's settings mapped to
Airflow's own: ``retries``, ``retry_delay``, ``retry_exponential_backoff`` (the same
multiplier), ``max_retry_delay``, ``execution_timeout``, ``trigger_rule`` (the same
names), the project's ``schedule`` and ``max_active_runs``, alerts as notifiers, retry
rules as a ``retry_policy``. Each task calls nbflow's single-task runner
(:func:`nbflow.integrations.airflow.tasks.run_task`), which gives it Airflow's connection of
the same id as each nbflow connection where Airflow has one; the file's docstring lists the
pipeline's connections (nothing is added for a pipeline without any). Building the source is
pure; only :func:`export` writes.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import keyword
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbflow import __version__
from nbflow.errors import AirflowIdClashError, InvalidDagIdError
from nbflow.errors import ExportError as ExportError  # raised here; its home is nbflow.errors
from nbflow.integrations.airflow.connections import connection_variables
from nbflow.pipeline import Pipeline
from nbflow.project.settings import TaskSettings

#: Airflow's rule for dag and task ids
_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


def airflow_id(name: str) -> str:
    """A task name as an Airflow id: folders joined by ``.``, other characters ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name.replace("/", "."))


def task_ids(names: list[str]) -> dict[str, str]:
    """Each task's Airflow task id.

    Raises
    ------
    ExportError
        Two names give the same id.
    """
    ids: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name in names:
        tid = airflow_id(name)
        if tid in seen:
            raise AirflowIdClashError(seen[tid], name, tid)
        ids[name], seen[tid] = tid, name
    return ids


#: names the DAG function uses, which no task variable may shadow
_RESERVED = (
    "annotations",
    "timedelta",
    "pendulum",
    "dag",
    "task",
    "run_task",
    "retry_policy",
    "NbflowAlert",
    "nbflow_task",
    "pipeline_dag",
    "PIPELINE",
    "OUTPUT_DIR",
)


def _comment(text: str) -> str:
    """Text safe inside a ``#`` comment (one line)."""
    return re.sub(r"[\r\n\x00-\x1f]+", " ", text)


def _identifiers(ids: Mapping[str, str]) -> dict[str, str]:
    """A Python variable name for each task in the DAG function."""
    out: dict[str, str] = {}
    used: set[str] = set(_RESERVED)
    for name, tid in ids.items():
        var = re.sub(r"\W", "_", tid)
        if var[0].isdigit() or keyword.iskeyword(var):
            var = f"t_{var}"
        base, n = var, 2
        while var in used:
            var, n = f"{base}_{n}", n + 1
        used.add(var)
        out[name] = var
    return out


def _py(value: Any) -> str:
    """A literal as Python source, strings in double quotes (as the formatters write them)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_py(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_py(k)}: {_py(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _delta(seconds: float) -> str:
    seconds = float(seconds)
    return f"timedelta(seconds={int(seconds) if seconds.is_integer() else seconds})"


def _retry_args(s: TaskSettings) -> dict[str, str]:
    """nbflow's retry and timeout settings as Airflow operator arguments (source text)."""
    args = {"retries": str(s.retries), "retry_delay": _delta(s.retry_delay)}
    if s.retry_backoff != 1:
        # Airflow 3.3: the multiplier itself (delay x multiplier^(try-1)), as nbflow's
        args["retry_exponential_backoff"] = repr(float(s.retry_backoff))
    if s.max_retry_delay is not None:
        args["max_retry_delay"] = _delta(s.max_retry_delay)
    if s.timeout is not None:
        args["execution_timeout"] = _delta(s.timeout)
    return args


def _connections_doc(pipeline: Pipeline) -> list[str]:
    """Docstring lines naming the connections the pipeline uses (none: no lines)."""
    variables = connection_variables(pipeline.project.connections, pipeline.specs.values())
    if not variables:
        return []
    return [
        "",
        "Connections: a task runs with Airflow's connection of the same id where Airflow has",
        "one (its URI goes, for that task only, into the variable nbflow reads the connection",
        "from); else with that variable as the worker's environment sets it:",
        "",
        # names and variables as JSON strings: nothing in them can end this docstring
        *(f"- {json.dumps(name)}: variable {json.dumps(var)}" for name, var in variables.items()),
    ]


def dag_params(pipeline: Pipeline) -> dict[str, Any]:
    """Parameters the DAG declares: those with one literal default across every notebook
    declaring them (others can still be passed in the trigger's conf, as ``task.name``)."""
    from nbflow.project.params import LOGICAL_DATE

    values: dict[str, set[str]] = {}
    for spec in pipeline.specs.values():
        for name, source in spec.params.defaults.items():
            values.setdefault(name, set()).add(source)
    params: dict[str, Any] = {}
    for name, sources in sorted(values.items()):
        if len(sources) != 1 or name == LOGICAL_DATE or name in pipeline.project.secrets:
            continue
        try:
            value = ast.literal_eval(next(iter(sources)))
        except (ValueError, SyntaxError):
            continue
        try:  # Airflow keeps params as JSON: nothing else (no inf, no set) may go in
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        params[name] = value
    return params


def dag_source(
    pipeline: Pipeline,
    *,
    dag_id: str | None = None,
    output_dir: str | None = None,
    today: dt.date | None = None,
) -> str:
    """The text of the DAG file for ``pipeline``.

    Raises
    ------
    ExportError
        A bad ``dag_id``, or two tasks whose names give the same Airflow id.
    """
    dag_id = dag_id or airflow_id(pipeline.root.name) or "nbflow"
    if not _ID.match(dag_id):
        raise InvalidDagIdError(dag_id)
    order = list(pipeline.dag.order)
    ids = task_ids(order)
    var = _identifiers(ids)
    project = pipeline.project
    defaults = project.defaults
    alerting = project.email is not None or project.webhook is not None
    today = today or dt.date.today()

    default_args = _retry_args(defaults)
    lines = [
        '"""Airflow DAG for an nbflow pipeline (PIPELINE below).',
        "",
        f"Written by `nbflow export airflow` (nbflow {__version__}). Export it again after",
        "changing the pipeline's tasks, upstreams or settings. Each task runs one task of",
        "the pipeline with nbflow's single-task runner, as `nbflow run` would: a notebook",
        "through papermill in a fresh kernel, its folder as working directory, its upstreams'",
        "products and the run's params injected, its declared products checked. Its executed",
        "notebook and log go to OUTPUT_DIR/<dag_id>/<run_id>/<task>/attempt-<try>.*; the",
        "notebook's path is the task's return value (XCom). Trigger with params (the trigger",
        'form, or `--conf \'{"name": value}\'`; "task.name" for one task).',
        *_connections_doc(pipeline),
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from datetime import timedelta",
        "",
        "import pendulum",
        "from airflow.sdk import dag, task",
        "",
    ]
    needs_policy = any(s.retry_rules for s in pipeline.settings.values())
    imports = ["run_task"]
    if alerting:
        imports.insert(0, "NbflowAlert")
    if needs_policy:
        imports.insert(-1, "retry_policy")
    lines += [
        f"from nbflow.integrations.airflow.tasks import {', '.join(imports)}",
        "",
        f"PIPELINE = {_py(str(pipeline.root))}",
        f"OUTPUT_DIR = {_py(output_dir)}  # None: the pipeline's _nbflow/airflow",
        "",
        "",
        "@task",
        "def nbflow_task(name: str, **context) -> str:",
        '    """Run task `name` of the pipeline; returns its executed notebook\'s path."""',
        "    return run_task(PIPELINE, name, context, OUTPUT_DIR)",
        "",
        "",
        "@dag(",
        f"    dag_id={_py(dag_id)},",
        f"    schedule={_py(project.schedule)},",
        f'    start_date=pendulum.datetime({today.year}, {today.month}, {today.day}, tz="UTC"),',
        "    catchup=False,",
        f"    max_active_runs={project.max_active_runs},",
        '    tags=["nbflow"],',
        "    params={",
        *(f"        {_py(k)}: {_py(v)}," for k, v in dag_params(pipeline).items()),
        "    },",
        "    default_args={",
        *(f'        "{k}": {v},' for k, v in default_args.items()),
        "    },",
    ]
    if alerting and "run_end" in defaults.alert_on:
        lines += [
            '    on_success_callback=[NbflowAlert(PIPELINE, "run_end")],',
            '    on_failure_callback=[NbflowAlert(PIPELINE, "run_end")],',
        ]
    lines += ["    doc_md=__doc__,", ")", "def pipeline_dag():"]

    callbacks = {"failure": "on_failure_callback", "retry": "on_retry_callback", "success": "on_success_callback"}
    for name in order:
        s = pipeline.settings[name]
        args = {"task_id": _py(ids[name])}
        args.update({k: v for k, v in _retry_args(s).items() if default_args.get(k) != v})
        for k in ("max_retry_delay", "execution_timeout", "retry_exponential_backoff"):
            if k in default_args and k not in _retry_args(s):  # the task turns a project default off
                args[k] = {"retry_exponential_backoff": "0"}.get(k, "None")
        if s.trigger_rule != "all_success":
            args["trigger_rule"] = _py(s.trigger_rule)
        if alerting:
            for event in s.alert_on:
                if event in callbacks:
                    args[callbacks[event]] = f"[NbflowAlert(PIPELINE, {_py(event)}, {_py(name)})]"
        if s.retry_rules:  # Airflow 3.3's retry_policy (nothing on an older Airflow)
            args["**retry_policy"] = f"(PIPELINE, {_py(name)})"
        notes = []
        if s.retry_jitter:
            notes.append("retry_jitter has no Airflow setting")
        if not s.retry_on_timeout:
            notes.append("retry_on_timeout = false has no Airflow setting: timeouts are retried")
        for note in notes:
            lines.append(f"    # {_comment(name)}: {note}")
        call = ", ".join(f"{k}{v}" if k.startswith("**") else f"{k}={v}" for k, v in args.items())
        lines.append(f"    {var[name]} = nbflow_task.override({call})({_py(name)})")
    edges = [(up, name) for name in order for up in pipeline.dag.upstreams[name]]
    if edges:
        lines.append("")
    for name in order:
        ups = list(pipeline.dag.upstreams[name])
        if len(ups) == 1:
            lines.append(f"    {var[ups[0]]} >> {var[name]}")
        elif ups:
            lines.append(f"    [{', '.join(var[u] for u in ups)}] >> {var[name]}")
    if not order:
        lines.append("    pass")
    lines += ["", "", "pipeline_dag()", ""]
    return "\n".join(lines)


def export(
    pipeline: Pipeline,
    dags_dir: str | os.PathLike[str],
    *,
    dag_id: str | None = None,
    output_dir: str | None = None,
) -> Path:
    """Write ``dags_dir/<dag_id>.py`` (atomically) and return its path."""
    source = dag_source(pipeline, dag_id=dag_id, output_dir=output_dir)
    dag_id = dag_id or airflow_id(pipeline.root.name) or "nbflow"
    folder = Path(dags_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dag_id}.py"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(source, encoding="utf-8")
    os.replace(tmp, path)
    return path
