"""The mongo kind: documents of a MongoDB collection extracted to a Parquet file.

A task names a connection (``[connections]`` in the settings), a collection, an optional
``filter``, ``projection`` and ``database`` (default: the one the connection's URI names),
and its product: a ``.parquet`` path or ``s3://bucket/key.parquet`` object. The run checks
the connection before it starts, like every connection a task names.

Parameters: ``params`` gives names and defaults (overridable with ``-p``); a filter value
that is exactly the string ``"$param:NAME"`` is replaced by the parameter's value, as given
(a string stays a string), and one that is exactly ``"$date:NAME"`` by the parameter read as
an ISO date or time (``2024-01-31``, ``2024-01-31T08:00:00Z``; UTC unless it says), for
fields that hold dates. Nothing is formatted into text.

Documents are read ``batch_size`` at a time and each batch is written before the next is
read: nested documents become struct columns, arrays lists, ``ObjectId`` (and other BSON
values with no Arrow type) text, an empty document null. The columns are the fields of
every document, in the order they first appear. While batches keep the same columns and
types they go to one Parquet file; a batch bringing new fields or wider types (an integer
field that later holds decimals) starts another, and at the end the batches are
rewritten into one file with the unified schema (Arrow's permissive promotion). A field
whose values cannot share a type (a number here, text there) fails the attempt, naming
it. An empty result writes an empty file whose columns the projection names, or fails.

A cancel or a timeout stops the extract between batches and closes the client; a server
that cannot be reached fails the attempt with ``ConnectionError`` (retried by default).
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbflow import states
from nbflow.errors import InvalidDeclarationError, ParameterError, PipelineValidationError
from nbflow.execution.base import (
    AttemptControl,
    AttemptOutcome,
    TaskRequest,
    request_redactor,
    stopped_outcome,
    utcnow,
)
from nbflow.execution.logs import CappedLog
from nbflow.kinds.base import CodeKind
from nbflow.project.code import TaskCall, literal
from nbflow.project.connections import Connection, resolve_connection
from nbflow.project.specs import RESERVED_NAMES, Product, TaskSpec
from nbflow.project.targets import S3_SCHEME

if TYPE_CHECKING:
    from nbflow.execution.kernels import KernelLauncher

#: a filter value that is exactly ``"$param:NAME"`` is replaced by parameter NAME's value
PARAM_PREFIX = "$param:"
#: a filter value that is exactly ``"$date:NAME"`` is replaced by parameter NAME read as a date or time
DATE_PREFIX = "$date:"
DEFAULT_BATCH_SIZE = 1000
#: how long the client looks for the server, unless the URI says (``serverSelectionTimeoutMS``)
SERVER_TIMEOUT_MS = 10_000
#: seconds between progress lines in the log (the first batch is always logged)
PROGRESS_EVERY_S = 1.0
#: the server's error code for credentials it refuses
AUTH_FAILED = 18


class MongoKind(CodeKind):
    """A MongoDB extract declared in code (``Pipeline.mongo_task``, ``add_task("mongo", name, ...)``)."""

    name = "mongo"
    noun = "MongoDB extract"
    injects_defaults = True  # its ``params`` are data put in the filter: no code of its own holds them
    facade = "mongo_task"
    arguments = frozenset({"connection", "collection", "database", "filter", "projection", "batch_size", "params"})

    def declare_task(
        self,
        path: Path,
        name: str,
        arguments: Mapping[str, Any],
        *,
        upstream: Sequence[str] = (),
        product: Product = None,
        settings: Mapping[str, Any] | None = None,
    ) -> TaskSpec:
        """The spec of an extract (see :meth:`nbflow.Pipeline.mongo_task`); its code is the query itself.

        Raises
        ------
        TypeError
            No ``connection`` or ``collection``, or one of the wrong type.
        PipelineValidationError
            The product is not one ``.parquet`` file or object, ``batch_size`` is not a
            positive whole number, a parameter is not a literal, or the filter names a
            parameter ``params`` does not give.
        """
        for needed, what in (("connection", "the connection it reads"), ("collection", "the collection it reads")):
            if not isinstance(arguments.get(needed), str) or not arguments[needed]:
                raise TypeError(f"the MongoDB extract {name!r} needs {needed}=, {what} (a name)")
        return self._declare_extract(path, name, upstream=upstream, product=product, settings=settings, **arguments)

    def _declare_extract(
        self,
        path: Path,
        name: str,
        connection: str,
        collection: str,
        *,
        database: str | None = None,
        filter: Mapping[str, Any] | None = None,  # noqa: A002 - MongoDB's own word
        projection: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        params: Mapping[str, Any] | None = None,
        upstream: Sequence[str] = (),
        product: Product = None,
        settings: Mapping[str, Any] | None = None,
    ) -> TaskSpec:
        where = f"<{self.name} task {name}>"
        problems = declaration_problems(name, product, filter, projection, batch_size, database, params)
        if problems:
            raise PipelineValidationError([InvalidDeclarationError(where, p) for p in problems])
        defaults = {k: repr(v) for k, v in (params or {}).items()}
        for key, value in (params or {}).items():
            try:
                ast.literal_eval(defaults[key])
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                raise PipelineValidationError(
                    [
                        ParameterError(
                            f"MongoDB extract {name!r}: parameter {key!r} must be a literal (text, a number, True, "
                            f"None, or a list or dict of them), got {type(value).__name__}"
                        )
                    ]
                ) from None
        target = {
            "connection": connection,
            "database": database,
            "collection": collection,
            "filter": dict(filter or {}),
            "projection": dict(projection) if projection is not None else None,
            "batch_size": batch_size or DEFAULT_BATCH_SIZE,
        }
        source = json.dumps({**target, "params": defaults}, sort_keys=True, default=repr)
        spec = self.declare(
            path,
            name,
            target=target,
            upstream=upstream,
            product=product,
            defaults=defaults,
            source=source,
            settings=settings,
        )
        return replace(spec, connections=(connection,))  # checked before a run starts

    def read_defaults(self, call: TaskCall) -> dict[str, str]:
        """Its ``params=``, when a literal dict."""
        ok, params = literal(call.keywords.get("params"))
        if ok and isinstance(params, dict) and all(isinstance(k, str) for k in params):
            return {k: repr(v) for k, v in params.items()}
        return {}

    def preload(self) -> None:
        import pyarrow.parquet  # noqa: F401
        import pymongo  # noqa: F401

    def run(self, request: TaskRequest, control: AttemptControl, launcher: KernelLauncher | None) -> AttemptOutcome:
        return run_mongo(request, control)


#: the mongo kind (the registry's, :data:`nbflow.kinds.KINDS`)
MONGO = MongoKind()


# -- the declaration: pure --------------------------------------------------------------


class _ExtractError(Exception):
    """Why an extract failed, with the exception name the attempt records (never leaves this module)."""

    def __init__(self, ename: str, message: str) -> None:
        self.ename = ename
        super().__init__(message)


def declaration_problems(
    name: str,
    product: Product,
    filter: Mapping[str, Any] | None,  # noqa: A002 - MongoDB's own word
    projection: Mapping[str, Any] | None,
    batch_size: Any,
    database: Any,
    params: Mapping[str, Any] | None,
) -> list[str]:
    """What is wrong with an extract's declaration (empty: nothing)."""
    problems = []
    if not isinstance(product, str) or not product.lower().endswith(".parquet"):
        problems.append(
            f"'product' must be one .parquet file or s3://bucket/key.parquet object, where the extract "
            f"{name!r} writes its documents (got {product!r})"
        )
    if filter is not None and not isinstance(filter, Mapping):
        problems.append(f"'filter' must be a dict, like {{'status': 'open'}} (got {type(filter).__name__})")
    if projection is not None and not isinstance(projection, Mapping):
        problems.append(f"'projection' must be a dict, like {{'_id': 0, 'id': 1}} (got {type(projection).__name__})")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        problems.append(f"'batch_size' must be a whole number of documents, at least 1 (got {batch_size!r})")
    if database is not None and (not isinstance(database, str) or not database):
        problems.append(f"'database' must be a database's name (got {database!r})")
    if params is not None and not isinstance(params, Mapping):
        problems.append(f"'params' must be a dict of names and defaults (got {type(params).__name__})")
        params = {}
    for key in params or {}:
        if key in RESERVED_NAMES:
            problems.append(f"'params' may not name {key!r}: nbflow gives every task its upstream and product")
    if isinstance(filter, Mapping):
        missing = sorted(set(param_names(filter)) - set(params or {}))
        if missing:
            problems.append(
                "'filter' refers to the parameters " + ", ".join(missing) + ", which 'params' "
                f"does not give; add {', '.join(repr(m) for m in missing)} to params= with a default"
            )
    return problems


