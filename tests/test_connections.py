"""Named connections: parsing, settings, the checks before a run, ``nbflow.connect`` in real
notebooks against real PostgreSQL, MariaDB and S3 servers, and credentials never written down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import duckdb
import pytest

from nbflow.errors import (
    ClientUnavailableError,
    ConnectionVariableError,
    InvalidSettingsError,
    UnknownConnectionError,
)
from nbflow.project.connections import (
    connection_secrets,
    known_connections,
    parse_connection,
    parse_connections_table,
    resolve_connection,
)
from nbflow.project.secrets import Redactor
from nbflow.project.settings import load_project
from nbflow.systems.connect import connect, connection
from tests.conftest import write_notebook

PASSWORD = "p@ss/w:rd+%!"  # every character that a URI must encode
ENCODED = quote(PASSWORD, safe="")


# -- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "system", "host", "port", "user", "database"),
    [
        (f"postgresql://ana:{ENCODED}@db.internal:6543/sales", "postgresql", "db.internal", 6543, "ana", "sales"),
        (f"postgres://ana:{ENCODED}@db.internal/sales", "postgresql", "db.internal", 5432, "ana", "sales"),
        (f"mysql://ana:{ENCODED}@db.internal/shop", "mysql", "db.internal", 3306, "ana", "shop"),
        (f"mariadb://ana:{ENCODED}@db.internal:3307/shop", "mysql", "db.internal", 3307, "ana", "shop"),
        (f"mongodb://ana:{ENCODED}@mongo.internal/events", "mongodb", "mongo.internal", 27017, "ana", "events"),
    ],
)
def test_database_uris_give_system_host_default_port_user_and_database(
    uri: str, system: str, host: str, port: int, user: str, database: str
) -> None:
    conn = parse_connection("db", uri, "DB_URL")
    assert (conn.system, conn.host, conn.port, conn.user, conn.database) == (system, host, port, user, database)
    assert conn.password == PASSWORD, "the password is URL-decoded"
    assert conn.variable == "DB_URL" and conn.name == "db"


def test_s3_and_aws_uris_give_bucket_keys_endpoint_and_region() -> None:
    s3 = parse_connection(
        "lake", f"s3://AKIDEXAMPLE:{ENCODED}@my-bucket?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-west-1"
    )
    assert (s3.system, s3.database, s3.user, s3.password) == ("s3", "my-bucket", "AKIDEXAMPLE", PASSWORD)
    assert (s3.endpoint, s3.region, s3.host, s3.port) == ("http://127.0.0.1:9000", "eu-west-1", None, None)
    # Airflow's aws:// form: no bucket, its own option names
    aws = parse_connection("lake", f"aws://AKIDEXAMPLE:{ENCODED}@/?region_name=us-east-2&endpoint_url=http://x:1")
    assert (aws.system, aws.database, aws.user, aws.password) == ("s3", None, "AKIDEXAMPLE", PASSWORD)
    assert (aws.region, aws.endpoint) == ("us-east-2", "http://x:1")
    # keys as query options
    keyed = parse_connection("lake", "s3://bucket-two?aws_access_key_id=AKID2&aws_secret_access_key=sekrit-2")
    assert (keyed.database, keyed.user, keyed.password) == ("bucket-two", "AKID2", "sekrit-2")


def test_airflows_uri_with_extras_as_json_keeps_them() -> None:
    extra = quote(json.dumps({"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-north-1"}), safe="")
    conn = parse_connection("lake", f"aws://AKID:{ENCODED}@/?__extra__={extra}")
    assert (conn.endpoint, conn.region, conn.password) == ("http://127.0.0.1:9000", "eu-north-1", PASSWORD)


@pytest.mark.parametrize("as_string", [False, True], ids=["extra-dict", "extra-string"])
def test_airflows_json_form_with_extra_as_a_dict_or_a_string(as_string: bool) -> None:
    extra = {"sslmode": "require", "application_name": "nbflow"}
    value = {
        "conn_type": "postgres",
        "host": "db.internal",
        "login": "ana",
        "password": PASSWORD,
        "schema": "sales",
        "extra": json.dumps(extra) if as_string else extra,
    }
    conn = parse_connection("warehouse", json.dumps(value), "AIRFLOW_CONN_WAREHOUSE")
    assert (conn.system, conn.host, conn.port, conn.user, conn.password) == (
        "postgresql",
        "db.internal",
        5432,
        "ana",
        PASSWORD,
    )
    assert conn.database == "sales" and dict(conn.options) == extra
    aws = parse_connection(
        "lake",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "AKID",
                "password": PASSWORD,
                "extra": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "us-east-1", "bucket": "raw"},
            }
        ),
    )
    assert (aws.system, aws.user, aws.password, aws.database) == ("s3", "AKID", PASSWORD, "raw")
    assert (aws.endpoint, aws.region) == ("http://127.0.0.1:9000", "us-east-1")
    mysql = parse_connection("shop", json.dumps({"conn_type": "mysql", "host": "h", "port": "3310", "login": "u"}))
    assert (mysql.system, mysql.port, mysql.password) == ("mysql", 3310, None)


def test_describe_and_repr_never_show_the_password_and_secrets_list_every_form() -> None:
    uri = f"postgresql://ana:{ENCODED}@db.internal:6543/sales?sslmode=require"
    conn = parse_connection("warehouse", uri, "WAREHOUSE_URL")
    assert conn.describe() == "postgresql://ana@db.internal:6543/sales"
    s3 = parse_connection(
        "lake", f"s3://AKID:{ENCODED}@raw?endpoint=http://127.0.0.1:9000&aws_session_token=tok-123456"
    )
    assert s3.describe() == "s3://raw at http://127.0.0.1:9000"
    for c in (conn, s3):
        shown = repr(c) + c.describe() + str(c)
        for form in (PASSWORD, ENCODED, "tok-123456"):
            assert form not in shown
    assert {uri, PASSWORD, ENCODED} <= set(conn.secrets())
    assert "tok-123456" in s3.secrets(), "a session token is a credential too"
    # what a redactor built from them leaves of text that shows the password in any of its forms
    text = f"dsn={uri} pw={PASSWORD} encoded={ENCODED} repr={PASSWORD!r}"
    assert Redactor(conn.secrets()).text(text) == "dsn=[secret] pw=[secret] encoded=[secret] repr='[secret]'"


def test_a_password_encoded_otherwise_in_the_uri_is_a_secret_in_that_form_too() -> None:
    raw = "pa%2fss%21word"  # lower-case escapes, an escaped "!" that quote() would also escape
    conn = parse_connection("warehouse", f"postgresql://ana:{raw}@h/db")
    assert conn.password == "pa/ss!word"
    assert raw in conn.secrets() and "pa/ss!word" in conn.secrets()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (f"ftp://ana:{PASSWORD}@host/x", "scheme 'ftp'"),
        (f"postgresql://ana:{ENCODED}@host:notaport/db", "not hold a valid URI"),
        (f'{{"conn_type": "postgres", "password": "{PASSWORD}"', "neither a URI nor valid JSON"),
        (f'{{"conn_type": "oracle", "password": "{PASSWORD}"}}', "conn_type 'oracle'"),
        (f'["{PASSWORD}"]', "neither a URI"),
        (f"token-{PASSWORD}", "neither a URI"),
    ],
)
def test_a_value_nbflow_cannot_use_is_named_by_its_variable_never_shown(value: str, says: str) -> None:
    with pytest.raises(ConnectionVariableError) as caught:
        parse_connection("warehouse", value, "WAREHOUSE_URL")
    message = str(caught.value)
    assert "WAREHOUSE_URL" in message and says in message, message
    assert PASSWORD not in message and ENCODED not in message


def test_names_resolve_from_the_settings_then_airflows_variables() -> None:
    declared = {"warehouse": "WAREHOUSE_URL"}
    environ = {
        "WAREHOUSE_URL": f"postgresql://ana:{ENCODED}@h/db",
        "AIRFLOW_CONN_SHOP": f"mysql://bo:{ENCODED}@h/shop",
        "AIRFLOW_CONN_": "ignored: no name",
    }
    assert known_connections(declared, environ) == ["shop", "warehouse"]
    assert resolve_connection("warehouse", declared, environ).variable == "WAREHOUSE_URL"
    assert resolve_connection("shop", declared, environ).system == "mysql"
    with pytest.raises(UnknownConnectionError) as unknown:
        resolve_connection("nowhere", declared, environ, used_by="load.ipynb")
    message = str(unknown.value)
    assert "load.ipynb uses the connection 'nowhere'" in message and "Known connections: shop, warehouse" in message
    assert "AIRFLOW_CONN_NOWHERE" in message
    with pytest.raises(ConnectionVariableError, match="WAREHOUSE_URL, which is not set"):
        resolve_connection("warehouse", declared, {})
    # what a run masks: every usable connection's credentials, and a value it cannot parse whole
    masked = connection_secrets({**declared, "broken": "BROKEN_URL"}, {**environ, "BROKEN_URL": "gibberish-secret"})
    assert {PASSWORD, ENCODED, "gibberish-secret"} <= set(masked)


# -- settings ------------------------------------------------------------------------------


def test_connections_are_read_from_nbflow_toml_or_pyproject(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "nbflow.toml").write_text('[connections]\nwarehouse = "WAREHOUSE_URL"\nlake = "LAKE_URL"\n')
    assert dict(load_project(tmp_path / "a").connections) == {"warehouse": "WAREHOUSE_URL", "lake": "LAKE_URL"}
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.nbflow.connections]\nshop = "SHOP_URL"\n'
    )
    assert dict(load_project(tmp_path / "b").connections) == {"shop": "SHOP_URL"}
    # connection() finds them from a folder below the project, as a notebook's kernel does
    (tmp_path / "b" / "sub" / "deeper").mkdir(parents=True)
    found = connection("shop", tmp_path / "b" / "sub" / "deeper", {"SHOP_URL": f"mysql://u:{ENCODED}@h/shop"})
    assert (found.system, found.variable, found.password) == ("mysql", "SHOP_URL", PASSWORD)


@pytest.mark.parametrize(
    "value",
    [
        f'"postgresql://ana:{ENCODED}@db.internal/sales"',
        f'"ana:{PASSWORD}@db.internal"',
        json.dumps(json.dumps({"conn_type": "postgres", "password": PASSWORD})),
    ],
    ids=["uri", "no-scheme", "airflow-json"],
)
def test_a_credential_in_the_settings_is_refused_without_being_shown(tmp_path: Path, value: str) -> None:
    (tmp_path / "nbflow.toml").write_text(f"[connections]\nwarehouse = {value}\n")
    with pytest.raises(InvalidSettingsError) as caught:
        load_project(tmp_path)
    message = str(caught.value)
    assert "nbflow.toml: setting 'connections'" in message and "'warehouse'" in message
    assert "environment variable" in message, message
    assert PASSWORD not in message and ENCODED not in message and "db.internal" not in message


def test_the_connections_table_must_map_names_to_variables() -> None:
    assert parse_connections_table({"warehouse": "WAREHOUSE_URL", "raw.lake-2": "LAKE"}) == {
        "warehouse": "WAREHOUSE_URL",
        "raw.lake-2": "LAKE",
    }
    with pytest.raises(ValueError, match="must be a table"):
        parse_connections_table(["WAREHOUSE_URL"])
    with pytest.raises(ValueError, match="has '2 bad' as a connection's name"):
        parse_connections_table({"2 bad": "X"})
    with pytest.raises(ValueError, match="maps 'warehouse' to a value of type int"):
        parse_connections_table({"warehouse": 5})


def test_an_engine_a_system_does_not_offer_is_refused_before_connecting(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "nbflow.toml").write_text('[connections]\nshop = "SHOP_URL"\n')
    monkeypatch.setenv("SHOP_URL", f"mysql://u:{ENCODED}@127.0.0.1:1/shop")
    with pytest.raises(ClientUnavailableError) as caught:
        connect("shop", engine="adbc", folder=tmp_path)
    assert "'shop' (mysql) has no engine 'adbc' (engines: 'sqlalchemy')" in str(caught.value)
    assert PASSWORD not in str(caught.value)


# -- the checks before a run ---------------------------------------------------------------


def nbflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``nbflow ARGS`` as a separate process, with ``env`` added to an environment that holds
    no connection of this machine's own."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    return subprocess.run(
        [sys.executable, "-m", "nbflow", *args],
        capture_output=True,
        text=True,
        env={**base, "PYTHONWARNINGS": "ignore", **(env or {})},
        timeout=300,
    )


def _runs_recorded(root: Path) -> int:
    store = root / "_nbflow" / "state.duckdb"
    if not store.exists():
        return 0
    con = duckdb.connect(str(store), read_only=True)
    try:
        return int(con.execute("SELECT count(*) FROM runs").fetchone()[0]) + int(
            con.execute("SELECT count(*) FROM attempts").fetchone()[0]
        )
    finally:
        con.close()


def _first_task(root: Path) -> None:
    """A notebook with no upstream, which would run first and leave ``first.ran``."""
    write_notebook(root, "first", "upstream = None", "open('first.ran', 'w').write('ran')")


OTHER_URI = f"postgresql://ana:{ENCODED}@127.0.0.1:1/other"


@pytest.mark.slow  # nbflow processes and kernels
@pytest.mark.parametrize("kind", ["python", "notebook"])
def test_an_unknown_connection_exits_2_before_any_task_runs(tmp_path: Path, kind: str) -> None:
    (tmp_path / "nbflow.toml").write_text('[connections]\nwarehouse = "WAREHOUSE_URL"\n')
    _first_task(tmp_path)
    if kind == "python":
        (tmp_path / "nbflow_tasks.py").write_text(
            "def setup(pipeline):\n"
            "    @pipeline.task(upstream=['first'], product='table://nowhere/public.t')\n"
            "    def load(upstream, product):\n"
            "        open('load.ran', 'w').write('ran')\n"
        )
        user = "<python task load>"
    else:
        write_notebook(
            tmp_path, "load", "upstream = ['first']\nproduct = 'table://nowhere/public.t'", "open('load.ran', 'w')"
        )
        user = "load.ipynb"
    env = {"WAREHOUSE_URL": f"postgresql://ana:{ENCODED}@127.0.0.1:1/db", "AIRFLOW_CONN_OTHER": OTHER_URI}
    for args in (("run", str(tmp_path)), ("run", str(tmp_path), "--json")):
        proc = nbflow(*args, env=env)
        assert proc.returncode == 2, proc
        assert f"{user} uses the connection 'nowhere', which is not defined" in proc.stderr, proc.stderr
        assert "Known connections: other, warehouse" in proc.stderr
        assert "AIRFLOW_CONN_NOWHERE" in proc.stderr
        for secret in (PASSWORD, ENCODED, OTHER_URI):
            assert secret not in proc.stdout + proc.stderr
    assert not (tmp_path / "first.ran").exists() and not (tmp_path / "load.ran").exists(), "nothing ran"
    assert _runs_recorded(tmp_path) == 0, "no run was recorded"


@pytest.mark.slow  # nbflow processes and kernels
def test_a_connection_whose_variable_is_unset_or_unusable_exits_2_naming_it(tmp_path: Path) -> None:
    (tmp_path / "nbflow.toml").write_text('[connections]\nwarehouse = "NBFLOW_TEST_WAREHOUSE_URL"\n')
    _first_task(tmp_path)
    # the notebook names its connection only in code: nbflow reads the literal name
    write_notebook(tmp_path, "load", "upstream = ['first']", "import nbflow\nconn = nbflow.connect('warehouse')")
    proc = nbflow("run", str(tmp_path), "--json")
    assert proc.returncode == 2, proc
    assert "'warehouse' reads its URI from the environment variable NBFLOW_TEST_WAREHOUSE_URL, which is not set" in (
        proc.stderr
    )
    bad = f"warehouse-{PASSWORD}"
    proc = nbflow("run", str(tmp_path), "--json", env={"NBFLOW_TEST_WAREHOUSE_URL": bad})
    assert proc.returncode == 2 and "NBFLOW_TEST_WAREHOUSE_URL, which holds neither a URI" in proc.stderr, proc
    assert PASSWORD not in proc.stdout + proc.stderr
    assert not (tmp_path / "first.ran").exists() and _runs_recorded(tmp_path) == 0


# -- nbflow.connect in real notebooks, against real servers --------------------------------


def _table() -> str:
    """A table name of this test's own (the servers live for the whole test session)."""
    return f"t_{uuid.uuid4().hex[:10]}"


