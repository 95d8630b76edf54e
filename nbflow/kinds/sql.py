"""The SQL kind: a ``.sql`` file, run with DuckDB in this process.

Upstream products are views: an upstream ``features`` whose product is
``{"train": ..., "test": ...}`` gives the views ``features_train`` and ``features_test``;
a single-path product gives ``features`` (names made SQL-safe: ``etl/clean`` ->
``etl_clean``). Parameters are bound as DuckDB prepared-statement parameters (``$name``),
never formatted into the SQL. The result of the last statement is written to the task's
product (``.parquet`` or ``.csv``). A cancel or a timeout interrupts the query.
"""

from __future__ import annotations

import re
import traceback as tb
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbflow import states
from nbflow.execution.base import AttemptControl, AttemptOutcome, TaskRequest, stopped_outcome, utcnow
from nbflow.execution.logs import CappedLog
from nbflow.kinds.base import FileKind
from nbflow.project.specs import TaskSpec
from nbflow.project.sql import read_sql_spec

if TYPE_CHECKING:
    from nbflow.execution.kernels import KernelLauncher


class SqlKind(FileKind):
    """A ``.sql`` file: declarations in its header comment (:mod:`nbflow.project.sql`), run by DuckDB."""

    name = "sql"
    noun = "SQL task"
    suffixes = (".sql",)
    injects_defaults = True  # no code of its own holds the defaults: they are bound with the overrides

    def read(self, path: Path, name: str, relpath: str) -> TaskSpec:
        return read_sql_spec(path, name, relpath)

    def run(self, request: TaskRequest, control: AttemptControl, launcher: KernelLauncher | None) -> AttemptOutcome:
        return run_sql(request, control)


#: the sql kind (the registry's, :data:`nbflow.kinds.KINDS`)
SQL = SqlKind()


def view_name(*parts: str) -> str:
    return re.sub(r"\W", "_", "_".join(parts))


def _quote(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def _views(upstream: dict[str, Any]) -> dict[str, str]:
    views: dict[str, str] = {}
    for task, product in upstream.items():
        if isinstance(product, str):
            views[view_name(task)] = product
        elif isinstance(product, dict):
            views.update({view_name(task, key): path for key, path in product.items()})
    return views


def run_sql(request: TaskRequest, control: AttemptControl) -> AttemptOutcome:
    """Run one attempt of a SQL task; never raises for anything the SQL does."""
    import duckdb

    started = utcnow()
    request.log_path.parent.mkdir(parents=True, exist_ok=True)
    log = CappedLog(request.log_path)
    state, error, traceback, ename = states.SUCCESS, None, None, None
    con = duckdb.connect()
    control.attach(con.interrupt)
    try:
        if control.stopped:
            raise duckdb.InterruptException("stopped before it started")
        sql = request.source.read_text(encoding="utf-8")
        params = {k: v for k, v in request.parameters.items() if k not in ("upstream", "product")}
        for name, path in _views(request.parameters.get("upstream") or {}).items():
            if Path(path).suffix in (".parquet", ".csv", ".json"):
                con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM {_quote(path)}')
                log.write(f"-- view {name}: {path}\n")
        statements = duckdb.extract_statements(sql)
        relation = None
        for i, statement in enumerate(statements):
            bound = {k: params[k] for k in statement.named_parameters if k in params}
            missing = set(statement.named_parameters) - set(bound)
            if missing:
                raise ValueError(
                    f"statement {i + 1} uses ${', $'.join(sorted(missing))}, which the header does not declare"
                )
            if i == len(statements) - 1 and statement.type == duckdb.StatementType.SELECT:
                # run the result once: the count, the preview and the product all read this table
                con.execute(f"CREATE TEMP TABLE nbflow_result AS {statement.query.rstrip().rstrip(';')}", bound or None)
                relation = con.table("nbflow_result")
            else:
                con.execute(statement.query, bound or None)
        product = request.parameters.get("product")
        if relation is not None:
            rows = relation.aggregate("count(*)").fetchall()[0][0]
            log.write(f"-- {rows} rows\n{relation.limit(10)}\n")
            if isinstance(product, str):
                Path(product).parent.mkdir(parents=True, exist_ok=True)
                (relation.write_parquet if product.endswith(".parquet") else relation.write_csv)(product)
                log.write(f"-- wrote {product}\n")
        elif isinstance(product, str):
            raise ValueError("the last statement is not a SELECT, so there is no result to write to the product")
    except Exception as e:  # anything the SQL does ends this attempt, never the run
        state, ename = states.FAILED, type(e).__name__
        error = f"{ename}: {str(e).splitlines()[0] if str(e) else ''}"
        traceback = str(e) if isinstance(e, duckdb.Error) else "".join(tb.format_exception(e))
    finally:
        control.attach(None)
        con.close()
        log_tail = log.read_tail()
        log.close()
    state, error, ename = stopped_outcome(control, request, state, error, ename, "its query was interrupted")
    return AttemptOutcome(state, started, utcnow(), error=error, traceback=traceback, log=log_tail, ename=ename)
