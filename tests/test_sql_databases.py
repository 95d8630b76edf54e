"""SQL tasks on databases: statements run on PostgreSQL and MariaDB, results streamed as Arrow
to Parquet, CSV and S3 (moto), upstream files staged as temporary tables, tables replaced.

Real throwaway servers on 127.0.0.1 (``tests/servers_plugin.py``); nothing is mocked.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pymysql
import pytest

from nbflow.pipeline import Pipeline
from nbflow.project.sql import (
    is_query,
    mentioned,
    placeholders,
    read_header,
    render_placeholders,
    split_statements,
)
from tests.conftest import nbflow_process

# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    """A name no other test uses on the shared servers."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def project(folder: Path, monkeypatch: pytest.MonkeyPatch, settings: str = "", **connections: str) -> None:
    """Write ``nbflow.toml`` naming each connection's variable, and set the variables."""
    lines = [settings, "[connections]"]
    for name, uri in connections.items():
        variable = f"NBFLOW_TEST_{name.upper()}_{uuid.uuid4().hex[:6].upper()}"
        monkeypatch.setenv(variable, uri)
        lines.append(f'{name} = "{variable}"')
    (folder / "nbflow.toml").write_text("\n".join(lines) + "\n")


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text)


def postgres(url: str, *statements: str) -> list[tuple[Any, ...]]:
    """Run statements on the PostgreSQL server (committed); the last one's rows, if any."""
    rows: list[tuple[Any, ...]] = []
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            cur = conn.execute(statement)
            rows = cur.fetchall() if cur.description else []
    return rows


def mysql(url: str, *statements: str) -> list[tuple[Any, ...]]:
    parts = urlsplit(url)
    conn = pymysql.connect(
        host=parts.hostname,
        port=parts.port,
        user=parts.username,
        password=unquote(parts.password or ""),
        database=parts.path.lstrip("/"),
        autocommit=True,
    )
    rows: list[tuple[Any, ...]] = []
    with conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
            rows = list(cur.fetchall())
    return rows


def run(folder: Path, **kwargs: Any) -> Any:
    return Pipeline.from_dir(folder).run(workers=2, **kwargs)


def log_of(folder: Path, result: Any, task: str, attempt: int = 1) -> str:
    with Pipeline.from_dir(folder).open_store() as store:
        return store.get_log(result.run_id, task, attempt) or ""


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port of 127.0.0.1 that refuses connections: bound by this test, never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    return parts._replace(netloc=netloc).geturl()


# ------------------------------------------------------------------------------------------
# The SQL text: statements, placeholders, names (pure)
# ------------------------------------------------------------------------------------------


def test_statements_split_at_semicolons_outside_strings_quotes_and_comments() -> None:
    sql = (
        "CREATE TABLE t AS SELECT 'a;b' AS x, $tag$ ; $tag$ AS y, E'\\';' AS z; /* ; /* nested ; */ ; */\n"
        'INSERT INTO "semi;colon" VALUES (1); -- ; a comment\n'
        "   \n-- only a comment;\n"
    )
    statements = split_statements(sql, "postgresql")
    assert [s.text for s in statements] == [
        "CREATE TABLE t AS SELECT 'a;b' AS x, $tag$ ; $tag$ AS y, E'\\';' AS z",
        'INSERT INTO "semi;colon" VALUES (1)',
    ]
    assert [s.line for s in statements] == [1, 2]
    mysql_sql = "SELECT 'it\\'s;', \"q;\", `a;b` # ; comment\n;\nSELECT 2 -- ;\n"
    assert [s.text for s in split_statements(mysql_sql, "mysql")] == [
        "SELECT 'it\\'s;', \"q;\", `a;b` # ; comment",
        "SELECT 2 -- ;",
    ]


def test_a_query_is_a_select_values_table_or_a_with_ending_in_one() -> None:
    assert is_query("SELECT 1", "postgresql")
    assert is_query("(SELECT 1) UNION (SELECT 2)", "postgresql")
    assert is_query("WITH x AS (SELECT 1) SELECT * FROM x", "postgresql")
    assert not is_query("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", "postgresql")
    assert not is_query("INSERT INTO t SELECT 1", "mysql")
    assert not is_query("-- SELECT\nUPDATE t SET x = 1", "mysql")


