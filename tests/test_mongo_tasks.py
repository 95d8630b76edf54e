"""MongoDB extracts: documents read from a real MongoDB wire-protocol server (nx-27017 on
127.0.0.1, the ``mongo_url`` fixture) into Parquet files, local or in S3 (moto), read
downstream by DuckDB."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import pyarrow.parquet as pq
import pytest
from bson import ObjectId

from nbflow.engine.requests import task_request
from nbflow.errors import PipelineValidationError
from nbflow.execution.base import AttemptControl, StopReason
from nbflow.executors.attempt import run_attempt
from nbflow.pipeline import Pipeline, read_declarations
from nbflow.project.params import Overrides
from tests.conftest import free_port, nbflow_process

pymongo = pytest.importorskip("pymongo")

DEADLINE = 60.0
_names = itertools.count()


@pytest.fixture
def mongo(mongo_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """A database of its own for one test on the session's server: (its URI, a pymongo
    ``Database``); ``SUPPORT_URL`` holds the URI (with a password, which nx-27017 takes unchecked)."""
    uri = urlunsplit(urlsplit(mongo_url)._replace(path=f"/support{next(_names)}"))
    monkeypatch.setenv("SUPPORT_URL", uri)
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10_000)
    try:
        yield uri, client.get_default_database()
    finally:
        client.close()


def _tickets(n: int = 50) -> list[dict[str, Any]]:
    return [
        {
            "_id": ObjectId(),
            "id": i,
            "customer_id": 100 + i % 7,
            "status": "spam" if i % 4 == 0 else ("open" if i % 3 else "closed"),
            "opened_at": dt.datetime(2024, 1, 1) + dt.timedelta(hours=5 * i),
            "customer": {"name": f"c{i % 7}", "tier": i % 3},
            "tags": [f"t{j}" for j in range(i % 3)],
        }
        for i in range(n)
    ]


def _log(folder: Path, result: Any, task: str, attempt: int = 1) -> str:
    """The log of one attempt, as the store keeps it."""
    with Pipeline.from_dir(folder).open_store() as store:
        return store.get_log(result.run_id, task, attempt)


def _folder(folder: Path, setup: str, connections: str = 'support = "SUPPORT_URL"') -> Path:
    (folder / "nbflow.toml").write_text(f"[connections]\n{connections}\n")
    (folder / "nbflow_tasks.py").write_text("def setup(nbflow):\n" + setup)
    return folder


def test_an_extract_writes_the_filtered_projected_documents_row_by_row(tmp_path: Path, mongo) -> None:
    _uri, db = mongo
    docs = _tickets()
    db.tickets.insert_many(docs)
    folder = _folder(
        tmp_path,
        "    nbflow.mongo_task(\n"
        "        'tickets', connection='support', collection='tickets',\n"
        "        filter={'status': {'$ne': 'spam'}, 'customer_id': {'$in': ['$param:customer', 103]}},\n"
        "        projection={'_id': 0, 'id': 1, 'customer_id': 1, 'opened_at': 1, 'customer': 1},\n"
        "        params={'customer': 101}, batch_size=4, product='data/tickets.parquet')\n"
        "    nbflow.add_task('mongo', 'everything', connection='support', collection='tickets',\n"
        "                    product='data/all.parquet')\n",
    )
    (folder / "per_customer.sql").write_text(
        '-- upstream = ["tickets"]\n-- product = "per_customer.csv"\n'
        "SELECT customer_id, count(*) AS n, max(customer.tier) AS tier FROM tickets GROUP BY 1 ORDER BY 1\n"
    )
    pipeline = Pipeline.from_dir(folder)
    assert pipeline.specs["tickets"].kind == "mongo" and pipeline.specs["tickets"].params.defaults == {
        "customer": "101"
    }, "read from nbflow_tasks.py without running it"

    result = pipeline.run(params={"tickets.customer": 102}, workers=2)

    assert result.ok, result.tasks
    assert pipeline.specs["tickets"].connections == ("support",)
    kept = [d for d in docs if d["status"] != "spam" and d["customer_id"] in (102, 103)]
    expected = [{k: d[k] for k in ("id", "customer_id", "opened_at", "customer")} for d in kept]
    rows = pq.read_table(folder / "data" / "tickets.parquet").to_pylist()
    assert sorted(rows, key=lambda r: r["id"]) == expected
    assert len(expected) == 11
    schema = pq.read_schema(folder / "data" / "tickets.parquet")
    assert str(schema.field("customer").type) == "struct<name: string, tier: int64>"
    assert str(schema.field("opened_at").type) == "timestamp[us]"

    everything = {r["id"]: r for r in pq.read_table(folder / "data" / "all.parquet").to_pylist()}
    assert len(everything) == len(docs)
    for doc in docs:  # ObjectId as text, lists as lists, nested documents as structs
        row = everything[doc["id"]]
        assert row == {**doc, "_id": str(doc["_id"])}

    counts = (folder / "per_customer.csv").read_text().splitlines()
    assert counts == ["customer_id,n,tier"] + [
        f"{c},{sum(d['customer_id'] == c for d in kept)},{max(d['customer']['tier'] for d in kept if d['customer_id'] == c)}"
        for c in (102, 103)
    ]
    with pipeline.open_store() as store:
        log = store.get_log(result.run_id, "tickets", 1)
    assert "read 11 documents in 3 batches" in log and "support (mongodb://nbflow@127.0.0.1:" in log
    assert '"customer_id": {"$in": [102, 103]}' in log, "the filter as sent, with its parameter"


def test_a_date_parameter_filters_a_date_field(tmp_path: Path, mongo) -> None:
    _uri, db = mongo
    docs = _tickets(30)  # opened 5 hours apart from 2024-01-01
    db.tickets.insert_many(docs)
    folder = _folder(
        tmp_path,
        "    nbflow.mongo_task('recent', connection='support', collection='tickets',\n"
        "                      filter={'opened_at': {'$gte': '$date:since', '$lt': '$date:until'}},\n"
        "                      params={'since': '2024-01-03', 'until': '2024-01-10'},\n"
        "                      projection={'_id': 0, 'id': 1}, product='recent.parquet')\n",
    )
    pipeline = Pipeline.from_dir(folder)

    result = pipeline.run(params={"since": "2024-01-04T08:00:00+03:00", "recent.until": "2024-01-05"}, workers=1)

    assert result.ok, result.tasks
    since, until = dt.datetime(2024, 1, 4, 5), dt.datetime(2024, 1, 5)  # in UTC, as MongoDB keeps dates
    expected = [{"id": d["id"]} for d in docs if since <= d["opened_at"] < until]
    assert sorted(pq.read_table(folder / "recent.parquet").to_pylist(), key=lambda r: r["id"]) == expected
    assert len(expected) == 4

    bad = pipeline.run(params={"since": "last tuesday"}, workers=1)
    assert bad.tasks["recent"].error.startswith(
        "InvalidParameter: the parameter 'since' ($date:since in the filter) must be an ISO date or time"
    )


def test_an_extract_writes_an_s3_object_through_the_projects_s3_connection(
    tmp_path: Path, mongo, s3_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    _uri, db = mongo
    docs = _tickets(20)
    db.tickets.insert_many(docs)
    bucket = f"lake-{next(_names)}"
    monkeypatch.setenv("LAKE_URL", s3_server.create_bucket(bucket))
    folder = _folder(
        tmp_path,
        "    nbflow.mongo_task('tickets', connection='support', collection='tickets', batch_size=6,\n"
        "                      projection={'_id': 0, 'id': 1, 'customer': 1},\n"
        f"                      product='s3://{bucket}/raw/tickets.parquet')\n",
        connections='support = "SUPPORT_URL"\nlake = "LAKE_URL"',
    )
    pipeline = Pipeline.from_dir(folder)

    result = pipeline.run(workers=1)

    assert result.ok, result.tasks
    body = s3_server.client().get_object(Bucket=bucket, Key="raw/tickets.parquet")["Body"].read()
    rows = pq.read_table(io.BytesIO(body)).to_pylist()
    assert sorted(rows, key=lambda r: r["id"]) == [{"id": d["id"], "customer": d["customer"]} for d in docs]
    assert "read 20 documents in 4 batches; wrote s3://" in _log(folder, result, "tickets")
    assert not [p for p in folder.iterdir() if p.name.endswith(".nbflow-tmp")]
    again = pipeline.run(workers=1)  # the object is there and nothing changed: up to date
    assert again.states == {"tickets": "up_to_date"}


def test_batches_whose_fields_change_are_unified_in_one_file(tmp_path: Path, mongo) -> None:
    _uri, db = mongo
    db.events.insert_many(
        [{"n": i, "score": i, "meta": {"a": i}} for i in range(5)]
        + [{"n": i, "score": i + 0.5, "meta": {"a": i, "b": f"x{i}"}, "late": True} for i in range(5, 8)]
        + [{"n": i, "meta": {}} for i in range(8, 10)]
    )
    folder = _folder(
        tmp_path,
        "    nbflow.mongo_task('events', connection='support', collection='events', batch_size=3,\n"
        "                      projection={'_id': 0}, product='events.parquet')\n",
    )
    result = Pipeline.from_dir(folder).run(workers=1)

    assert result.ok, result.tasks
    table = pq.read_table(folder / "events.parquet")
    assert table.schema.names == ["n", "score", "meta", "late"]
    assert str(table.schema.field("score").type) == "double"
    assert str(table.schema.field("meta").type) == "struct<a: int64, b: string>"
    rows = sorted(table.to_pylist(), key=lambda r: r["n"])
    assert rows[0] == {"n": 0, "score": 0.0, "meta": {"a": 0, "b": None}, "late": None}
    assert rows[6] == {"n": 6, "score": 6.5, "meta": {"a": 6, "b": "x6"}, "late": True}
    assert rows[9] == {"n": 9, "score": None, "meta": None, "late": None}
    assert "batch 2 brings new fields or wider types" in _log(folder, result, "events")


def test_a_field_of_two_types_fails_naming_it(tmp_path: Path, mongo) -> None:
    _uri, db = mongo
    db.mixed.insert_many([{"zip": 12345}, {"zip": "AB-1"}])
    folder = _folder(
        tmp_path,
        "    nbflow.mongo_task('mixed', connection='support', collection='mixed', product='mixed.parquet')\n",
    )
    result = Pipeline.from_dir(folder).run(workers=1)

    assert result.tasks["mixed"].state == "failed"
    assert result.tasks["mixed"].error.startswith("SchemaConflict: the field 'zip' holds values of different types")
    assert not (folder / "mixed.parquet").exists()
    assert not [p for p in folder.iterdir() if p.name.endswith(".nbflow-tmp")], "its spool is removed"


def test_an_empty_result_writes_the_projected_columns_or_says_why_it_cannot(tmp_path: Path, mongo) -> None:
    _uri, db = mongo
    db.tickets.insert_many(_tickets(5))
    folder = _folder(
        tmp_path,
        "    nbflow.mongo_task('none', connection='support', collection='tickets', filter={'status': 'lost'},\n"
        "                      projection={'_id': 0, 'id': 1, 'customer.name': 1}, product='none.parquet')\n"
        "    nbflow.mongo_task('unknown', connection='support', collection='tickets', filter={'status': 'lost'},\n"
        "                      product='unknown.parquet')\n",
    )
    result = Pipeline.from_dir(folder).run(workers=1)

    assert result.states == {"none": "success", "unknown": "failed"}
    empty = pq.read_table(folder / "none.parquet")
    assert empty.num_rows == 0 and empty.schema.names == ["id", "customer"]
    error = result.tasks["unknown"].error
    assert error.startswith("EmptyResult: ") and "give projection= to write an empty file" in error


def test_an_unreachable_server_fails_with_connection_error_and_the_other_branch_runs(
    tmp_path: Path, mongo, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "pw-never-shown-7361"
    port = free_port()  # nothing listens there
    monkeypatch.setenv("DOWN_URL", f"mongodb://reader:{password}@127.0.0.1:{port}/support?serverSelectionTimeoutMS=300")
    folder = _folder(
        tmp_path,
        "    nbflow.mongo_task('down', connection='down', collection='tickets', product='down.parquet',\n"
        "                      retry_delay=0)\n",
        connections='support = "SUPPORT_URL"\ndown = "DOWN_URL"',
    )
    (folder / "other.sql").write_text('-- product = "other.csv"\nSELECT 42 AS answer\n')
    pipeline = Pipeline.from_dir(folder)

    result = pipeline.run(workers=2)

    assert result.states == {"down": "failed", "other": "success"}
    task = result.tasks["down"]
    assert task.attempts == 3, "a connection error is retried (connection_retries) though retries is 0"
    assert task.error.startswith(
        f"ConnectionError: could not reach the connection 'down' (mongodb://reader@127.0.0.1:{port}/support): "
    )
    assert "Connection refused" in task.error
    with pipeline.open_store() as store:
        attempts = store.get_attempts(result.run_id, "down")
        logs = [store.get_log(result.run_id, "down", n) for n in (1, 2, 3)]
    assert [a.error.split(":")[0] for a in attempts] == ["ConnectionError"] * 3
    assert all("ConnectionError: could not reach the connection 'down'" in log for log in logs)
    _assert_nowhere(password, folder)


def test_the_password_of_the_connection_is_never_written_down(tmp_path: Path, mongo) -> None:
    uri, db = mongo
    db.tickets.insert_many(_tickets(6))
    password = unquote(urlsplit(uri).password or "")
    assert len(password) > 8, "the server's URI holds a password (nx-27017 takes it unchecked)"
    folder = _folder(
        tmp_path,
        "    nbflow.mongo_task('tickets', connection='support', collection='tickets', product='t.parquet',\n"
        f"                      filter={{'note': {password!r}}}, projection={{'_id': 0, 'id': 1}})\n",
    )
    result = Pipeline.from_dir(folder).run(workers=1)

    assert result.ok, result.tasks
    assert pq.read_table(folder / "t.parquet").num_rows == 0, "the filter held the password: nothing matched"
    log = _log(folder, result, "tickets")
    assert "support (mongodb://nbflow@127.0.0.1:" in log, "the connection, described without its password"
    assert '{"note": "[secret]"}' in log, "the password in the filter is masked in the log"
    _assert_nowhere(password, folder)


def _assert_nowhere(secret: str, folder: Path) -> None:
    """Neither the store, the logs nor any other file of the folder holds ``secret``."""
    files = [p for p in folder.rglob("*") if p.is_file() and p.name not in ("nbflow_tasks.py",)]
    assert any(p.suffix == ".duckdb" for p in files) and any(p.suffix == ".log" for p in files)
    holding = [p for p in files if secret.encode() in p.read_bytes()]
    assert not holding, f"the password is written in {holding}"


def test_an_unknown_connection_stops_the_run_before_anything_runs(tmp_path: Path, mongo) -> None:
    folder = _folder(
        tmp_path,
        "    nbflow.mongo_task('tickets', connection='suport', collection='tickets', product='t.parquet')\n",
        connections='support = "SUPPORT_URL"\nwarehouse = "WAREHOUSE_URL"',
    )
    (folder / "first.sql").write_text('-- product = "first.csv"\nSELECT 1 AS x\n')

    run = nbflow_process("run", str(folder))

    assert run.returncode == 2, run.stderr
    assert "uses the connection 'suport', which is not defined" in run.stderr
    assert "Known connections: support, warehouse" in run.stderr
    assert not (folder / "first.csv").exists(), "nothing ran"


def test_a_timeout_stops_the_extract_between_batches(tmp_path: Path, mongo) -> None:
    _uri, db = mongo
    db.many.insert_many([{"n": i} for i in range(3000)])
    folder = _folder(
        tmp_path,
        "    nbflow.mongo_task('many', connection='support', collection='many', batch_size=1,\n"
        "                      product='many.parquet', timeout=0.5)\n",
    )
    started = time.monotonic()
    result = Pipeline.from_dir(folder).run(workers=1)
    took = time.monotonic() - started

    task = result.tasks["many"]
    assert task.state == "failed" and task.error.startswith("TaskTimeout: the task ran longer than its timeout of 0.5s")
    assert took < 15, took
    assert not (folder / "many.parquet").exists()
    log = _log(folder, result, "many")
    assert "batch 1: 1 document so far" in log and "read 3000 documents" not in log


def test_a_cancel_stops_the_extract_between_batches(tmp_path: Path, mongo) -> None:
    _uri, db = mongo
    db.many.insert_many([{"n": i} for i in range(3000)])
    folder = _folder(
        tmp_path,
        "    nbflow.mongo_task('many', connection='support', collection='many', batch_size=1, product='many.parquet')\n",
    )
    pipeline = Pipeline.from_dir(folder, load_code=True)
    request = task_request(
        pipeline.specs,
        pipeline.dag,
        pipeline.settings,
        pipeline.project.secrets,
        tmp_path / "run",
        "r1",
        "many",
        1,
        Overrides.from_mapping(None),
        pipeline.project.connections,
    )
    control = AttemptControl()
    with ThreadPoolExecutor(1) as pool:
        attempt = pool.submit(run_attempt, request, None, control)
        deadline = time.monotonic() + DEADLINE
        while not (request.log_path.exists() and "batch 1:" in request.log_path.read_text()):
            assert time.monotonic() < deadline and not attempt.done(), "the extract never read its first batch"
            time.sleep(0.02)
        control.stop(StopReason.INTERRUPTED)
        outcome = attempt.result(timeout=DEADLINE)

    assert outcome.state == "interrupted", outcome
    assert "read 3000 documents" not in request.log_path.read_text()
    assert not (folder / "many.parquet").exists()


def test_declarations_are_checked_when_made(tmp_path: Path) -> None:
    (tmp_path / "nbflow_tasks.py").write_text("def setup(pipeline):\n    pass\n")
    pipeline = Pipeline.from_dir(tmp_path)
    with pytest.raises(TypeError, match="needs collection="):
        pipeline.add_task("mongo", "x", connection="support", product="x.parquet")
    with pytest.raises(PipelineValidationError, match=r"'product' must be one \.parquet file"):
        pipeline.mongo_task("x", connection="support", collection="c", product="x.csv")
    with pytest.raises(PipelineValidationError, match=r"refers to the parameters since, which 'params' does not give"):
        pipeline.mongo_task("x", connection="s", collection="c", product="x.parquet", filter={"t": "$param:since"})
    with pytest.raises(PipelineValidationError, match="'batch_size' must be a whole number"):
        pipeline.mongo_task("x", connection="s", collection="c", product="x.parquet", batch_size=0)
    assert "x" not in pipeline.specs

    found = read_declarations(
        "import os\nos.system('never run')\n\ndef setup(p):\n"
        "    p.mongo_task('a', connection='s', collection='c', product='a.parquet', params={'since': 3})\n"
        "    p.add_task('mongo', 'b', upstream=['a'], connection='s', collection='c', product='b.parquet')\n"
    )
    assert {t.name: (t.kind, t.upstream, t.product, t.defaults) for t in found.tasks} == {
        "a": ("mongo", (), "a.parquet", {"since": "3"}),
        "b": ("mongo", ("a",), "b.parquet", {}),
    }
