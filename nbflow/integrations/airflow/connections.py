"""Which Airflow connections an exported task runs with, and where their URIs go. Pure.

A task of an exported DAG runs with Airflow's connection of the same id as each nbflow
connection, when Airflow has one: its URI is put (in the task's process only, never in a
file) in the environment variable nbflow reads that connection from: the one the project's
``[connections]`` names, else ``AIRFLOW_CONN_<ID>``. A connection Airflow does not have is
left to the environment, as in ``nbflow run``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from nbflow.project.connections import airflow_variable
from nbflow.project.specs import TaskSpec
from nbflow.validation import used_connections


def connection_variables(declared: Mapping[str, str], specs: Iterable[TaskSpec]) -> dict[str, str]:
    """Each connection the project declares or ``specs`` name -> the variable nbflow reads it from."""
    names = [*declared, *(name for spec in specs for name in used_connections(spec))]
    return {name: declared.get(name) or airflow_variable(name) for name in dict.fromkeys(names)}


def environment_updates(
    variables: Mapping[str, str], environ: Mapping[str, str], lookup: Callable[[str], str | None]
) -> dict[str, tuple[str, str]]:
    """``{variable: (connection, uri)}`` for each connection ``lookup`` finds (Airflow's URI, or
    None). An ``AIRFLOW_CONN_`` variable already set is Airflow's own: it is left as it is."""
    updates: dict[str, tuple[str, str]] = {}
    for name, variable in variables.items():
        if variable == airflow_variable(name) and variable in environ:
            continue
        uri = lookup(name)
        if uri:
            updates[variable] = (name, uri)
    return updates
