"""The SQL kind: a ``.sql`` file, run by DuckDB in this process or on a connection's database.

**In DuckDB** (no ``connection`` in the header): upstream products are views: an upstream
``features`` whose product is ``{"train": ..., "test": ...}`` gives the views
``features_train`` and ``features_test``; a single-path product gives ``features`` (names
made SQL-safe: ``etl/clean`` -> ``etl_clean``). Parameters are bound as DuckDB
prepared-statement parameters (``$name``). ``s3://`` products are read and written through
the bucket's S3 connection.

**On a database** (``-- connection = "warehouse"``, PostgreSQL or MySQL/MariaDB): the
statements run there, in its dialect, in one session and one transaction. Parameters are
the drivers' ``%(name)s`` placeholders, bound by the driver. Upstream files the SQL
mentions by their view name are loaded first as temporary tables of that name.

Either way, parameters are never formatted into the SQL; a statement using a name the
header does not declare fails naming it. The result of a last ``SELECT`` goes to the
task's product: a ``.parquet``/``.csv`` file (local or ``s3://``), streamed, or a table
(``table://warehouse/schema.name``), replaced atomically; with a table product and no
final ``SELECT``, the SQL writes the table itself. A cancel or a timeout interrupts the
running statement.
"""

from __future__ import annotations

import contextlib
import os
import re
import traceback as tb
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbflow import states
from nbflow.execution.base import (
    AttemptControl,
    AttemptOutcome,
    TaskRequest,
    request_redactor,
    stopped_outcome,
    utcnow,
)
from nbflow.execution.logs import CappedLog
from nbflow.kinds.base import FileKind
from nbflow.project.connections import Connection, resolve_connection
from nbflow.project.specs import TaskSpec
from nbflow.project.sql import (
    Statement,
    is_query,
    mentioned,
    placeholders,
    read_header,
    read_sql_spec,
    split_statements,
    sql_body,
)
from nbflow.project.targets import S3_SCHEME, TableTarget, is_remote, parse_target

if TYPE_CHECKING:
    import pyarrow as pa

    from nbflow.execution.kernels import KernelLauncher
    from nbflow.systems.transfer import Session


class SqlKind(FileKind):
    """A ``.sql`` file: declarations in its header comment (:mod:`nbflow.project.sql`), run by
    DuckDB or on its connection's database."""

    name = "sql"
    noun = "SQL task"
    suffixes = (".sql",)
    injects_defaults = True  # no code of its own holds the defaults: they are bound with the overrides

    def read(self, path: Path, name: str, relpath: str) -> TaskSpec:
        return read_sql_spec(path, name, relpath)

    def preload(self) -> None:
        import duckdb  # noqa: F401

        with contextlib.suppress(ImportError):  # a SQL task on a database moves Arrow (the etl extra)
            import pyarrow  # noqa: F401

    def run(self, request: TaskRequest, control: AttemptControl, launcher: KernelLauncher | None) -> AttemptOutcome:
        return run_sql(request, control)


#: the sql kind (the registry's, :data:`nbflow.kinds.KINDS`)
SQL = SqlKind()


class _Stopped(Exception):
    """The attempt was stopped between two statements (never leaves this module: the outcome says why)."""


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


def _file_views(request: TaskRequest) -> dict[str, str]:
    """Upstream products that are files (local or ``s3://``), by view name."""
    from nbflow.systems.transfer import file_format

    views = _views(request.parameters.get("upstream") or {})
    return {name: path for name, path in views.items() if file_format(path) and not path.startswith("table://")}


def _parameters(request: TaskRequest) -> dict[str, Any]:
    return {k: v for k, v in request.parameters.items() if k not in ("upstream", "product")}


def _filesystem(request: TaskRequest, location: str) -> Any:
    """The fsspec filesystem of an ``s3://`` location (None for a local path)."""
    if not location.startswith(S3_SCHEME):
        return None
    from nbflow.systems.targets import s3_filesystem_for

    return s3_filesystem_for(location, request.connections, os.environ)


def _connection(request: TaskRequest, name: str) -> Connection:
    return resolve_connection(name, request.connections, os.environ, used_by=request.task)


