"""Arrow in and out of databases and files: a session on one database, results as Arrow streams.

- **PostgreSQL**, through ADBC (libpq; binary ``COPY`` both ways, in C): a query's result
  streams out as Arrow record batches, and a table (or a temporary one) is loaded with
  ``adbc_ingest``. Parameters are written ``%(name)s`` (psycopg's style) and bound by the
  driver as ``$1, $2...``; a string is cast to the type PostgreSQL infers for its place,
  as psycopg sends strings untyped, so ``WHERE day >= %(cutoff)s`` takes ``"2024-01-01"``.
- **MySQL and MariaDB**, through PyMySQL, which binds ``%(name)s`` itself: a result streams
  through a server-side cursor into Arrow batches (the wire's text cast by Arrow), and a
  table is loaded with ``LOAD DATA LOCAL INFILE`` from a CSV file Arrow writes.
- **Files** (``.parquet``, ``.csv``; local or through an fsspec filesystem, ``s3://``) are
  read and written as Arrow streams, a batch at a time.

A session runs everything in one database session and one transaction, committed by
:meth:`Session.commit` (MySQL commits at each DDL statement, as it always does). A table
is replaced atomically: the new one is built beside it, then swapped in. Nothing here
formats a value into SQL; names (tables, columns) are quoted.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import decimal
import json
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from nbflow.errors import ClientUnavailableError
from nbflow.project.connections import Connection
from nbflow.project.secrets import Redactor
from nbflow.project.sql import placeholders, render_placeholders
from nbflow.project.targets import TableTarget
from nbflow.systems.clients import open_client, url

#: rows a batch holds when nbflow makes the batches (a MySQL result, a file read)
BATCH_ROWS = 65_536
#: seconds to wait for a server to answer a connection attempt
CONNECT_TIMEOUT = 10


def unreachable(conn: Connection, error: BaseException) -> ConnectionError:
    """The error of a connection that cannot be opened: its name and where it points, and the
    driver's reason with the connection's credentials masked."""
    reason = " ".join(str(error).split()) or type(error).__name__
    reason = Redactor(conn.secrets()).text(reason)
    return ConnectionError(f"could not connect to {conn.name!r} ({conn.describe()}): {reason}")


def open_session(conn: Connection) -> Session:
    """A session on the database of ``conn`` (PostgreSQL or MySQL/MariaDB).

    Raises
    ------
    ConnectionError
        The server cannot be reached or refuses the connection.
    ValueError
        ``conn`` is not a database SQL runs on.
    """
    if conn.system == "postgresql":
        return PostgresSession(conn)
    if conn.system == "mysql":
        return MySQLSession(conn)
    raise ValueError(
        f"the connection {conn.name!r} is {conn.system} ({conn.describe()}); SQL runs on PostgreSQL or MySQL/MariaDB"
    )


class Session(abc.ABC):
    """One database session: statements, results as Arrow, tables loaded from Arrow."""

    def __init__(self, conn: Connection) -> None:
        self.connection = conn

    @abc.abstractmethod
    def execute(self, sql: str, params: Mapping[str, Any]) -> int | None:
        """Run one statement with ``params`` (the names it uses); the rows it affected or
        returned (None: the driver does not say)."""

    @abc.abstractmethod
    def query(self, sql: str, params: Mapping[str, Any]) -> pa.RecordBatchReader:
        """Run one query; its rows as a stream of record batches (read it before the next statement)."""

    @abc.abstractmethod
    def stage(self, name: str, reader: pa.RecordBatchReader) -> int:
        """Load ``reader`` into a new temporary table ``name`` of this session; its rows."""

    @abc.abstractmethod
    def replace_from_query(self, target: TableTarget, sql: str, params: Mapping[str, Any]) -> int | None:
        """Replace the table ``target`` with the result of the query ``sql``, atomically; its rows."""

    @abc.abstractmethod
    def replace_from_arrow(self, target: TableTarget, reader: pa.RecordBatchReader) -> int:
        """Replace the table ``target`` with the rows of ``reader``, atomically; their number."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Interrupt what the session is running (from another thread); it then fails."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Commit the session's transaction."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the session; what was not committed is rolled back."""

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _side_table(target: TableTarget, suffix: str) -> TableTarget:
    """A table beside ``target`` (same schema) to build its replacement in."""
    name = f"{target.table[: 63 - len(suffix) - 9]}__nbflow_{suffix}"
    return TableTarget(f"table://{target.connection}/{name}", target.connection, target.schema, name)


