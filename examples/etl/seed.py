"""Create and fill the ETL example's source systems with the same data every time.

    ETL_WAREHOUSE_URL=postgresql://... ETL_BILLING_URL=mysql://... \\
    ETL_SUPPORT_URL=mongodb://... ETL_LAKE_URL='s3://KEY:SECRET@lake?endpoint=...' \\
        python examples/etl/seed.py

- the warehouse (PostgreSQL): ``crm.customers``, one row a customer (signed up, maybe churned);
- billing (MySQL/MariaDB): ``invoices``, one a month per customer while a customer;
- support (MongoDB): ``tickets``, the support tickets (nested requester, tags, some spam);
- the lake (S3, the bucket the URI names): raw product events, web ones as JSON lines under
  ``raw/events/web/`` and app ones as Parquet under ``raw/events/app/``, a file a month.

It drops and recreates what it writes (the tables, the collection, the objects under
``raw/`` and ``exports/``, the ``public.customer_summary`` the pipeline loads), so running it
twice leaves the same data. It talks to each system with its own driver, not through nbflow.

:func:`build` makes the data (pure; seeded), and :func:`expected_summary` says what the
pipeline's ``customer_summary`` must hold for a date, computed here in Python from that
data: a check on the pipeline that does not use the pipeline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import random
import sys
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

#: the date the pipeline's parameters default to (its ``as_of``: data before that day)
AS_OF = dt.date(2024, 7, 1)
SEED = 7
CUSTOMERS = 2000
#: the first and last day of the data
START, END = dt.date(2023, 1, 1), dt.date(2024, 12, 31)
#: events start here (the lake keeps a year of them)
EVENTS_START = dt.date(2024, 1, 1)
PLANS = {"basic": Decimal("29.00"), "pro": Decimal("99.00"), "enterprise": Decimal("499.00")}
COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "PL", "SE", "US", "GB", "CA")
#: the windows the transform uses (its parameters' defaults)
REVENUE_DAYS, ACTIVE_DAYS, EVENTS_DAYS, OVERDUE_DAYS = 365, 30, 90, 30
_SYLLABLES = ("al", "bo", "ca", "dri", "en", "fo", "gal", "hy", "io", "ka", "lu", "mo", "nex", "or", "pra", "qui")


@dataclass
class Dataset:
    """The example's source data: rows as tuples or documents, in the order they are written."""

    #: (customer_id, name, email, plan, country, signup_date, churned_on)
    customers: list[tuple[Any, ...]] = field(default_factory=list)
    #: (invoice_id, customer_id, issued_on, amount, status)
    invoices: list[tuple[Any, ...]] = field(default_factory=list)
    tickets: list[dict[str, Any]] = field(default_factory=list)
    #: (event_id, customer_id, ts, type, source), source "web" or "app"
    events: list[tuple[Any, ...]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in ("customers", "invoices", "tickets", "events")}


