"""The state store's tables, and the check that a file holds them.

The file is a public surface: any DuckDB client may query it, so its tables and columns
are documented (here and in the README) and change only with :data:`SCHEMA_VERSION`.
There are no migrations yet: a file of another version (a newer nbflow's, or a development
build's from before the first release) is refused with :class:`~nbflow.errors.StoreSchemaError`,
which says what to do, rather than read or written in a shape this nbflow does not know.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbflow.errors import StoreSchemaError
from nbflow.store.duckdb.records import TABLE_COLUMNS

if TYPE_CHECKING:
    import duckdb

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS nbflow_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    pipeline VARCHAR NOT NULL,          -- absolute path of the pipeline folder
    state VARCHAR NOT NULL,             -- running | success | failed | interrupted
    started_at TIMESTAMP NOT NULL,      -- UTC
    ended_at TIMESTAMP,
    duration_s DOUBLE,
    params JSON,                        -- overrides: {"name": v, "task.name": v}
    workers INTEGER,
    selected JSON,                      -- --only tasks, or null
    nbflow_version VARCHAR,
    pid INTEGER,
    hostname VARCHAR,
    resumed_from VARCHAR,               -- the run this one resumed, or null
    logical_date VARCHAR,               -- the schedule's date a scheduled or backfill run is for
    environment JSON                    -- python, platform, packages, sources and kernels by task
);
CREATE TABLE IF NOT EXISTS tasks (
    run_id VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    state VARCHAR NOT NULL,             -- pending | running | success | failed | upstream_failed | ...
    attempts INTEGER NOT NULL,
    started_at TIMESTAMP,
    ended_at TIMESTAMP,
    duration_s DOUBLE,
    error VARCHAR,
    output_notebook VARCHAR,
    reason VARCHAR,                     -- why it ran or was skipped (up_to_date) in this run
    PRIMARY KEY (run_id, task)
);
CREATE TABLE IF NOT EXISTS attempts (
    run_id VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    attempt INTEGER NOT NULL,           -- 1, 2, ...
    state VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    duration_s DOUBLE,
    parameters JSON,                    -- everything injected: overrides, upstream, product
    kernel_name VARCHAR,
    source_hash VARCHAR,
    output_notebook VARCHAR,            -- the executed notebook, kept for failed attempts too
    log_path VARCHAR,
    error VARCHAR,                      -- one line: exception name and message
    traceback VARCHAR,
    fingerprint VARCHAR,                -- code, parameters, kernel and upstreams, hashed
    products JSON,                      -- declared products written: path -> sha256 (success only)
    worker VARCHAR,                     -- the Dask worker that ran it (null: this machine's kernels)
    PRIMARY KEY (run_id, task, attempt)
);
CREATE SEQUENCE IF NOT EXISTS notification_seq;
CREATE TABLE IF NOT EXISTS notifications (
    id BIGINT PRIMARY KEY DEFAULT nextval('notification_seq'),
    run_id VARCHAR NOT NULL,
    task VARCHAR,                       -- null for a run's own alerts (run_end)
    attempt INTEGER,
    event VARCHAR NOT NULL,             -- failure | retry | success | run_end
    channel VARCHAR NOT NULL,           -- email | webhook
    ok BOOLEAN NOT NULL,
    error VARCHAR,                      -- why a delivery failed
    sent_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS logs (
    run_id VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    attempt INTEGER NOT NULL,
    text VARCHAR,                       -- captured stdout/stderr, capped (a marker shows the cut)
    PRIMARY KEY (run_id, task, attempt)
);
"""

#: the tables holding records, in the order a copy fills them
TABLES = tuple(TABLE_COLUMNS)


def check(con: duckdb.DuckDBPyConnection, path: str, database: str | None = None) -> bool:
    """Whether the file (``database``, default the connection's own) holds today's schema.

    False if it holds no nbflow table yet (a new or empty file). Raises
    :class:`StoreSchemaError` if it holds another version's tables.
    """
    where = "database_name = coalesce(?, current_database()) AND schema_name = 'main'"
    found: dict[str, list[str]] = {}
    for table, column in con.execute(
        f"SELECT table_name, column_name FROM duckdb_columns() WHERE {where} ORDER BY table_name, column_index",
        [database],
    ).fetchall():
        found.setdefault(table, []).append(column)
    ours = [t for t in ("nbflow_meta", *TABLES) if t in found]
    if not ours:
        return False
    version: str | None = None
    if "nbflow_meta" in found:
        meta = f"{database}.main.nbflow_meta" if database else "nbflow_meta"
        row = con.execute(f"SELECT value FROM {meta} WHERE key = 'schema_version'").fetchone()
        version = None if row is None else str(row[0])
    if version != str(SCHEMA_VERSION):
        raise StoreSchemaError(path, version, SCHEMA_VERSION)
    for table, columns in TABLE_COLUMNS.items():
        if found.get(table) != columns:
            raise StoreSchemaError(path, version, SCHEMA_VERSION, _difference(table, found.get(table), columns))
    return True


def _difference(table: str, have: list[str] | None, want: list[str]) -> str:
    if have is None:
        return f"it has no {table} table"
    lacks = [c for c in want if c not in have]
    extra = [c for c in have if c not in want]
    if lacks:
        return f"its {table} table lacks {', '.join(lacks)}"
    if extra:
        return f"its {table} table has {', '.join(extra)} too"
    return f"its {table} table has its columns in another order"


def create(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Create today's tables in a file holding none of nbflow's; check them in one that does."""
    con.execute("BEGIN TRANSACTION")
    if not check(con, path):
        con.execute(SCHEMA)
        con.execute("INSERT INTO nbflow_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    con.execute("COMMIT")