def test_placeholders_are_the_drivers_and_a_stray_percent_is_named() -> None:
    assert placeholders("SELECT %(a)s, %(b)s, %(a)s, '100%%'") == ("a", "b")
    assert placeholders("SELECT 'x%' LIKE 'x%'") == ()  # no parameter: % is literal, as the drivers read it
    with pytest.raises(ValueError, match="write a literal % as %%"):
        placeholders("SELECT %(a)s WHERE name LIKE 'x%'")
    assert render_placeholders("SELECT %(a)s, '%%', %(b)s", lambda n: f"${n}") == "SELECT $a, '%', $b"


def test_mentioned_names_are_words_or_quoted_names_outside_strings_and_comments() -> None:
    sql = "SELECT * FROM Clean JOIN \"features_train\" ON true -- raw\nWHERE s = 'raw'"
    assert mentioned(sql, "postgresql", {"clean", "features_train", "raw"}) == {"clean", "features_train"}


def test_the_connection_is_declared_in_the_header_and_is_not_a_parameter() -> None:
    header = read_header('-- connection = "warehouse"\n-- cutoff = "2024-01-01"\nSELECT 1;\n', "x.sql")
    assert header.connection == "warehouse"
    assert header.params.defaults == {"cutoff": "'2024-01-01'"}
    assert header.lines == 2


# ------------------------------------------------------------------------------------------
# Extract
# ------------------------------------------------------------------------------------------


def test_a_postgres_query_with_a_bound_parameter_is_written_as_typed_parquet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    events = unique("events")
    postgres(
        postgres_url,
        f"CREATE TABLE {events} AS SELECT g AS id, g * 1.5::float8 AS amount, 'user_' || g AS name, "
        "timestamp '2024-01-01' + g * interval '1 day' AS at FROM generate_series(1, 100) g",
    )
    project(tmp_path, monkeypatch, warehouse=postgres_url)
    write(
        tmp_path,
        "extract.sql",
        '-- connection = "warehouse"\n'
        '-- product = "out/events.parquet"\n'
        '-- cutoff = "2024-03-01"\n'
        f"SELECT id, amount, name, at FROM {events} WHERE at >= %(cutoff)s ORDER BY id;\n",
    )
    result = run(tmp_path, params={"extract.cutoff": "2024-04-01"})
    assert result.states == {"extract": "success"}, result.tasks["extract"].error
    table = pq.read_table(tmp_path / "out/events.parquet")
    assert table.schema.types == [pa.int32(), pa.float64(), pa.string(), pa.timestamp("us")]
    assert table.column("id").to_pylist() == list(range(91, 101))  # 2024-01-01 + 91 days = 2024-04-01
    assert table.column("name")[0].as_py() == "user_91"
    log = log_of(tmp_path, result, "extract")
    assert "-- connection warehouse: postgresql://nbflow@127.0.0.1:" in log
    assert "10 rows written to" in log