def run_sql(request: TaskRequest, control: AttemptControl) -> AttemptOutcome:
    """Run one attempt of a SQL task; never raises for anything the SQL does."""
    started = utcnow()
    request.log_path.parent.mkdir(parents=True, exist_ok=True)
    redactor = request_redactor(request)
    log = CappedLog(request.log_path, redact=redactor.text if redactor else None)
    state, error, traceback, ename = states.SUCCESS, None, None, None
    try:
        text = request.source.read_text(encoding="utf-8")
        header = read_header(text, request.task)
        if header.connection is None:
            _run_duckdb(request, control, log, text)
        else:
            _run_on_database(request, control, log, sql_body(text, header), header.connection)
    except Exception as e:  # anything the SQL does ends this attempt, never the run
        state, ename = states.FAILED, type(e).__name__
        message = str(e)
        error = redactor.text(f"{ename}: {message.splitlines()[0] if message else ''}")
        traceback = redactor.text(message if _is_database_error(e) else "".join(tb.format_exception(e)))
    finally:
        control.attach(None)
        log_tail = log.read_tail()
        log.close()
    state, error, ename = stopped_outcome(control, request, state, error, ename, "its query was interrupted")
    return AttemptOutcome(state, started, utcnow(), error=error, traceback=traceback, log=log_tail, ename=ename)


def _is_database_error(e: Exception) -> bool:
    """A database's own error (DuckDB, ADBC, PyMySQL) or an unreachable server: its message
    says it all, nbflow's frames do not."""
    module = type(e).__module__.split(".")[0]
    return isinstance(e, ConnectionError) or module in ("duckdb", "_duckdb", "adbc_driver_manager", "pymysql")


# ------------------------------------------------------------------------------------------
# In DuckDB
# ------------------------------------------------------------------------------------------


def _run_duckdb(request: TaskRequest, control: AttemptControl, log: CappedLog, sql: str) -> None:
    import duckdb

    con = duckdb.connect()
    control.attach(con.interrupt)
    try:
        if control.stopped:
            raise duckdb.InterruptException("stopped before it started")
        params = _parameters(request)
        product = request.parameters.get("product")
        views = _views(request.parameters.get("upstream") or {})
        _register_s3(con, request, [*views.values(), *([product] if isinstance(product, str) else [])])
        for name, path in views.items():
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
        if relation is not None:
            rows = relation.aggregate("count(*)").fetchall()[0][0]
            log.write(f"-- {rows} rows\n{relation.limit(10)}\n")
            if isinstance(product, str) and product.startswith("table://"):
                target = parse_target(product)
                assert isinstance(target, TableTarget)
                _load_table(request, control, log, target, relation.fetch_arrow_reader())
                control.attach(con.interrupt)
            elif isinstance(product, str):
                if not is_remote(product):
                    Path(product).parent.mkdir(parents=True, exist_ok=True)
                (relation.write_parquet if product.endswith(".parquet") else relation.write_csv)(product)
                log.write(f"-- wrote {product}\n")
        elif isinstance(product, str) and not product.startswith("table://"):
            raise ValueError("the last statement is not a SELECT, so there is no result to write to the product")
    finally:
        control.attach(None)
        con.close()


def _register_s3(con: Any, request: TaskRequest, locations: list[str]) -> None:
    """Let DuckDB read and write the ``s3://`` locations through their S3 connection's filesystem."""
    objects = [location for location in locations if location.startswith(S3_SCHEME)]
    if not objects:
        return
    from nbflow.systems.targets import s3_connection_for

    by_connection: dict[str, str] = {}
    for uri in objects:
        conn = s3_connection_for(uri, request.connections, os.environ)
        by_connection.setdefault(conn.name if conn else "(the environment's credentials)", uri)
    if len(by_connection) > 1:
        raise ValueError(
            "DuckDB reaches S3 through one connection per task, and this task's objects need "
            + ", ".join(sorted(by_connection))
            + ": split the task, or name one bucket's objects only"
        )
    con.register_filesystem(_filesystem(request, objects[0]))


# ------------------------------------------------------------------------------------------
# On a database
# ------------------------------------------------------------------------------------------