def _rows(url: str, sql: str) -> list[tuple]:
    """What the database answers to ``sql``, asked directly with its own client."""
    conn = parse_connection("check", url)
    if conn.system == "postgresql":
        import psycopg

        with psycopg.connect(url) as pg:
            return [tuple(r) for r in pg.execute(sql).fetchall()]
    import pymysql

    my = pymysql.connect(host=conn.host, port=conn.port, user=conn.user, password=conn.password, database=conn.database)
    with my, my.cursor() as cur:
        cur.execute(sql)
        return [tuple(r) for r in cur.fetchall()]


def _ran(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.stdout.startswith("{"), proc
    return json.loads(proc.stdout)


#: PostgreSQL only: Arrow through ADBC, beside the DB-API and SQLAlchemy clients
ADBC_CELL = (
    "adbc = nbflow.connect('warehouse', engine='adbc')\n"
    "with adbc.cursor() as cur:\n"
    "    cur.execute('SELECT count(*) AS n FROM {t}')\n"
    "    assert cur.fetch_arrow_table().column('n')[0].as_py() == 3\n"
    "adbc.close()"
)


@pytest.mark.slow  # nbflow processes and kernels
@pytest.mark.parametrize("system", ["postgresql", "mysql"])
def test_notebooks_write_through_the_dbapi_client_and_read_with_pandas_through_sqlalchemy(
    tmp_path: Path, system: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url" if system == "postgresql" else "mysql_url")
    url += "?application_name=nbflow-test" if system == "postgresql" else "?charset=utf8mb4"  # options pass on
    table = _table()
    (tmp_path / "nbflow.toml").write_text('[connections]\nwarehouse = "WAREHOUSE_URL"\n')
    write_notebook(
        tmp_path,
        "load",
        "upstream = None",
        "import nbflow\nconn = nbflow.connect('warehouse')\ncur = conn.cursor()",
        f"cur.execute('CREATE TABLE {table} (id INT, amount NUMERIC(10, 2))')\n"
        f"cur.executemany('INSERT INTO {table} VALUES (%s, %s)', [(1, 2.5), (2, 3.5), (3, 4.0)])\n"
        "conn.commit()\nconn.close()",
    )
    write_notebook(
        tmp_path,
        "report",
        "upstream = ['load']\nproduct = 'report.json'",
        "import json, nbflow, pandas as pd\n"
        "engine = nbflow.connect('warehouse', engine='sqlalchemy')\n"
        f"df = pd.read_sql('SELECT id, amount FROM {table} ORDER BY id', engine)\n"
        "json.dump({'ids': df['id'].tolist(), 'total': float(df['amount'].sum()), 'dialect': engine.dialect.name},"
        " open(product, 'w'))\n"
        "engine.dispose()",
        *([ADBC_CELL.format(t=table)] if system == "postgresql" else []),
    )
    proc = nbflow("run", str(tmp_path), "--json", env={"WAREHOUSE_URL": url})
    assert proc.returncode == 0, proc
    assert {n: t["state"] for n, t in _ran(proc)["tasks"].items()} == {"load": "success", "report": "success"}
    report = json.loads((tmp_path / "report.json").read_text())
    assert report == {"ids": [1, 2, 3], "total": 10.0, "dialect": system}
    assert _rows(url, f"SELECT id FROM {table} ORDER BY id") == [(1,), (2,), (3,)], "written in the database"


@pytest.mark.slow  # nbflow processes and kernels
def test_a_notebook_writes_an_object_through_fsspec_and_another_reads_it_with_duckdb(tmp_path: Path, s3_server) -> None:
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    lake_uri = s3_server.create_bucket(bucket)
    (tmp_path / "nbflow.toml").write_text('[connections]\nlake = "LAKE_URL"\n')
    write_notebook(
        tmp_path,
        "write",
        "upstream = None",
        "import nbflow, pandas as pd\nfs = nbflow.connect('lake')\n"
        f"with fs.open('{bucket}/sales/day1.parquet', 'wb') as f:\n"
        "    pd.DataFrame({'id': [1, 2, 3], 'amount': [2.5, 3.5, 4.0]}).to_parquet(f)",
    )
    write_notebook(
        tmp_path,
        "read",
        "upstream = ['write']\nproduct = 'total.txt'",
        "import nbflow\ncon = nbflow.connect('lake', engine='duckdb')\n"
        f"n, total = con.execute(\"SELECT count(*), sum(amount) FROM read_parquet('s3://{bucket}/sales/day1.parquet')\")"
        ".fetchone()\nopen(product, 'w').write(f'{n} {total}')",
    )
    proc = nbflow("run", str(tmp_path), "--json", env={"LAKE_URL": lake_uri})
    assert proc.returncode == 0, proc
    assert (tmp_path / "total.txt").read_text() == "3 10.0"
    head = s3_server.client().head_object(Bucket=bucket, Key="sales/day1.parquet")
    assert head["ContentLength"] > 0, "the object is in the store"


@pytest.mark.slow  # nbflow processes and kernels
def test_airflows_variable_alone_defines_a_connection(tmp_path: Path, postgres_url: str) -> None:
    url = parse_connection("pg", postgres_url)
    airflow_json = json.dumps(
        {
            "conn_type": "postgres",
            "host": url.host,
            "port": url.port,
            "login": url.user,
            "password": url.password,
            "schema": url.database,
        }
    )
    write_notebook(  # no settings file at all
        tmp_path,
        "ask",
        "upstream = None\nproduct = 'answer.txt'",
        "import nbflow\nwith nbflow.connect('warehouse') as conn:\n"
        "    user, n = conn.execute('SELECT current_user, 6 * 7').fetchone()\n"
        "open(product, 'w').write(f'{user} {n}')",
    )
    for value in (postgres_url, airflow_json):
        proc = nbflow("run", str(tmp_path), "--force", env={"AIRFLOW_CONN_WAREHOUSE": value})
        assert proc.returncode == 0, proc
        assert (tmp_path / "answer.txt").read_text() == f"{url.user} 42"
        assert url.password not in proc.stdout + proc.stderr


# -- credentials are used, never written down ----------------------------------------------


def _forms(secret: str) -> list[str]:
    """A secret as text shows it: itself, URL-encoded, escaped as repr and JSON show it."""
    return [secret, quote(secret, safe=""), repr(secret)[1:-1], json.dumps(secret)[1:-1], json.dumps(repr(secret))]


def _every_text_in_the_store(path: Path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        texts = []
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
            texts.append(json.dumps(con.execute(f'SELECT * FROM "{table}"').fetchall(), default=str))
        return "\n".join(texts)
    finally:
        con.close()


@pytest.mark.slow  # nbflow processes and kernels
def test_a_connections_password_never_reaches_a_notebook_log_store_report_or_output(
    tmp_path: Path, postgres_url: str
) -> None:
    import psycopg
    from psycopg import sql

    role = f"r_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(PASSWORD)))
    server = urlsplit(postgres_url)
    uri = urlunsplit(server._replace(netloc=f"{role}:{ENCODED}@{server.hostname}:{server.port}"))
    (tmp_path / "nbflow.toml").write_text('[connections]\nwarehouse = "WAREHOUSE_URL"\n')
    write_notebook(
        tmp_path,
        "leaky",
        "upstream = None\nproduct = 'who.txt'",
        "import os, nbflow\nfrom nbflow.systems.connect import connection\n"
        "conn = nbflow.connect('warehouse')\n"
        "open(product, 'w').write(conn.execute('SELECT current_user').fetchone()[0])\n"
        "c = connection('warehouse')\n"
        "print('uri is', os.environ['WAREHOUSE_URL'])\n"
        "print('password is', c.password, repr(c.password), conn.info.password)",
        "from IPython.display import JSON, display\ndisplay(JSON({'dsn': c.uri, 'pw': c.password}))\nc.password",
        "raise RuntimeError(f'the server refused {c.password} (from {c.uri})')",
    )
    env = {"WAREHOUSE_URL": uri}
    run = nbflow("run", str(tmp_path), "--json", env=env)
    assert run.returncode == 1, run
    assert (tmp_path / "who.txt").read_text() == role, "the notebook used the password"
    task = _ran(run)["tasks"]["leaky"]
    assert task["state"] == "failed" and task["error"].startswith("RuntimeError: the server refused [secret]")
    logs = nbflow("logs", str(tmp_path), "leaky", env=env)
    assert logs.returncode == 0 and "password is [secret]" in logs.stdout, logs
    report = tmp_path / "report.html"
    assert nbflow("report", str(tmp_path), "-o", str(report), env=env).returncode == 0
    written = [p for p in (tmp_path / "_nbflow").rglob("*") if p.is_file()]
    assert any(p.suffix == ".ipynb" for p in written) and any(p.suffix == ".log" for p in written)
    texts = [run.stdout, run.stderr, logs.stdout, logs.stderr, report.read_text()]
    texts.append(_every_text_in_the_store(tmp_path / "_nbflow" / "state.duckdb"))
    texts += [p.read_bytes().decode("utf-8", errors="replace") for p in written]
    everything = "\n".join(texts)
    assert "uri is [secret]" in everything and "the server refused [secret]" in everything
    for form in _forms(PASSWORD) + [uri]:
        assert form not in everything, f"{form!r} was written down"


@pytest.mark.slow  # nbflow processes and kernels
def test_a_wrong_password_or_a_closed_port_fails_the_task_clearly(
    tmp_path: Path, postgres_url: str, mysql_url: str
) -> None:
    from tests.conftest import free_port

    wrong = "wrong-Passw0rd-123"
    urls = {}
    for system, url in (("pg", postgres_url), ("my", mysql_url)):
        parts = urlsplit(url)
        urls[f"{system}_badpw"] = urlunsplit(parts._replace(netloc=f"nbflow:{wrong}@{parts.hostname}:{parts.port}"))
        urls[f"{system}_down"] = urlunsplit(parts._replace(netloc=f"nbflow:{wrong}@127.0.0.1:{free_port()}"))
    (tmp_path / "nbflow.toml").write_text("[connections]\n" + "".join(f'{name} = "{name.upper()}"\n' for name in urls))
    for name in urls:
        write_notebook(tmp_path, name, "upstream = None", f"import nbflow\nconn = nbflow.connect('{name}')")
    run = nbflow("run", str(tmp_path), "--json", env={name.upper(): url for name, url in urls.items()})
    assert run.returncode == 1, run
    tasks = _ran(run)["tasks"]
    assert {n: t["state"] for n, t in tasks.items()} == dict.fromkeys(urls, "failed")
    errors = {n: t["error"] for n, t in tasks.items()}
    assert 'password authentication failed for user "nbflow"' in errors["pg_badpw"]
    assert "Connection refused" in errors["pg_down"]
    assert "Access denied for user 'nbflow'" in errors["my_badpw"]
    assert "Can't connect to MySQL server on '127.0.0.1'" in errors["my_down"]
    # what each client raises: the name retry rules match (not "ConnectionError": tried once)
    assert {n: e.split(":")[0] for n, e in errors.items()} == dict.fromkeys(urls, "OperationalError")
    assert {n: t["attempts"] for n, t in tasks.items()} == dict.fromkeys(urls, 1)
    assert wrong not in run.stdout + run.stderr


def test_an_object_product_is_refused_while_a_declared_connection_cannot_be_read(tmp_path: Path, monkeypatch) -> None:
    """The S3 connection of an object is chosen from the URIs; an unset one might be it, so the
    run stops (exit 2) instead of reaching S3 with the environment's credentials."""
    from nbflow import Pipeline
    from nbflow.errors import PipelineValidationError

    (tmp_path / "nbflow.toml").write_text('[connections]\nlake = "LAKE_URL_UNSET"\n')
    write_notebook(tmp_path, "export", "upstream = None\nproduct = 's3://lake/out.parquet'", "pass")
    monkeypatch.delenv("LAKE_URL_UNSET", raising=False)
    pipeline = Pipeline.from_dir(tmp_path)
    with pytest.raises(PipelineValidationError, match="LAKE_URL_UNSET, which is not set"):
        pipeline.validate_secrets(["export"])
    monkeypatch.setenv("LAKE_URL_UNSET", "s3://KEY:SECRETVALUE@lake?endpoint=http%3A%2F%2F127.0.0.1%3A9")
    pipeline.validate_secrets(["export"])  # readable now: the run may go on
