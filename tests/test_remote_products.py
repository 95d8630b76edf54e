"""Products that are objects in S3 and tables in PostgreSQL or MariaDB: checked after each
attempt, checksummed into the store, and planned like files (up to date, missing, changed)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import duckdb
import pytest

from tests.conftest import free_port, write_notebook

#: every test runs pipelines in nbflow processes, with kernels
pytestmark = pytest.mark.slow


def nbflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``nbflow ARGS`` as a separate process, with the connections' variables in ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    return subprocess.run(
        [sys.executable, "-m", "nbflow", *args],
        capture_output=True,
        text=True,
        env={**base, "PYTHONWARNINGS": "ignore", **env},
        timeout=300,
    )


def run_json(root: Path, env: dict[str, str], *args: str, code: int = 0) -> dict[str, Any]:
    proc = nbflow("run", str(root), "--json", *args, env=env)
    assert proc.returncode == code and proc.stdout.startswith("{"), proc
    return json.loads(proc.stdout)


def states(run: dict[str, Any]) -> dict[str, str]:
    return {name: task["state"] for name, task in run["tasks"].items()}


def recorded_products(root: Path, run_id: str, task: str) -> dict[str, str]:
    """The product checksums the store holds for a task's last attempt in a run."""
    con = duckdb.connect(str(root / "_nbflow" / "state.duckdb"), read_only=True)
    try:
        row = con.execute(
            "SELECT products FROM attempts WHERE run_id = ? AND task = ? ORDER BY attempt DESC LIMIT 1",
            [run_id, task],
        ).fetchone()
    finally:
        con.close()
    assert row is not None, f"no attempt of {task} in {run_id}"
    return json.loads(row[0]) if isinstance(row[0], str) else dict(row[0])


def dry_run(root: Path, env: dict[str, str]) -> str:
    proc = nbflow("run", str(root), "--dry-run", env=env)
    assert proc.returncode == 0, proc
    return proc.stdout + proc.stderr


def why(root: Path, task: str, env: dict[str, str]) -> str:
    proc = nbflow("status", str(root), "--why", task, env=env)
    assert proc.returncode == 0, proc
    return proc.stdout


def _bucket(s3_server: Any) -> tuple[str, str]:
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    return bucket, s3_server.create_bucket(bucket)