def portable(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """``reader`` with types every database here loads: dictionaries decoded, nulls as
    strings, and no field metadata."""
    fields = []
    for field in reader.schema:
        kind = field.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if pa.types.is_null(kind):
            kind = pa.string()
        fields.append(pa.field(field.name, kind, field.nullable))
    schema = pa.schema(fields)
    if schema.equals(reader.schema, check_metadata=True):
        return reader
    return pa.RecordBatchReader.from_batches(schema, (batch.cast(schema) for batch in reader))


# ------------------------------------------------------------------------------------------
# PostgreSQL
# ------------------------------------------------------------------------------------------

#: PostgreSQL types a string parameter binds to as it is (others get a cast)
_TEXT_TYPES = frozenset({"", "text", "varchar", "bpchar", "name", "char", "unknown", "citext"})
_FETCH = "FETCH FORWARD 65536 FROM nbflow_result"


class PostgresSession(Session):
    """A session on PostgreSQL through ADBC's driver (its low-level API: no DB-API layer,
    nor the pandas it imports); see the module's docstring."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        adbc, driver = _adbc()
        uri = url(replace(conn, options={"connect_timeout": str(CONNECT_TIMEOUT), **conn.options}), "postgresql")
        try:
            self._database = driver.connect(uri)
            try:
                self._db = adbc.AdbcConnection(self._database)
            except BaseException:
                self._database.close()
                raise
        except adbc.Error as e:  # the server refused the connection or is not there
            raise unreachable(conn, e) from None
        self._db.set_autocommit(False)
        self._lock = threading.Lock()
        self._running: set[Any] = set()

    @contextlib.contextmanager
    def _statement(self, sql: str, options: Mapping[str, str] | None = None) -> Iterator[Any]:
        """A statement of the session, cancelled by :meth:`cancel` while it is open."""
        adbc, _ = _adbc()
        stmt = adbc.AdbcStatement(self._db)
        with self._lock:
            self._running.add(stmt)
        try:
            if options:
                stmt.set_options(**options)
            if sql:
                stmt.set_sql_query(sql)
            yield stmt
        finally:
            with self._lock:
                self._running.discard(stmt)
            stmt.close()

    def _bound(self, sql: str, params: Mapping[str, Any]) -> tuple[str, pa.RecordBatch | None]:
        """``sql`` with ``$n`` for its placeholders, and the values to bind to them."""
        names = placeholders(sql)
        if not names:
            return sql, None
        number = {name: i + 1 for i, name in enumerate(names)}
        plain = render_placeholders(sql, lambda name: f"${number[name]}")
        with self._statement(plain) as stmt:
            stmt.prepare()
            inferred = pa.schema(stmt.get_parameter_schema())  # the type PostgreSQL infers for each place
        if len(inferred) != len(names):
            raise ValueError(f"PostgreSQL reads {len(inferred)} parameters where nbflow binds {len(names)}")
        arrays, casts = [], {}
        for name, field in zip(names, inferred, strict=True):
            pg_type = (field.metadata or {}).get(b"POSTGRESQL:type", b"").decode()
            array, cast = _parameter(params[name], field.type, pg_type)
            arrays.append(array)
            if cast:
                casts[name] = pg_type
        if casts:
            plain = render_placeholders(
                sql,
                lambda name: f'CAST(${number[name]} AS "{casts[name]}")' if name in casts else f"${number[name]}",
            )
        return plain, pa.RecordBatch.from_arrays(arrays, names=[f"p{i}" for i in range(1, len(names) + 1)])

    def execute(self, sql: str, params: Mapping[str, Any]) -> int | None:
        sql, bound = self._bound(sql, params)
        with self._statement(sql) as stmt:
            if bound is not None:
                stmt.bind(bound)
            count: int = stmt.execute_update()
        return count if count >= 0 else None

    def query(self, sql: str, params: Mapping[str, Any]) -> pa.RecordBatchReader:
        sql, bound = self._bound(sql, params)
        if bound is None:  # COPY (query) TO STDOUT, streamed
            return self._stream(sql)
        # COPY takes no parameters: a cursor of the session, fetched a batch at a time
        with self._statement(f"DECLARE nbflow_result NO SCROLL CURSOR FOR {sql}") as stmt:
            stmt.bind(bound)
            stmt.execute_update()
        return self._cursor_batches()

    def _stream(self, sql: str) -> pa.RecordBatchReader:
        stack = contextlib.ExitStack()
        stmt = stack.enter_context(self._statement(sql))
        try:
            handle, _ = stmt.execute_query()
            reader = pa.RecordBatchReader.from_stream(handle)
        except BaseException:
            stack.close()
            raise
        schema = _plain_schema(reader.schema)

        def batches() -> Iterator[pa.RecordBatch]:
            with stack:
                for batch in reader:
                    yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)

        return pa.RecordBatchReader.from_batches(schema, batches())

    def _cursor_batches(self) -> pa.RecordBatchReader:
        stack = contextlib.ExitStack()
        stmt = stack.enter_context(self._statement(_FETCH, {"adbc.postgresql.use_copy": "false"}))

        def fetch() -> pa.Table:
            handle, _ = stmt.execute_query()
            return pa.RecordBatchReader.from_stream(handle).read_all()

        try:
            first = fetch()
        except BaseException:
            stack.close()
            raise
        schema = _plain_schema(first.schema)

        def batches() -> Iterator[pa.RecordBatch]:
            with stack:
                table = first
                while table.num_rows:
                    yield from table.cast(schema).to_batches()
                    table = fetch()
            self.execute("CLOSE nbflow_result", {})

        return pa.RecordBatchReader.from_batches(schema, batches())

    def _ingest(self, table: str, reader: pa.RecordBatchReader, **options: str) -> int:
        adbc, _ = _adbc()
        settings = {adbc.INGEST_OPTION_TARGET_TABLE: table, adbc.INGEST_OPTION_MODE: adbc.INGEST_OPTION_MODE_CREATE}
        with self._statement("", {**settings, **options}) as stmt:
            stmt.bind_stream(portable(reader))
            rows: int = stmt.execute_update()
        return rows

    def stage(self, name: str, reader: pa.RecordBatchReader) -> int:
        return self._ingest(name, reader, **{"adbc.ingest.temporary": "true"})

    def replace_from_query(self, target: TableTarget, sql: str, params: Mapping[str, Any]) -> int | None:
        new = _side_table(target, "new")
        self.execute(f"DROP TABLE IF EXISTS {new.qualified}", {})
        rows = self.execute(f"CREATE TABLE {new.qualified} AS {sql}", params)
        self._swap(target, new)
        return rows

    def replace_from_arrow(self, target: TableTarget, reader: pa.RecordBatchReader) -> int:
        new = _side_table(target, "new")
        self.execute(f"DROP TABLE IF EXISTS {new.qualified}", {})
        schema = {"adbc.ingest.target_db_schema": target.schema} if target.schema else {}
        rows = self._ingest(new.table, reader, **schema)
        self._swap(target, new)
        return rows

    def _swap(self, target: TableTarget, new: TableTarget) -> None:
        # in the session's one transaction: readers see the old table until the commit, then the new
        self.execute(f"DROP TABLE IF EXISTS {target.qualified}", {})
        self.execute(f'ALTER TABLE {new.qualified} RENAME TO "{target.table}"', {})

    def cancel(self) -> None:
        with self._lock:
            running = list(self._running)
        for stmt in running:
            with contextlib.suppress(Exception):
                stmt.cancel()

    def commit(self) -> None:
        self._db.commit()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._db.rollback()
        with contextlib.suppress(Exception):
            self._db.close()
        with contextlib.suppress(Exception):
            self._database.close()


def _adbc() -> tuple[Any, Any]:
    """ADBC's driver manager and its PostgreSQL driver."""
    try:
        import adbc_driver_manager
        import adbc_driver_postgresql
    except ImportError:
        raise ClientUnavailableError(
            "the Python package 'adbc_driver_postgresql' is not installed: pip install 'nbflow[etl]'"
        ) from None
    return adbc_driver_manager, adbc_driver_postgresql


def _parameter(value: Any, inferred: pa.DataType, pg_type: str) -> tuple[pa.Array, bool]:
    """The array binding ``value`` where PostgreSQL infers ``pg_type``, and whether it needs a
    cast to that type (a string PostgreSQL parses, as it would an untyped literal)."""
    if value is None:
        if _bindable(inferred):
            return pa.nulls(1, inferred), False
        return pa.nulls(1, pa.string()), pg_type not in _TEXT_TYPES
    if isinstance(value, (bool, int, float, decimal.Decimal, dt.date, dt.datetime, dt.time, dt.timedelta, bytes)):
        return pa.array([value]), False
    if isinstance(value, (list, tuple)) and pg_type.startswith("_"):
        text = _array_literal(value)
    elif isinstance(value, (list, tuple, dict)):
        text = json.dumps(value)
    else:
        text = str(value)
    return pa.array([text], pa.string()), pg_type not in _TEXT_TYPES


def _bindable(kind: pa.DataType) -> bool:
    """Whether ADBC's PostgreSQL driver binds a parameter of this Arrow type."""
    checks = (
        pa.types.is_boolean,
        pa.types.is_integer,
        pa.types.is_floating,
        pa.types.is_string,
        pa.types.is_large_string,
        pa.types.is_binary,
        pa.types.is_date32,
        pa.types.is_timestamp,
        pa.types.is_duration,
        pa.types.is_decimal,
    )
    return any(check(kind) for check in checks)


def _array_literal(values: list[Any] | tuple[Any, ...]) -> str:
    """A list as PostgreSQL's array input text (``{1,"a b",NULL}``), for a cast to an array type."""
    items = []
    for value in values:
        if value is None:
            items.append("NULL")
        elif isinstance(value, (list, tuple)):
            items.append(_array_literal(value))
        else:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            items.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(items) + "}"


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, f.type, f.nullable) for f in schema])


