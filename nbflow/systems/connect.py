"""``nbflow.connect("warehouse")``: a connection's ready client, in a notebook or a Python task.

The name is looked up in the project settings of the pipeline the code runs in (a Python
task's run says which; elsewhere they are found by walking up from the working directory,
which for a notebook task is its folder), then in
Airflow's ``AIRFLOW_CONN_<ID>`` variables. The URI is read from the environment, where the
run (or the user's shell, in JupyterLab) put it; nothing is written down.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from nbflow.project.connections import Connection, resolve_connection
from nbflow.project.settings import load_project
from nbflow.systems.clients import open_client

_SETTINGS_FILES = ("nbflow.toml", "pyproject.toml")
#: the connections of the task running in this thread, for tasks that run in the runner's process
_running = threading.local()


@contextlib.contextmanager
def task_connections(declared: Mapping[str, str]) -> Iterator[None]:
    """While a task runs in this thread (a Python task), ``connect()`` uses its project's connections."""
    previous = getattr(_running, "declared", None)
    _running.declared = declared
    try:
        yield
    finally:
        _running.declared = previous


def project_connections(start: Path) -> dict[str, str]:
    """The ``[connections]`` of the nearest project settings at or above ``start``."""
    for folder in (start, *start.parents):
        if any((folder / name).is_file() for name in _SETTINGS_FILES):
            connections = dict(load_project(folder).connections)
            if connections or (folder / "nbflow.toml").is_file():
                return connections
    return {}


def connection(name: str, folder: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Connection:
    """Connection ``name`` as the code in ``folder`` (default: the working directory) sees it.

    Raises
    ------
    UnknownConnectionError, ConnectionVariableError
        It is not defined, or its environment variable is not set or not a URI.
    """
    declared = getattr(_running, "declared", None) if folder is None else None
    if declared is None:
        start = Path(folder).resolve() if folder is not None else Path.cwd()
        declared = project_connections(start)
    return resolve_connection(name, declared, os.environ if environ is None else environ)


def connect(name: str, engine: str | None = None, *, folder: str | Path | None = None) -> Any:
    """A ready client for connection ``name``: a DB-API connection (PostgreSQL: psycopg,
    MySQL: PyMySQL), a pymongo ``MongoClient``, or an fsspec filesystem for S3.

    ``engine`` asks for another client: ``"sqlalchemy"`` (an Engine, for pandas),
    ``"adbc"`` (PostgreSQL, Arrow in and out), ``"duckdb"`` (S3: a DuckDB connection that
    reads and writes ``s3://`` paths). ``folder`` is where to look for the project settings.
    """
    return open_client(connection(name, folder), engine)