def execute(url: str, statement: str) -> None:
    """Run ``statement`` in the database of ``url`` with its own client."""
    parts = urlsplit(url)
    if parts.scheme.startswith("postgres"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute(statement)
        return
    import pymysql

    my = pymysql.connect(
        host=parts.hostname,
        port=parts.port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=parts.path.strip("/"),
        autocommit=True,
    )
    with my, my.cursor() as cur:
        cur.execute(statement)


# -- objects -------------------------------------------------------------------------------


def test_an_s3_object_product_is_checksummed_reused_missed_and_diffed(tmp_path: Path, s3_server: Any) -> None:
    bucket, lake = _bucket(s3_server)
    # a second S3 connection, for another bucket, whose endpoint answers nothing: the product
    # must be reached through the connection whose URI names its bucket
    other = dataclasses.replace(s3_server, endpoint=f"http://127.0.0.1:{free_port()}").uri("elsewhere")
    env = {"LAKE_URL": lake, "ARCHIVE_URL": other}
    (tmp_path / "nbflow.toml").write_text('[connections]\nlake = "LAKE_URL"\narchive = "ARCHIVE_URL"\n')
    uri = f"s3://{bucket}/exports/out.parquet"
    write_notebook(
        tmp_path,
        "export",
        f"upstream = None\nproduct = {uri!r}\nrows = 3",
        "import nbflow, pandas as pd\nfs = nbflow.connect('lake')\n"
        "with fs.open(product, 'wb') as f:\n    pd.DataFrame({'n': list(range(rows))}).to_parquet(f)",
    )
    write_notebook(
        tmp_path,
        "use",
        "upstream = ['export']\nproduct = 'used.txt'",
        "import nbflow\ncon = nbflow.connect('lake', engine='duckdb')\n"
        "(n,) = con.execute(f\"SELECT count(*) FROM read_parquet('{upstream['export']}')\").fetchone()\n"
        "open(product, 'w').write(f\"{upstream['export']} {n}\")",
    )
    first = run_json(tmp_path, env)
    assert states(first) == {"export": "success", "use": "success"}
    assert (tmp_path / "used.txt").read_text() == f"{uri} 3", "downstream got the URI in upstream"
    etag = s3_server.client().head_object(Bucket=bucket, Key="exports/out.parquet")["ETag"].strip('"')
    assert recorded_products(tmp_path, first["run_id"], "export") == {uri: f"etag:{etag}"}

    second = run_json(tmp_path, env)
    assert states(second) == {"export": "up_to_date", "use": "up_to_date"}

    s3_server.client().delete_object(Bucket=bucket, Key="exports/out.parquet")
    assert f"its product {uri} is missing" in dry_run(tmp_path, env)
    third = run_json(tmp_path, env)
    assert states(third) == {"export": "success", "use": "success"}
    assert third["tasks"]["export"]["reason"] == f"its product {uri} is missing"
    assert f"export: success in run {third['run_id']}: its product {uri} is missing" in why(tmp_path, "export", env)
    assert recorded_products(tmp_path, third["run_id"], "export") == {uri: f"etag:{etag}"}, "same content, same ETag"

    fourth = run_json(tmp_path, env, "-p", "rows=5")
    assert states(fourth)["export"] == "success"
    changed_etag = s3_server.client().head_object(Bucket=bucket, Key="exports/out.parquet")["ETag"].strip('"')
    assert changed_etag != etag
    proc = nbflow("diff", third["run_id"], fourth["run_id"], str(tmp_path), "--json", env=env)
    assert proc.returncode == 0, proc
    products = json.loads(proc.stdout)["tasks"]["export"]["products"]
    assert products["changed"] == {uri: [f"etag:{etag}", f"etag:{changed_etag}"]}
    text = nbflow("diff", third["run_id"], fourth["run_id"], str(tmp_path), env=env).stdout
    assert "product changed: export" in text


# -- products an attempt did not write -----------------------------------------------------


def test_an_object_the_attempt_did_not_write_is_a_missing_product(tmp_path: Path, s3_server: Any) -> None:
    bucket, lake = _bucket(s3_server)
    (tmp_path / "nbflow.toml").write_text('[connections]\nlake = "LAKE_URL"\n')
    never = f"s3://{bucket}/never.parquet"
    stale = f"s3://{bucket}/stale.parquet"
    s3_server.client().put_object(Bucket=bucket, Key="stale.parquet", Body=b"from an earlier run")
    write_notebook(tmp_path, "lazy", f"upstream = None\nproduct = {never!r}", "print('wrote nothing')")
    write_notebook(tmp_path, "idle", f"upstream = None\nproduct = {stale!r}", "print('left it as it was')")
    run = run_json(tmp_path, {"LAKE_URL": lake}, code=1)
    assert states(run) == {"lazy": "failed", "idle": "failed"}
    assert run["tasks"]["lazy"]["error"] == f"MissingProduct: the notebook ran but did not write {never}"
    assert run["tasks"]["idle"]["error"] == f"MissingProduct: the notebook ran but did not write {stale}"


@pytest.mark.parametrize("system", ["postgresql", "mysql"])
def test_a_table_the_attempt_did_not_write_is_a_missing_product(
    tmp_path: Path, system: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url" if system == "postgresql" else "mysql_url")
    missing, written = f"t_{uuid.uuid4().hex[:10]}", f"t_{uuid.uuid4().hex[:10]}"
    (tmp_path / "nbflow.toml").write_text('[connections]\nwarehouse = "WAREHOUSE_URL"\n')
    # a Python task (in the runner's process) and a notebook (in a kernel), each writing
    # another table than the one it declares
    (tmp_path / "nbflow_tasks.py").write_text(
        "def setup(pipeline):\n"
        f"    @pipeline.task(product='table://warehouse/{missing}')\n"
        "    def load(product):\n"
        "        import nbflow\n"
        "        conn = nbflow.connect('warehouse')\n"
        "        cur = conn.cursor()\n"
        f"        cur.execute('CREATE TABLE {written} (id INT)')\n"
        "        conn.commit()\n"
        "        conn.close()\n"
    )
    write_notebook(tmp_path, "report", f"upstream = None\nproduct = 'table://warehouse/{missing}_nb'", "print(1)")
    run = run_json(tmp_path, {"WAREHOUSE_URL": url}, code=1)
    assert states(run) == {"load": "failed", "report": "failed"}
    assert run["tasks"]["load"]["error"] == (
        f"MissingProduct: the Python task ran but did not write table://warehouse/{missing}"
    )
    assert run["tasks"]["report"]["error"] == (
        f"MissingProduct: the notebook ran but did not write table://warehouse/{missing}_nb"
    )
    execute(url, f"DROP TABLE {written}")  # raises if the Python task's nbflow.connect wrote nothing


# -- tables --------------------------------------------------------------------------------


@pytest.mark.parametrize("system", ["postgresql", "mysql"])
def test_a_table_product_is_checksummed_reused_and_missed_after_drop(
    tmp_path: Path, system: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url" if system == "postgresql" else "mysql_url")
    table = f"t_{uuid.uuid4().hex[:10]}"
    schema = "public" if system == "postgresql" else urlsplit(url).path.strip("/")
    uri = f"table://warehouse/{schema}.{table}"
    env = {"WAREHOUSE_URL": url}
    (tmp_path / "nbflow.toml").write_text('[connections]\nwarehouse = "WAREHOUSE_URL"\n')
    write_notebook(
        tmp_path,
        "load",
        f"upstream = None\nproduct = {uri!r}",
        "import nbflow\nconn = nbflow.connect('warehouse')\ncur = conn.cursor()\n"
        f"cur.execute('CREATE TABLE {schema}.{table} (id INT, name VARCHAR(20))')\n"
        f"cur.executemany('INSERT INTO {schema}.{table} VALUES (%s, %s)', [(1, 'a'), (2, 'b'), (3, 'c')])\n"
        "conn.commit()\nconn.close()",
    )
    write_notebook(tmp_path, "count", "upstream = ['load']", "assert upstream['load'].startswith('table://')")
    first = run_json(tmp_path, env)
    assert states(first) == {"load": "success", "count": "success"}
    checksum = recorded_products(tmp_path, first["run_id"], "load")
    assert list(checksum) == [uri] and re.fullmatch(r"rows:3 hash:-?\d+", checksum[uri]), checksum

    assert states(run_json(tmp_path, env)) == {"load": "up_to_date", "count": "up_to_date"}

    execute(url, f"DROP TABLE {schema}.{table}")
    assert f"its product {uri} is missing" in dry_run(tmp_path, env)
    again = run_json(tmp_path, env)
    assert states(again) == {"load": "success", "count": "success"}
    assert f"load: success in run {again['run_id']}: its product {uri} is missing" in why(tmp_path, "load", env)
    assert recorded_products(tmp_path, again["run_id"], "load") == checksum, "the same rows, the same checksum"


def test_a_product_on_an_unreachable_database_counts_as_missing_and_fails_its_task(
    tmp_path: Path, postgres_url: str
) -> None:
    parts = urlsplit(postgres_url)
    closed = postgres_url.replace(f":{parts.port}/", f":{free_port()}/")
    uri = "table://warehouse/public.sales"
    (tmp_path / "nbflow.toml").write_text('[connections]\nwarehouse = "WAREHOUSE_URL"\n')
    write_notebook(tmp_path, "load", f"upstream = None\nproduct = {uri!r}", "print('no database needed here')")
    proc = nbflow("run", str(tmp_path), "--json", env={"WAREHOUSE_URL": closed})
    assert proc.returncode == 1, proc
    # a task that never succeeded runs without the plan asking the database; the check after it says why
    error = json.loads(proc.stdout)["tasks"]["load"]["error"]
    assert (
        error == f"MissingProduct: the notebook ran but did not write {uri} (it could not be checked: OperationalError)"
    )
    assert unquote(parts.password or "") not in proc.stdout + proc.stderr