def _run_on_database(request: TaskRequest, control: AttemptControl, log: CappedLog, sql: str, name: str) -> None:
    from nbflow.systems.transfer import open_session

    conn = _connection(request, name)
    dialect = conn.system
    if dialect not in ("postgresql", "mysql"):
        raise ValueError(
            f"the connection {name!r} is {conn.system} ({conn.describe()}); SQL runs on PostgreSQL or MySQL"
        )
    statements = split_statements(sql, dialect)
    if not statements:
        raise ValueError("the file holds no SQL statement")
    params = _parameters(request)
    bound = [_bound(statement, i, params) for i, statement in enumerate(statements, 1)]
    product = request.parameters.get("product")
    ends_in_query = is_query(statements[-1].text, dialect)
    if isinstance(product, str) and not product.startswith("table://") and not ends_in_query:
        raise ValueError("the last statement is not a SELECT, so there is no result to write to the product")
    log.write(f"-- connection {name}: {conn.describe()}\n")
    if control.stopped:
        raise _Stopped("stopped before it started")
    session = open_session(conn)
    control.attach(session.cancel)
    try:
        _stage(request, control, log, session, sql, dialect)
        for i, (statement, values) in enumerate(zip(statements, bound, strict=True), 1):
            if control.stopped:
                raise _Stopped(f"stopped before statement {i}")
            last = i == len(statements)
            where = f"statement {i} (line {statement.line}): {statement.summary}"
            if last and ends_in_query:
                _result(request, control, log, session, statement, values, product, where)
            else:
                rows = session.execute(statement.text, values)
                log.write(f"-- {where}\n--   {_rows(rows)}\n")
        session.commit()
    finally:
        control.attach(None)
        session.close()


def _bound(statement: Statement, number: int, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters ``statement`` uses, with their values.

    Raises
    ------
    ValueError
        It uses a name the header does not declare (or a stray ``%``).
    """
    try:
        names = placeholders(statement.text)
    except ValueError as e:
        raise ValueError(f"statement {number} (line {statement.line}): {e}") from None
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(
            f"statement {number} (line {statement.line}) uses "
            + ", ".join(f"%({n})s" for n in missing)
            + ", which the header does not declare"
        )
    return {n: params[n] for n in names}


def _stage(
    request: TaskRequest, control: AttemptControl, log: CappedLog, session: Session, sql: str, dialect: str
) -> None:
    """Load the upstream files the SQL mentions into temporary tables named as their views."""
    from nbflow.systems.transfer import read_file

    files = _file_views(request)
    for name in sorted(mentioned(sql, dialect, files)):
        if control.stopped:
            raise _Stopped("stopped while loading upstream products")
        location = files[name]
        table = name.lower() if dialect == "postgresql" else name  # as an unquoted name reads
        rows = session.stage(table, read_file(location, _filesystem(request, location)))
        log.write(f"-- staged {table}: {rows} rows from {location}\n")


def _result(
    request: TaskRequest,
    control: AttemptControl,
    log: CappedLog,
    session: Session,
    statement: Statement,
    values: dict[str, Any],
    product: Any,
    where: str,
) -> None:
    """The last statement, a query: its rows go to the product (or to the log)."""
    from nbflow.systems.transfer import write_file

    log.write(f"-- {where}\n")
    if isinstance(product, str) and product.startswith("table://"):
        target = parse_target(product)
        assert isinstance(target, TableTarget)
        if target.connection == session.connection.name:
            rows = session.replace_from_query(target, statement.text, values)
            log.write(f"--   {_rows(rows)} replaced {product}\n")
        else:
            _load_table(request, control, log, target, session.query(statement.text, values))
            control.attach(session.cancel)
    elif isinstance(product, str):
        rows = write_file(session.query(statement.text, values), product, _filesystem(request, product))
        log.write(f"--   {_rows(rows)} written to {product}\n")
    else:
        rows, preview = _count(session.query(statement.text, values))
        log.write(f"-- {rows} rows\n{preview}")


def _load_table(
    request: TaskRequest, control: AttemptControl, log: CappedLog, target: TableTarget, reader: pa.RecordBatchReader
) -> None:
    """Replace a table of another connection with ``reader``'s rows (committed there)."""
    from nbflow.systems.transfer import open_session

    conn = _connection(request, target.connection)
    log.write(f"-- connection {conn.name}: {conn.describe()}\n")
    with open_session(conn) as other:
        control.attach(other.cancel)
        rows = other.replace_from_arrow(target, reader)
        other.commit()
    log.write(f"--   {_rows(rows)} replaced {target.uri}\n")


def _rows(count: int | None) -> str:
    return "rows: not reported by the driver" if count is None else f"{count} rows"


def _count(reader: pa.RecordBatchReader, preview: int = 10) -> tuple[int, str]:
    """The rows of a result nobody keeps, and its first ``preview`` rows as text."""
    rows, head = 0, list[dict[str, Any]]()
    for batch in reader:
        if len(head) < preview:
            head.extend(batch.slice(0, preview - len(head)).to_pylist())
        rows += batch.num_rows
    names = reader.schema.names
    lines = [" | ".join(names)] + [" | ".join(str(row[n]) for n in names) for row in head]
    return rows, "\n".join(lines) + "\n"