def test_a_mariadb_query_streams_typed_columns_to_csv_and_parquet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mysql_url: str
) -> None:
    sales = unique("sales")
    mysql(
        mysql_url,
        f"CREATE TABLE {sales} (id BIGINT, price DECIMAL(10,2), label TEXT, at DATETIME(6), day DATE, note TEXT)",
        f"INSERT INTO {sales} VALUES (1, 9.99, 'a,b \"c\"', '2024-01-02 03:04:05.123456', '2024-01-02', NULL),"
        f" (2, 0.50, 'line\nbreak', '2024-02-01 00:00:00', '2024-02-01', ''),"
        f" (3, 1.00, 'skip', '2023-01-01 00:00:00', '2023-01-01', 'x')",
    )
    project(tmp_path, monkeypatch, shop=mysql_url)
    query = f"FROM {sales} WHERE day >= %(since)s ORDER BY id;\n"
    header = '-- connection = "shop"\n-- since = "2024-01-01"\n'
    write(tmp_path, "to_parquet.sql", header + '-- product = "out/sales.parquet"\nSELECT * ' + query)
    write(tmp_path, "to_csv.sql", header + '-- product = "out/sales.csv"\nSELECT id, label, note ' + query)
    result = run(tmp_path)
    assert result.ok, {t: r.error for t, r in result.tasks.items()}
    table = pq.read_table(tmp_path / "out/sales.parquet")
    assert dict(zip(table.schema.names, table.schema.types, strict=True)) == {
        "id": pa.int64(),
        "price": pa.decimal128(11, 2),
        "label": pa.string(),
        "at": pa.timestamp("us"),
        "day": pa.date32(),
        "note": pa.string(),
    }
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == [1, 2]
    assert rows[0]["label"] == 'a,b "c"' and rows[1]["label"] == "line\nbreak"
    assert rows[0]["at"].microsecond == 123456
    assert rows[0]["note"] is None and rows[1]["note"] == ""
    options = pcsv.ConvertOptions(strings_can_be_null=True, quoted_strings_can_be_null=False)
    csv = pcsv.read_csv(tmp_path / "out/sales.csv", convert_options=options).to_pylist()
    assert csv == [
        {"id": 1, "label": 'a,b "c"', "note": None},
        {"id": 2, "label": "line\nbreak", "note": ""},
    ]


# ------------------------------------------------------------------------------------------
# Load
# ------------------------------------------------------------------------------------------

MAKE_CLEAN = (
    '-- product = "out/clean.parquet"\n'
    "SELECT range AS id, range % 3 AS grp, 'name ' || range::VARCHAR AS name, "
    "TIMESTAMP '2024-01-01' + range * INTERVAL 1 HOUR AS at FROM range(30);\n"
)


def test_an_upstream_parquet_is_staged_and_a_select_replaces_a_postgres_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    summary = unique("summary")
    postgres(postgres_url, f"CREATE TABLE {summary} (old int)", f"INSERT INTO {summary} VALUES (1)")
    project(tmp_path, monkeypatch, warehouse=postgres_url)
    write(tmp_path, "clean.sql", MAKE_CLEAN)
    write(
        tmp_path,
        "summarize.sql",
        '-- connection = "warehouse"\n'
        '-- upstream = ["clean"]\n'
        f'-- product = "table://warehouse/public.{summary}"\n'
        "-- min_grp = 1\n"
        "SELECT grp, count(*) AS n, max(at) AS last FROM clean WHERE grp >= %(min_grp)s GROUP BY grp ORDER BY grp;\n",
    )
    result = run(tmp_path)
    assert result.ok, {t: r.error for t, r in result.tasks.items()}
    assert postgres(postgres_url, f"SELECT grp, n FROM {summary} ORDER BY grp") == [(1, 10), (2, 10)]
    leftovers = postgres(postgres_url, f"SELECT count(*) FROM pg_tables WHERE tablename LIKE '{summary}__nbflow%'")
    assert leftovers == [(0,)]
    log = log_of(tmp_path, result, "summarize")
    assert "-- staged clean: 30 rows from" in log and "2 rows replaced table://warehouse/" in log


def test_sql_writes_a_table_itself_from_a_staged_file_on_mariadb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mysql_url: str
) -> None:
    summary = unique("summary")
    project(tmp_path, monkeypatch, shop=mysql_url)
    write(tmp_path, "clean.sql", MAKE_CLEAN)
    write(
        tmp_path,
        "load.sql",
        '-- connection = "shop"\n'
        '-- upstream = ["clean"]\n'
        f'-- product = "table://shop/{summary}"\n'
        f"CREATE TABLE IF NOT EXISTS {summary} (grp BIGINT, n BIGINT, first_name TEXT);\n"
        f"DELETE FROM {summary};\n"
        f"INSERT INTO {summary} SELECT grp, count(*), min(name) FROM clean GROUP BY grp;\n",
    )
    for _ in range(2):  # the second run replaces what the first wrote
        result = run(tmp_path, force=True)
        assert result.ok, {t: r.error for t, r in result.tasks.items()}
    rows = mysql(mysql_url, f"SELECT grp, n, first_name FROM {summary} ORDER BY grp")
    assert rows == [(0, 10, "name 0"), (1, 10, "name 1"), (2, 10, "name 11")]
    log = log_of(tmp_path, result, "load")
    assert "-- staged clean: 30 rows" in log and "INSERT INTO" in log and "--   3 rows" in log


