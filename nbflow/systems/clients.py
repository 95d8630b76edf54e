"""Ready clients for a connection, from the libraries made for each system.

- PostgreSQL: psycopg 3 (DB-API, server-side parameter binding, COPY); ``engine="adbc"``
  gives an ADBC connection (Arrow in and out, binary COPY); ``engine="sqlalchemy"`` an
  Engine (for pandas).
- MySQL / MariaDB: PyMySQL (DB-API, pure Python); ``engine="sqlalchemy"`` an Engine.
- MongoDB: a pymongo ``MongoClient``.
- S3: an fsspec filesystem (s3fs); ``engine="duckdb"`` a DuckDB connection that reads and
  writes ``s3://`` paths through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from nbflow.errors import ClientUnavailableError
from nbflow.project.connections import Connection

ENGINES = {
    "postgresql": (None, "adbc", "sqlalchemy"),
    "mysql": (None, "sqlalchemy"),
    "mongodb": (None,),
    "s3": (None, "duckdb"),
}


def url(conn: Connection, scheme: str | None = None, extra: Mapping[str, str] | None = None) -> str:
    """The connection as a URL for a driver (``postgresql://``, ``mysql+pymysql://``...),
    with its options and the ``extra`` ones in the query."""
    auth = ""
    if conn.user:
        auth = quote(conn.user, safe="")
        if conn.password:
            auth += ":" + quote(conn.password, safe="")
        auth += "@"
    host = conn.host or "127.0.0.1"
    port = f":{conn.port}" if conn.port else ""
    path = f"/{quote(conn.database, safe='')}" if conn.database else ""
    options = {**conn.options, **(extra or {})}
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in options.items())
    return f"{scheme or conn.system}://{auth}{host}{port}{path}" + (f"?{query}" if query else "")


def _need(module: str, extra: str = "etl") -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ClientUnavailableError(
            f"the Python package {module.split('.')[0]!r} is not installed: pip install 'nbflow[{extra}]'"
        ) from None


def open_client(conn: Connection, engine: str | None = None, *, timeout: float | None = None) -> Any:
    """A ready client for ``conn`` (see the module's docstring for which); ``timeout``:
    seconds to wait for a database to accept the connection (the driver's default if None).

    Raises
    ------
    ClientUnavailableError
        Its library is missing, or ``engine`` is not one this system offers.
    """
    if engine not in ENGINES[conn.system]:
        offered = ", ".join(repr(e) for e in ENGINES[conn.system] if e) or "none"
        raise ClientUnavailableError(
            f"the connection {conn.name!r} ({conn.system}) has no engine {engine!r} (engines: {offered})"
        )
    if conn.system == "postgresql":
        if engine == "adbc":
            return _need("adbc_driver_postgresql.dbapi").connect(url(conn, "postgresql"))
        if engine == "sqlalchemy":
            return _need("sqlalchemy").create_engine(url(conn, "postgresql+psycopg"))
        limit = {"connect_timeout": max(1, round(timeout))} if timeout else {}
        return _need("psycopg").connect(url(conn, "postgresql"), **limit)
    if conn.system == "mysql":
        if engine == "sqlalchemy":
            return _need("sqlalchemy").create_engine(url(conn, "mysql+pymysql", {"local_infile": "1"}))
        pymysql = _need("pymysql")
        return pymysql.connect(
            host=conn.host or "127.0.0.1",
            port=conn.port or 3306,
            user=conn.user,
            password=conn.password or "",
            database=conn.database,
            local_infile=True,
            charset=conn.options.get("charset", "utf8mb4"),
            **({"connect_timeout": timeout} if timeout else {}),
        )
    if conn.system == "mongodb":
        native = conn.uri.startswith(("mongodb://", "mongodb+srv://"))
        return _need("pymongo").MongoClient(conn.uri if native else url(conn, "mongodb"))
    fs = s3_filesystem(conn)
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect()
        con.register_filesystem(fs)
        return con
    return fs


def s3_filesystem(conn: Connection | None) -> Any:
    """An s3fs filesystem for ``conn`` (None: credentials from the environment, as boto finds them)."""
    s3fs = _need("s3fs")
    if conn is None:
        return s3fs.S3FileSystem(skip_instance_cache=True)
    client_kwargs = {"region_name": conn.region} if conn.region else {}
    return s3fs.S3FileSystem(
        key=conn.user,
        secret=conn.password,
        endpoint_url=conn.endpoint,
        client_kwargs=client_kwargs,
        skip_instance_cache=True,
    )