def _marker(value: Any) -> tuple[str, str] | None:
    """(prefix, parameter name) of a ``"$param:NAME"`` or ``"$date:NAME"`` filter value, else None."""
    if isinstance(value, str):
        for prefix in (PARAM_PREFIX, DATE_PREFIX):
            if value.startswith(prefix):
                return prefix, value[len(prefix) :]
    return None


def param_names(value: Any) -> Iterator[str]:
    """The parameters a filter refers to (``"$param:NAME"``, ``"$date:NAME"`` values, at any depth)."""
    marker = _marker(value)
    if marker is not None:
        yield marker[1]
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from param_names(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from param_names(item)


def with_params(value: Any, params: Mapping[str, Any]) -> Any:
    """``value`` (a filter) with each ``"$param:NAME"`` replaced by ``params[NAME]``, each
    ``"$date:NAME"`` by it read as a date (:func:`as_datetime`).

    Raises
    ------
    _ExtractError
        A ``$date:`` parameter is no date (``InvalidParameter``).
    """
    marker = _marker(value)
    if marker is not None:
        prefix, name = marker
        return params[name] if prefix == PARAM_PREFIX else as_datetime(name, params[name])
    if isinstance(value, Mapping):
        return {k: with_params(v, params) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [with_params(v, params) for v in value]
    return value


def as_datetime(name: str, value: Any) -> datetime:
    """Parameter ``name``'s value as the naive UTC datetime MongoDB's driver sends as a date.

    Raises
    ------
    _ExtractError
        It is not an ISO date or time, nor a date (``InvalidParameter``).
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            value = None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise _ExtractError(
            "InvalidParameter",
            f"the parameter {name!r} ($date:{name} in the filter) must be an ISO date or time, like 2024-01-31 "
            "or 2024-01-31T08:00:00Z",
        )
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def projected_columns(projection: Mapping[str, Any] | None) -> list[str]:
    """The top-level columns an inclusion projection gives (``_id`` unless excluded); none
    for no projection or an exclusion one (``{"secret": 0}``)."""
    if not projection:
        return []
    included = [k for k, v in projection.items() if k != "_id" and not (v in (0, False) or v is None)]
    if not included:
        return []
    names = list(dict.fromkeys(k.split(".")[0] for k in included))
    if projection.get("_id", 1) not in (0, False):
        names.insert(0, "_id")
    return names


# -- documents to Arrow -----------------------------------------------------------------


#: the types Arrow takes as they are (exactly these; a subclass, like bson's Int64, goes the longer way)
_AS_IS = frozenset({str, int, float, bool, type(None), datetime, bytes})


def plain(value: Any) -> Any:
    """A BSON value as Arrow takes it: ObjectId (and other values with no Arrow type) as text,
    a BSON timestamp as a datetime, an empty document as None."""
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind is dict:
        return plain_document(value) or None
    if kind is list:
        return [v if type(v) in _AS_IS else plain(v) for v in value]
    return _plain_other(value)


def plain_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A document's fields as Arrow takes them (:func:`plain`)."""
    return {str(k): v if type(v) in _AS_IS else plain(v) for k, v in doc.items()}


def _plain_other(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float, datetime, bytes)):  # Int64, Binary, Code, a datetime with tzinfo
        return value
    if isinstance(value, Mapping):
        return plain_document(value) or None
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    from bson import Decimal128, Regex, Timestamp

    if isinstance(value, Timestamp):
        return value.as_datetime().replace(tzinfo=None)
    if isinstance(value, Regex):
        return value.pattern if isinstance(value.pattern, str) else value.pattern.decode()
    if isinstance(value, Decimal128):
        return str(value.to_decimal())
    return str(value)  # ObjectId, UUID, DBRef, MinKey, ...


def merged_type(old: Any, new: Any) -> Any:
    """The type that holds values of both Arrow types, or None if there is none."""
    import pyarrow as pa

    try:
        schema = pa.unify_schemas([pa.schema([("f", old)]), pa.schema([("f", new)])], promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return schema.field("f").type


def to_batch(docs: Sequence[Mapping[str, Any]], columns: dict[str, Any]) -> Any:
    """One batch of documents as an Arrow record batch.

    ``columns`` (name -> type, in order) are those of the batches before: they come first,
    with their types where this batch's values fit them; new fields are added to it.

    Raises
    ------
    _ExtractError
        A field's values in this batch cannot share a type (``SchemaConflict``).
    """
    import pyarrow as pa

    rows = [plain_document(doc) for doc in docs]
    for row in rows:
        for key in row:
            columns.setdefault(key, None)
    arrays, fields = [], []
    for name, known in columns.items():
        values = [row.get(name) for row in rows]
        try:
            array = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
            raise _ExtractError(
                "SchemaConflict",
                f"the field {name!r} holds values of different types ({e}); leave it out with projection=, "
                "or keep the documents whose field has one type with filter=",
            ) from None
        if known is not None and array.type != known and merged_type(known, array.type) == known:
            array = array.cast(known)  # narrower than before (nulls, fewer struct fields): same column
        if known is None or array.type != known:
            columns[name] = array.type
        arrays.append(array)
        fields.append(pa.field(name, array.type))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def conform(batch: Any, schema: Any) -> Any:
    """``batch`` with ``schema``'s columns, in its order: missing ones null, others cast."""
    import pyarrow as pa

    arrays = []
    for field in schema:
        index = batch.schema.get_field_index(field.name)
        if index < 0:
            arrays.append(pa.nulls(batch.num_rows, field.type))
        else:
            column = batch.column(index)
            arrays.append(column if column.type == field.type else column.cast(field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


class Spool:
    """Record batches written to Parquet files in ``folder`` as they come: one file while the
    schema stays the same, a new one when it changes; :meth:`publish` makes them one file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.segments: list[tuple[Path, Any]] = []
        self._writer: Any = None

    def write(self, batch: Any) -> bool:
        """Write ``batch``; True if it started a new file (its schema differs from the last one's)."""
        import pyarrow.parquet as pq

        new = not self.segments or not batch.schema.equals(self.segments[-1][1])
        if new:
            self.close()
            path = self.folder / f"part-{len(self.segments)}.parquet"
            self._writer = pq.ParquetWriter(path, batch.schema)
            self.segments.append((path, batch.schema))
        self._writer.write_batch(batch)
        return new

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def schema(self) -> Any:
        """The schema of every batch together.

        Raises
        ------
        _ExtractError
            A field's types in two batches cannot be unified (``SchemaConflict``).
        """
        import pyarrow as pa

        schemas = [schema for _path, schema in self.segments]
        try:
            return pa.unify_schemas(schemas, promote_options="permissive")
        except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise _ExtractError(
                "SchemaConflict",
                f"a field holds values of different types in different documents ({e}); leave it out with "
                "projection=, or keep the documents whose field has one type with filter=",
            ) from None

    def publish(self, product: str, fs: Any, batch_size: int) -> Any:
        """Write the spooled batches to ``product`` (a path, or an object through ``fs``) as one
        file with the unified schema; returns that schema."""
        import pyarrow.parquet as pq

        self.close()
        schema = self.schema()
        if len(self.segments) == 1:  # the usual case: the file is ready as it is
            _place(self.segments[0][0], product, fs)
            return schema
        joined = self.folder / "joined.parquet"
        with pq.ParquetWriter(joined, schema) as writer:
            for path, _schema in self.segments:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
                    writer.write_batch(conform(batch, schema))
                path.unlink()
        _place(joined, product, fs)
        return schema


def _place(local: Path, product: str, fs: Any) -> None:
    """Move a finished file to the product: a rename beside it, or an upload."""
    if fs is not None:
        fs.put_file(str(local), product[len(S3_SCHEME) :])
    else:
        os.replace(local, product)


def _write_empty(columns: list[str], product: str, fs: Any, folder: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = folder / "empty.parquet"
    pq.write_table(pa.table({name: pa.nulls(0) for name in columns}), path)
    _place(path, product, fs)


# -- one attempt -------------------------------------------------------------------------


def _client(conn: Connection) -> Any:
    """A pymongo client for ``conn``; it looks for the server for at most :data:`SERVER_TIMEOUT_MS`
    unless the URI says otherwise."""
    import pymongo

    from nbflow.systems.clients import url

    given = {k.lower() for k in conn.options}
    options: dict[str, Any] = {
        key: SERVER_TIMEOUT_MS for key in ("serverSelectionTimeoutMS", "connectTimeoutMS") if key.lower() not in given
    }
    native = conn.uri.startswith(("mongodb://", "mongodb+srv://"))
    return pymongo.MongoClient(conn.uri if native else url(conn, "mongodb"), **options)


def _reason(error: Exception) -> str:
    """A driver's error without its topology description (long, and the same each time)."""
    text = str(error)
    for cut in (", Timeout:", " (configured timeouts"):
        text = text.split(cut)[0]
    return text


@contextlib.contextmanager
def _spool_folder(product: str) -> Iterator[Path]:
    """Where the batches wait: beside a local product (so the last step is a rename), else a temporary folder."""
    beside = None if product.startswith(S3_SCHEME) else Path(product).parent
    folder = Path(tempfile.mkdtemp(prefix=f".{Path(product).name}.", suffix=".nbflow-tmp", dir=beside))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def extract(request: TaskRequest, conn: Connection, control: AttemptControl, log: CappedLog) -> None:
    """Read the documents and write the product.

    Raises
    ------
    _ExtractError
        The result cannot be written as asked; pymongo's and pyarrow's errors otherwise.
    """
    import pymongo

    spec = request.target
    params = {k: v for k, v in request.parameters.items() if k not in RESERVED_NAMES}
    query = with_params(spec["filter"], params)
    database = spec["database"] or conn.database
    if not database:
        raise _ExtractError(
            "MissingDatabase",
            f"the connection {conn.name!r} ({conn.describe()}) names no database: add it to the URI "
            f"(mongodb://host/DATABASE) or give the task database=",
        )
    product = request.targets[0] if request.targets else str(request.products[0])
    fs = None
    if product.startswith(S3_SCHEME):
        from nbflow.systems.targets import s3_filesystem_for

        fs = s3_filesystem_for(product, request.connections, os.environ)
    shown = json.dumps(query, default=str, sort_keys=True)
    log.write(f"{conn.name} ({conn.describe()}): {database}.{spec['collection']} filter {shown}")
    log.write(f" projection {json.dumps(spec['projection'], default=str)}\n" if spec["projection"] else "\n")
    log.flush()

    client = _client(conn)
    control.attach(client.close)  # a cancel or a timeout closes it: the next read fails at once
    try:
        # a read the server never answers ends too, soon after the task's timeout stopped it
        limit = pymongo.timeout(request.timeout + 1) if request.timeout else contextlib.nullcontext()
        with limit, _spool_folder(product) as folder:
            spool = Spool(folder)
            cursor = client[database][spec["collection"]].find(query, spec["projection"], batch_size=spec["batch_size"])
            with cursor:
                documents, batches = _read(cursor, spec["batch_size"], spool, control, log)
            if documents:
                names = list(spool.publish(product, fs, spec["batch_size"]).names)
                log.write(
                    f"read {_count(documents, 'document')} in {_count(batches, 'batch')}; wrote {product} "
                    f"({len(names)} columns: {', '.join(names)})\n"
                )
                return
            names = projected_columns(spec["projection"])
            if not names:
                raise _ExtractError(
                    "EmptyResult",
                    f"{database}.{spec['collection']} has no documents matching the filter, and without an "
                    "inclusion projection (like {'_id': 0, 'id': 1}) the Parquet file's columns are unknown; "
                    "give projection= to write an empty file",
                )
            _write_empty(names, product, fs, folder)
            log.write(f"read 0 documents; wrote an empty {product} with the columns {', '.join(names)}\n")
    finally:
        control.attach(None)
        client.close()


def _read(cursor: Any, size: int, spool: Spool, control: AttemptControl, log: CappedLog) -> tuple[int, int]:
    """Spool the cursor's documents, ``size`` at a time, until its end or a stop; returns
    (documents, batches)."""
    columns: dict[str, Any] = {}
    documents = batches = 0
    last = 0.0
    while True:
        if control.stopped:
            raise InterruptedError(f"stopped after {_count(documents, 'document')} in {_count(batches, 'batch')}")
        docs = _next_batch(cursor, size)
        if not docs:
            return documents, batches
        batch = to_batch(docs, columns)
        documents, batches = documents + len(docs), batches + 1
        if spool.write(batch) and batches > 1:
            log.write(f"batch {batches} brings new fields or wider types: the file unifies them\n")
        if batches == 1 or time.monotonic() - last >= PROGRESS_EVERY_S:
            log.write(f"batch {batches}: {_count(documents, 'document')} so far\n")
            log.flush()
            last = time.monotonic()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}es" if noun.endswith("ch") else f"{n} {noun}s"


def _next_batch(cursor: Any, size: int) -> list[Any]:
    """Up to ``size`` documents from the cursor (fewer at its end)."""
    docs = []
    for doc in cursor:
        docs.append(doc)
        if len(docs) >= size:
            break
    return docs


def run_mongo(request: TaskRequest, control: AttemptControl) -> AttemptOutcome:
    """Run one attempt of a MongoDB extract; never raises for anything the server does."""
    started = utcnow()
    request.log_path.parent.mkdir(parents=True, exist_ok=True)
    log = CappedLog(request.log_path, redact=request_redactor(request).text)
    state, error, ename = states.SUCCESS, None, None
    conn: Connection | None = None
    try:
        if control.stopped:
            raise InterruptedError("stopped before it started")
        conn = resolve_connection(request.target["connection"], request.connections, os.environ, request.task)
        if conn.system != "mongodb":
            raise _ExtractError(
                "WrongConnection",
                f"the connection {conn.name!r} is a {conn.system} connection ({conn.describe()}); "
                "a MongoDB extract reads a mongodb:// one",
            )
        extract(request, conn, control, log)
    except _ExtractError as e:
        state, ename, error = states.FAILED, e.ename, f"{e.ename}: {e}"
    except ImportError as e:
        state, ename = states.FAILED, "ClientUnavailable"
        error = f"{ename}: {e.name or e} is not installed: pip install 'nbflow[etl]'"
    except Exception as e:  # the server or the data: this attempt fails, never the run
        state, ename, error = states.FAILED, type(e).__name__, f"{type(e).__name__}: {e}"
        if conn is not None:
            ename, error = _driver_error(e, conn) or (ename, error)
    finally:
        if error:
            log.write(error + "\n")
        log_tail = log.read_tail()
        log.close()
    state, error, ename = stopped_outcome(control, request, state, error, ename, "its extract was stopped")
    return AttemptOutcome(state, started, utcnow(), error=error, log=log_tail, ename=ename)


def _driver_error(error: Exception, conn: Connection) -> tuple[str, str] | None:
    """(ename, error) of a driver's error that is about the connection, naming it (never its password):
    ``ConnectionError`` when the server could not be reached, refused or dropped the connection
    (retried by default), ``AuthenticationFailed`` when it refused the credentials (not retried)."""
    from pymongo.errors import ConnectionFailure, OperationFailure

    where = f"the connection {conn.name!r} ({conn.describe()})"
    if isinstance(error, ConnectionFailure):
        return "ConnectionError", f"ConnectionError: could not reach {where}: {_reason(error)}"
    if isinstance(error, OperationFailure) and error.code == AUTH_FAILED:
        return "AuthenticationFailed", f"AuthenticationFailed: the server refused the credentials of {where}"
    return None