# ------------------------------------------------------------------------------------------
# S3
# ------------------------------------------------------------------------------------------


def test_an_s3_parquet_product_is_read_by_a_downstream_duckdb_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str, s3_server: Any
) -> None:
    bucket = unique("lake").replace("_", "-")
    lake = s3_server.create_bucket(bucket)
    project(tmp_path, monkeypatch, warehouse=postgres_url, lake=lake)
    write(
        tmp_path,
        "extract.sql",
        '-- connection = "warehouse"\n'
        f'-- product = "s3://{bucket}/raw/numbers.parquet"\n'
        "SELECT g AS n, g * g AS sq FROM generate_series(1, 1000) g;\n",
    )
    write(
        tmp_path,
        "report.sql",
        '-- upstream = ["extract"]\n'
        f'-- product = "s3://{bucket}/reports/total.parquet"\n'
        "SELECT count(*) AS rows, sum(sq) AS total FROM extract;\n",
    )
    write(
        tmp_path,
        "local.sql",
        '-- upstream = ["report"]\n-- product = "out/total.csv"\nSELECT * FROM report;\n',
    )
    result = run(tmp_path)
    assert result.ok, {t: r.error for t, r in result.tasks.items()}
    keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {"raw/numbers.parquet", "reports/total.parquet"}
    total = sum(g * g for g in range(1, 1001))
    assert duckdb.sql(f"SELECT * FROM read_csv('{tmp_path / 'out/total.csv'}')").fetchall() == [(1000, total)]


# ------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------

EVIL = "x'); DROP TABLE {victims}; --"


@pytest.mark.parametrize("system", ["postgresql", "mysql"])
def test_an_injection_through_a_parameter_stays_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, system: str, postgres_url: str, mysql_url: str
) -> None:
    victims = unique("victims")
    url, execute = (postgres_url, postgres) if system == "postgresql" else (mysql_url, mysql)
    execute(url, f"CREATE TABLE {victims} (name TEXT)")
    project(tmp_path, monkeypatch, db=url)
    write(
        tmp_path,
        "insert.sql",
        f'-- connection = "db"\n-- name = "nobody"\nINSERT INTO {victims} VALUES (%(name)s);\n',
    )
    evil = EVIL.format(victims=victims)
    result = run(tmp_path, params={"name": evil})
    assert result.ok, result.tasks["insert"].error
    assert execute(url, f"SELECT name FROM {victims}") == [(evil,)]


def test_a_name_the_header_does_not_declare_fails_naming_it_before_connecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused_port: int
) -> None:
    project(tmp_path, monkeypatch, warehouse=f"postgresql://u:secretpw@127.0.0.1:{refused_port}/db")
    write(
        tmp_path,
        "typo.sql",
        '-- connection = "warehouse"\n-- cutoff = 1\nSELECT 1;\nSELECT %(cutof)s, %(cutoff)s;\n',
    )
    result = run(tmp_path)
    assert result.states == {"typo": "failed"}
    error = result.tasks["typo"].error
    assert error.startswith("ValueError") and "%(cutof)s" in error and "statement 2 (line 4)" in error


# ------------------------------------------------------------------------------------------
# Connection errors, cancels
# ------------------------------------------------------------------------------------------