# ------------------------------------------------------------------------------------------
# MySQL and MariaDB
# ------------------------------------------------------------------------------------------


def _quote_mysql(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _mysql_table(target: TableTarget) -> str:
    return ".".join(_quote_mysql(part) for part in (target.schema, target.table) if part)


class MySQLSession(Session):
    """A session on MySQL or MariaDB through PyMySQL; see the module's docstring."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        try:
            self._db = open_client(conn)
        except ClientUnavailableError:
            raise
        except Exception as e:  # any of the driver's errors: the server refused or is not there
            raise unreachable(conn, e) from None
        self._thread_id = self._db.thread_id()

    def execute(self, sql: str, params: Mapping[str, Any]) -> int | None:
        with self._db.cursor() as cur:
            cur.execute(sql, dict(params) or None)
            count: int = cur.rowcount
        return count if count >= 0 else None

    def query(self, sql: str, params: Mapping[str, Any]) -> pa.RecordBatchReader:
        import pymysql.cursors

        cur = pymysql.cursors.SSCursor(self._db)
        decoders = self._db.decoders
        self._db.decoders = {}  # values arrive as the wire's text; Arrow casts them
        try:
            cur.execute(sql, dict(params) or None)
        except BaseException:
            cur.close()
            raise
        finally:
            self._db.decoders = decoders
        targets = [_mysql_arrow_type(column) for column in cur.description]
        names = [column[0] for column in cur.description]
        first = cur.fetchmany(BATCH_ROWS)
        columns = list(zip(*first, strict=True)) if first else [() for _ in names]
        schema = pa.schema(
            [
                pa.field(name, kind or _text_type(values))
                for name, kind, values in zip(names, targets, columns, strict=True)
            ]
        )

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                rows = first
                while rows:
                    yield _mysql_batch(rows, schema)
                    rows = cur.fetchmany(BATCH_ROWS)
            finally:
                cur.close()

        return pa.RecordBatchReader.from_batches(schema, batches())

    def stage(self, name: str, reader: pa.RecordBatchReader) -> int:
        reader = portable(reader)
        table = _quote_mysql(name)
        self.execute(f"CREATE TEMPORARY TABLE {table} ({_mysql_columns(reader.schema)})", {})
        return self._load(table, reader)

    def replace_from_query(self, target: TableTarget, sql: str, params: Mapping[str, Any]) -> int | None:
        new = _side_table(target, "new")
        self.execute(f"DROP TABLE IF EXISTS {_mysql_table(new)}", {})
        rows = self.execute(f"CREATE TABLE {_mysql_table(new)} AS {sql}", params)
        self._swap(target, new)
        return rows

    def replace_from_arrow(self, target: TableTarget, reader: pa.RecordBatchReader) -> int:
        reader = portable(reader)
        new = _side_table(target, "new")
        self.execute(f"DROP TABLE IF EXISTS {_mysql_table(new)}", {})
        self.execute(f"CREATE TABLE {_mysql_table(new)} ({_mysql_columns(reader.schema)})", {})
        rows = self._load(_mysql_table(new), reader)
        self._swap(target, new)
        return rows

    def _swap(self, target: TableTarget, new: TableTarget) -> None:
        old = _side_table(target, "old")
        with self._db.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = coalesce(%s, database()) AND table_name = %s",
                (target.schema, target.table),
            )
            (exists,) = cur.fetchone()
        if exists:  # RENAME TABLE swaps both at once
            self.execute(f"DROP TABLE IF EXISTS {_mysql_table(old)}", {})
            self.execute(
                f"RENAME TABLE {_mysql_table(target)} TO {_mysql_table(old)}, "
                f"{_mysql_table(new)} TO {_mysql_table(target)}",
                {},
            )
            self.execute(f"DROP TABLE {_mysql_table(old)}", {})
        else:
            self.execute(f"RENAME TABLE {_mysql_table(new)} TO {_mysql_table(target)}", {})

    def _load(self, table: str, reader: pa.RecordBatchReader) -> int:
        """``LOAD DATA LOCAL INFILE`` from a CSV file written from ``reader``; a value MySQL
        could not take whole (a warning) fails the load."""
        import pyarrow.csv as pcsv

        columns = ", ".join(_quote_mysql(name) for name in reader.schema.names)
        fd, name = tempfile.mkstemp(prefix="nbflow-load-", suffix=".csv")
        try:
            with os.fdopen(fd, "wb") as f:
                for batch in reader:
                    pcsv.write_csv(_mysql_text(batch), f, pcsv.WriteOptions(include_header=False))
            with self._db.cursor() as cur:
                cur.execute(
                    f"LOAD DATA LOCAL INFILE %s INTO TABLE {table} CHARACTER SET utf8mb4 "
                    "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' "
                    f"LINES TERMINATED BY '\\n' ({columns})",
                    (name,),
                )
                rows: int = cur.rowcount
                cur.execute("SHOW WARNINGS LIMIT 3")
                warnings = [str(w[2]) for w in cur.fetchall() if str(w[0]).lower() != "note"]
                if warnings:
                    raise ValueError(f"MySQL did not take every value loaded into {table}: {'; '.join(warnings)}")
            return rows
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)

    def cancel(self) -> None:
        # KILL QUERY from a second connection: the running statement fails, the session stays
        with contextlib.suppress(Exception):
            killer = open_client(self.connection)
            try:
                with killer.cursor() as cur:
                    cur.execute("KILL QUERY %s", (self._thread_id,))
            finally:
                killer.close()

    def commit(self) -> None:
        self._db.commit()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._db.rollback()
        with contextlib.suppress(Exception):
            self._db.close()


def _mysql_arrow_type(column: tuple[Any, ...]) -> pa.DataType | None:
    """The Arrow type of a result column from PyMySQL's description (None: text or bytes, as the values say)."""
    from pymysql.constants import FIELD_TYPE as F

    code, length, scale = column[1], column[3] or 0, column[5] or 0
    if code in (F.TINY, F.SHORT, F.INT24, F.LONG, F.LONGLONG, F.YEAR):
        return pa.int64()
    if code in (F.FLOAT, F.DOUBLE):
        return pa.float64()
    if code in (F.DECIMAL, F.NEWDECIMAL):
        precision = max(1, length - (1 if scale else 0))
        return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(min(precision, 76), scale)
    if code in (F.DATE, F.NEWDATE):
        return pa.date32()
    if code in (F.DATETIME, F.TIMESTAMP):
        return pa.timestamp("us")
    return None


def _text_type(values: tuple[Any, ...]) -> pa.DataType:
    return pa.binary() if any(isinstance(v, bytes) for v in values) else pa.string()


def _mysql_batch(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for field, values in zip(schema, zip(*rows, strict=True), strict=True):
        if pa.types.is_binary(field.type) or pa.types.is_string(field.type):
            arrays.append(pa.array(values, field.type))
            continue
        text = pa.array(values, pa.string())
        if pa.types.is_date32(field.type) or pa.types.is_timestamp(field.type):
            import pyarrow.compute as pc

            text = pc.if_else(pc.starts_with(text, "0000-00-00"), pa.scalar(None, pa.string()), text)
        arrays.append(text.cast(field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _mysql_type(kind: pa.DataType) -> str:
    """The MySQL column type of an Arrow type."""
    t = pa.types
    if t.is_boolean(kind):
        return "BOOLEAN"
    if t.is_integer(kind):
        width = {8: "TINYINT", 16: "SMALLINT", 32: "INT", 64: "BIGINT"}[kind.bit_width]
        return width + (" UNSIGNED" if t.is_unsigned_integer(kind) else "")
    if t.is_float32(kind):
        return "FLOAT"
    if t.is_floating(kind):
        return "DOUBLE"
    if t.is_decimal(kind) and kind.precision <= 65:
        return f"DECIMAL({kind.precision},{min(kind.scale, 30)})"
    if t.is_string(kind) or t.is_large_string(kind):
        return "LONGTEXT"
    if t.is_date(kind):
        return "DATE"
    if t.is_timestamp(kind):
        return "DATETIME(6)"
    if t.is_time(kind):
        return "TIME(6)"
    raise ValueError(f"a column of Arrow type {kind} cannot be loaded into MySQL yet")


def _mysql_columns(schema: pa.Schema) -> str:
    try:
        return ", ".join(f"{_quote_mysql(field.name)} {_mysql_type(field.type)}" for field in schema)
    except ValueError as e:
        names = [f.name for f in schema if not _loadable(f.type)]
        raise ValueError(f"{e} (column {', '.join(names)})") from None


def _loadable(kind: pa.DataType) -> bool:
    try:
        _mysql_type(kind)
    except ValueError:
        return False
    return True


def _mysql_text(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` as the text ``LOAD DATA`` reads with ``ESCAPED BY '\\'``: backslashes and line
    breaks escaped, NULL as ``\\N``, booleans as 1/0, times without their zone."""
    import pyarrow.compute as pc

    columns = []
    for column in batch.columns:
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            for raw, escaped in (("\\", "\\\\"), ("\n", "\\n"), ("\r", "\\r"), ("\0", "\\0")):
                column = pc.replace_substring(column, raw, escaped)
        else:
            if pa.types.is_boolean(kind):
                column = column.cast(pa.int8())
            elif pa.types.is_timestamp(kind) and kind.tz is not None:
                column = column.cast(pa.timestamp(kind.unit))  # UTC, as DATETIME keeps it
            column = column.cast(pa.string())
        columns.append(pc.fill_null(column, "\\N"))
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


# ------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------

FILE_FORMATS = (".parquet", ".csv", ".json")


def file_format(location: str) -> str | None:
    """``.parquet``, ``.csv`` or ``.json``: the format of a file by its name (None: another)."""
    suffix = Path(location.split("?")[0]).suffix.lower()
    return suffix if suffix in FILE_FORMATS else None


@contextlib.contextmanager
def _opened(location: str, mode: str, filesystem: Any) -> Iterator[Any]:
    if filesystem is None:
        with open(location, mode) as f:
            yield f
    else:
        with filesystem.open(location, mode) as f:
            yield f


def read_file(location: str, filesystem: Any = None) -> pa.RecordBatchReader:
    """The rows of a ``.parquet``, ``.csv`` or ``.json`` file as a stream (``filesystem``: an
    fsspec filesystem for a location like ``s3://bucket/key``; None: a local path)."""
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson
    import pyarrow.parquet as pq

    fmt = file_format(location)
    if fmt == ".json":
        with _opened(location, "rb", filesystem) as f:
            return pjson.read_json(f).to_reader()
    stack = contextlib.ExitStack()
    f = stack.enter_context(_opened(location, "rb", filesystem))
    try:
        if fmt == ".parquet":
            parquet = pq.ParquetFile(f)
            schema, batches = parquet.schema_arrow, parquet.iter_batches(BATCH_ROWS)
        elif fmt == ".csv":
            csv = pcsv.open_csv(f)
            schema, batches = csv.schema, iter(csv)
        else:
            raise ValueError(f"{location} is not a .parquet, .csv or .json file")
    except BaseException:
        stack.close()
        raise

    def stream() -> Iterator[pa.RecordBatch]:
        with stack:
            yield from batches

    return pa.RecordBatchReader.from_batches(schema, stream())


def write_file(reader: pa.RecordBatchReader, location: str, filesystem: Any = None) -> int:
    """Write ``reader`` to a ``.parquet`` or ``.csv`` file, a batch at a time; the rows written.

    A local file is written beside its place and renamed into it (never left half written);
    ``filesystem`` (fsspec) writes a location like ``s3://bucket/key`` (an object appears
    when it is complete).
    """
    fmt = file_format(location)
    if fmt not in (".parquet", ".csv"):
        raise ValueError(f"{location} is not a .parquet or .csv file")
    if filesystem is not None:
        with filesystem.open(location, "wb") as sink:
            return _write(reader, sink, fmt)
    path = Path(location)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.nbflow-partial")
    try:
        with open(partial, "wb") as sink:
            rows = _write(reader, sink, fmt)
        os.replace(partial, path)
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()
    return rows


def _write(reader: pa.RecordBatchReader, sink: Any, fmt: str) -> int:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    schema = _plain_schema(reader.schema)
    writer: Any = pq.ParquetWriter(sink, schema) if fmt == ".parquet" else pcsv.CSVWriter(sink, schema)
    rows = 0
    with writer:
        for batch in reader:
            writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
            rows += batch.num_rows
    return rows