def _day(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    return first + dt.timedelta(days=rng.randint(0, (last - first).days))


def _months(first: dt.date, last: dt.date) -> Iterable[dt.date]:
    """The first day of each month after ``first`` up to ``last``."""
    year, month = first.year, first.month
    while True:
        month += 1
        if month == 13:
            year, month = year + 1, 1
        day = dt.date(year, month, 1)
        if day > last:
            return
        yield day


def build(seed: int = SEED, customers: int = CUSTOMERS) -> Dataset:
    """The source data: the same for the same arguments."""
    rng = random.Random(seed)
    data = Dataset()
    invoice_id = ticket_id = event_id = 0
    for customer_id in range(1, customers + 1):
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
        plan = rng.choices(list(PLANS), weights=(60, 30, 10))[0]
        signup = _day(rng, START, END - dt.timedelta(days=45))
        churned = _day(rng, signup + dt.timedelta(days=30), END) if rng.random() < 0.25 else None
        data.customers.append(
            (customer_id, f"{word.title()} {customer_id:04d}", f"billing@{word}{customer_id}.example",
             plan, rng.choice(COUNTRIES), signup, churned)
        )  # fmt: skip
        last = churned or END
        seats = rng.randint(5, 40) if plan == "enterprise" else rng.randint(1, 5)
        for issued in _months(signup, last):
            invoice_id += 1
            status = rng.choices(("paid", "open", "void"), weights=(90, 7, 3))[0]
            data.invoices.append((invoice_id, customer_id, issued, PLANS[plan] * seats, status))
        for _ in range(rng.choices((0, 1, 2, 3, 6), weights=(20, 30, 25, 15, 10))[0]):
            ticket_id += 1
            created = dt.datetime.combine(_day(rng, signup, last), dt.time(rng.randint(0, 23), rng.randint(0, 59)))
            ticket: dict[str, Any] = {
                "ticket_id": ticket_id,
                "customer_id": customer_id,
                "created_at": created,
                "channel": rng.choices(("email", "chat", "phone", "spam"), weights=(50, 30, 12, 8))[0],
                "priority": rng.choice(("low", "normal", "normal", "high", "urgent")),
                "subject": f"Question {ticket_id} about {rng.choice(('billing', 'login', 'export', 'api'))}",
                "requester": {"name": f"User {rng.randint(1, 99)}", "email": f"user@{word}{customer_id}.example"},
                "tags": rng.sample(("billing", "bug", "howto", "feature", "outage"), rng.randint(0, 2)),
            }
            closed = created + dt.timedelta(hours=rng.randint(1, 24 * 40))
            if closed.date() <= END and rng.random() < 0.85:
                ticket["status"], ticket["closed_at"] = "closed", closed
            else:
                ticket["status"] = rng.choice(("open", "pending"))
            data.tickets.append(ticket)
        first, level = max(signup, EVENTS_START), rng.choices((0, 1, 4), weights=(15, 55, 30))[0]
        for _ in range(level * max(0, (last - first).days) // 36 if last >= first else 0):
            event_id += 1
            ts = dt.datetime.combine(_day(rng, first, last), dt.time(rng.randint(0, 23), rng.randint(0, 59)))
            kind = rng.choice(("login", "page_view", "page_view", "feature_used", "export"))
            data.events.append((event_id, customer_id, ts, kind, rng.choice(("web", "app"))))
    return data


# -- what the pipeline must produce --------------------------------------------------------


def active_customers(data: Dataset, as_of: dt.date = AS_OF) -> list[tuple[Any, ...]]:
    """The customers as of ``as_of``: signed up before that day, not churned by then."""
    return [c for c in data.customers if c[5] < as_of and (c[6] is None or c[6] >= as_of)]


def health_score(open_tickets: int, active_days_30: int, overdue_invoices: int) -> int:
    """The transform's health score (0-100), for one customer."""
    score = 100 - 15 * min(open_tickets, 4)
    score -= 40 if active_days_30 == 0 else 15 if active_days_30 < 4 else 0
    score -= 20 if overdue_invoices else 0
    return max(0, min(100, score))


def expected_summary(data: Dataset, as_of: dt.date = AS_OF) -> dict[int, dict[str, Any]]:
    """customer_id -> what its row of ``customer_summary`` holds for ``as_of``."""
    day = dt.timedelta(days=1)
    summary = {
        c[0]: {"revenue_365d": Decimal(0), "overdue_invoices": 0, "open_tickets": 0, "events_90d": 0, "days": set()}
        for c in active_customers(data, as_of)
    }
    for _, customer_id, issued, amount, status in data.invoices:
        row = summary.get(customer_id)
        if row is None or issued >= as_of:
            continue
        if status == "paid" and issued >= as_of - REVENUE_DAYS * day:
            row["revenue_365d"] += amount
        if status == "open" and issued < as_of - OVERDUE_DAYS * day:
            row["overdue_invoices"] += 1
    cutoff = dt.datetime.combine(as_of, dt.time())
    for t in data.tickets:
        row = summary.get(t["customer_id"])
        if row is None or t["channel"] == "spam" or t["created_at"] >= cutoff:
            continue
        if t.get("closed_at") is None or t["closed_at"] >= cutoff:
            row["open_tickets"] += 1
    for _, customer_id, ts, _, _ in data.events:
        row = summary.get(customer_id)
        if row is None or not cutoff - EVENTS_DAYS * day <= ts < cutoff:
            continue
        row["events_90d"] += 1
        if ts >= cutoff - ACTIVE_DAYS * day:
            row["days"].add(ts.date())
    for row in summary.values():
        row["active_days_30"] = len(row.pop("days"))
        row["health_score"] = health_score(row["open_tickets"], row["active_days_30"], row["overdue_invoices"])
    return summary


# -- writing it --------------------------------------------------------------------------


def _uri(variable: str, environ: Mapping[str, str]) -> str:
    value = environ.get(variable)
    if not value:
        raise SystemExit(f"seed.py: set {variable} to the URI of the system it names (see the docstring)")
    return value


def seed_warehouse(uri: str, data: Dataset) -> None:
    """``crm.customers`` in PostgreSQL (and no ``public.customer_summary`` yet)."""
    import psycopg

    with psycopg.connect(uri, connect_timeout=10) as conn:
        conn.execute("DROP TABLE IF EXISTS public.customer_summary")
        conn.execute("DROP SCHEMA IF EXISTS crm CASCADE")
        conn.execute("CREATE SCHEMA crm")
        conn.execute(
            "CREATE TABLE crm.customers (customer_id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL,"
            " plan text NOT NULL, country char(2) NOT NULL, signup_date date NOT NULL, churned_on date)"
        )
        with conn.cursor() as cur, cur.copy("COPY crm.customers FROM STDIN") as copy:
            for row in data.customers:
                copy.write_row(row)


def seed_billing(uri: str, data: Dataset) -> None:
    """``invoices`` in MySQL/MariaDB."""
    import pymysql

    parts = urlsplit(uri)
    conn = pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/")),
        connect_timeout=10,
    )
    with conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS invoices")
        cur.execute(
            "CREATE TABLE invoices (invoice_id INT PRIMARY KEY, customer_id INT NOT NULL, issued_on DATE NOT NULL,"
            " amount DECIMAL(10, 2) NOT NULL, status VARCHAR(8) NOT NULL, KEY (issued_on))"
        )
        insert = "INSERT INTO invoices VALUES (%s, %s, %s, %s, %s)"
        for i in range(0, len(data.invoices), 5000):
            cur.executemany(insert, data.invoices[i : i + 5000])
        conn.commit()


def seed_support(uri: str, data: Dataset) -> None:
    """``tickets`` in the MongoDB database the URI names."""
    import pymongo

    client: Any = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10_000)
    try:
        db = client.get_default_database()
        db.drop_collection("tickets")
        db.tickets.insert_many([dict(t) for t in data.tickets], ordered=False)
    finally:
        client.close()