def test_a_wrong_password_fails_with_connection_error_and_the_password_is_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    password = "Wr0ng-" + uuid.uuid4().hex
    (tmp_path / "nbflow.toml").write_text('connection_retries = 0\n[connections]\nwarehouse = "NBFLOW_TEST_BAD_PG"\n')
    write(tmp_path, "extract.sql", '-- connection = "warehouse"\n-- product = "x.parquet"\nSELECT 1 AS one;\n')
    monkeypatch.setenv("NBFLOW_TEST_BAD_PG", with_password(postgres_url, password))
    proc = nbflow_process("run", str(tmp_path), "--json")
    assert proc.returncode == 1, proc.stderr
    task = json.loads(proc.stdout)["tasks"]["extract"]
    assert task["state"] == "failed"
    assert task["error"].startswith("ConnectionError: could not connect to 'warehouse' (postgresql://nbflow@127.0.0.1:")
    assert "password authentication failed" in task["error"]
    assert password not in proc.stdout + proc.stderr
    for path in tmp_path.rglob("*"):  # the store, its write-ahead files, the logs
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
    store = tmp_path / "_nbflow" / "state.duckdb"
    with duckdb.connect(str(store), read_only=True) as con:
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
            for row in con.execute(f'SELECT * FROM "{table}"').fetchall():
                assert password not in repr(row), table
        errors = con.execute("SELECT error FROM attempts").fetchall()
    assert errors and all(e[0].startswith("ConnectionError") for e in errors)


def test_the_log_masks_the_connections_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    password = unquote(urlsplit(postgres_url).password or "")
    project(tmp_path, monkeypatch, warehouse=postgres_url)
    write(tmp_path, "echo.sql", '-- connection = "warehouse"\n-- value = "x"\nSELECT %(value)s AS shown;\n')
    result = run(tmp_path, params={"value": password})
    assert result.ok, result.tasks["echo"].error
    log = log_of(tmp_path, result, "echo")
    assert "[secret]" in log and password not in log
    for path in (tmp_path / "_nbflow").rglob("*.log"):
        assert password not in path.read_text()


def test_an_unreachable_server_fails_its_task_and_the_other_branch_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused_port: int
) -> None:
    project(
        tmp_path,
        monkeypatch,
        "retry_delay = 0\n",
        gone=f"mysql://u:pw-{uuid.uuid4().hex}@127.0.0.1:{refused_port}/db",
    )
    write(tmp_path, "clean.sql", MAKE_CLEAN)
    write(tmp_path, "remote.sql", '-- connection = "gone"\n-- upstream = ["clean"]\nSELECT count(*) FROM clean;\n')
    write(
        tmp_path, "report.sql", '-- upstream = ["clean"]\n-- product = "out/n.csv"\nSELECT count(*) AS n FROM clean;\n'
    )
    result = run(tmp_path)
    assert result.states == {"clean": "success", "remote": "failed", "report": "success"}
    error = result.tasks["remote"].error
    assert error.startswith(f"ConnectionError: could not connect to 'gone' (mysql://u@127.0.0.1:{refused_port}/db)")
    assert result.tasks["remote"].attempts == 3  # a connection error is retried (connection_retries = 2)


def _wait_until(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.mark.parametrize("system", ["postgresql", "mysql"])
def test_a_timeout_cancels_the_running_query_on_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, system: str, postgres_url: str, mysql_url: str
) -> None:
    marker = unique("endless")
    if system == "postgresql":
        url, sleep = postgres_url, f"SELECT pg_sleep(120), '{marker}'"
        running = f"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%{marker}%' AND pid <> pg_backend_pid()"
        execute = postgres
    else:
        url, sleep = mysql_url, f"SELECT SLEEP(120), '{marker}'"
        running = f"SELECT count(*) FROM information_schema.processlist WHERE info LIKE '%{marker}%' AND id <> connection_id()"
        execute = mysql
    project(tmp_path, monkeypatch, "[tasks.endless]\ntimeout = 1\nretry_on_timeout = false\n", db=url)
    write(tmp_path, "endless.sql", f'-- connection = "db"\n{sleep};\n')
    started = time.monotonic()
    result = run(tmp_path)
    assert result.states == {"endless": "failed"}
    assert result.tasks["endless"].error.startswith("TaskTimeout")
    assert time.monotonic() - started < 30
    assert _wait_until(lambda: execute(url, running) == [(0,)]), "the query still runs on the server"