def s3_client(uri: str) -> tuple[Any, str]:
    """A boto3 client for ``s3://KEY:SECRET@BUCKET?endpoint=...&region=...``, and the bucket."""
    import boto3

    parts = urlsplit(uri)
    options = {k: v[0] for k, v in parse_qs(parts.query).items()}
    client = boto3.session.Session().client(  # a session of its own: boto3's default one is not thread-safe
        "s3",
        endpoint_url=options.get("endpoint"),
        region_name=options.get("region", "us-east-1"),
        aws_access_key_id=unquote(parts.username or "") or None,
        aws_secret_access_key=unquote(parts.password or "") or None,
    )
    return client, unquote(parts.hostname or "")


def seed_lake(uri: str, data: Dataset) -> None:
    """Raw events in the bucket: ``raw/events/web/YYYY-MM.json`` (JSON lines) and
    ``raw/events/app/YYYY-MM.parquet``; ``raw/`` and ``exports/`` emptied first."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    client, bucket = s3_client(uri)
    existing = [b["Name"] for b in client.list_buckets().get("Buckets", [])]
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
    for prefix in ("raw/", "exports/"):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    months: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for event in data.events:
        months.setdefault((event[4], event[2].strftime("%Y-%m")), []).append(event)
    for (source, month), events in sorted(months.items()):
        if source == "web":
            lines = (
                json.dumps({"event_id": e[0], "customer_id": e[1], "ts": e[2].isoformat(), "type": e[3]})
                for e in events
            )
            body = ("\n".join(lines) + "\n").encode()
            client.put_object(Bucket=bucket, Key=f"raw/events/web/{month}.json", Body=body)
        else:
            table = pa.table(
                {
                    "event_id": pa.array([e[0] for e in events], pa.int64()),
                    "customer_id": pa.array([e[1] for e in events], pa.int32()),
                    "ts": pa.array([e[2] for e in events], pa.timestamp("us")),
                    "type": pa.array([e[3] for e in events], pa.string()),
                }
            )
            buffer = io.BytesIO()
            pq.write_table(table, buffer)
            client.put_object(Bucket=bucket, Key=f"raw/events/app/{month}.parquet", Body=buffer.getvalue())


SYSTEMS = {
    "warehouse": ("ETL_WAREHOUSE_URL", seed_warehouse),
    "billing": ("ETL_BILLING_URL", seed_billing),
    "support": ("ETL_SUPPORT_URL", seed_support),
    "lake": ("ETL_LAKE_URL", seed_lake),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    args = parser.parse_args(argv)
    began = time.monotonic()
    data = build(args.seed, args.customers)
    uris = {name: _uri(variable, os.environ) for name, (variable, _) in SYSTEMS.items()}
    with ThreadPoolExecutor(len(SYSTEMS)) as pool:  # four servers, four connections at once
        jobs = [pool.submit(seed, uris[name], data) for name, (_, seed) in SYSTEMS.items()]
        for job in jobs:
            job.result()
    counts = ", ".join(f"{n} {what}" for what, n in data.counts().items())
    print(f"seed.py: {counts} written in {time.monotonic() - began:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
