"""Show what the ETL example loaded: rows of the warehouse's summary table, the lake's export.

    python examples/etl/show.py [--rows N]

It reads them back through the pipeline's own connections (``nbflow.connect``), so the same
four variables as the run must be set. Exits 1 when the table or the export is missing or
the two disagree on the number of customers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow.parquet as pq

import nbflow

HERE = Path(__file__).resolve().parent
TABLE = "public.customer_summary"
EXPORT = "lake/exports/customer_summary.parquet"
COLUMNS = ("customer_id", "name", "plan", "revenue_365d", "open_tickets", "active_days_30", "health_score", "health")


def table_rows(limit: int) -> tuple[int, list[tuple[object, ...]]]:
    """The summary table's row count and its first ``limit`` rows (the least healthy first)."""
    with nbflow.connect("warehouse", folder=HERE) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {TABLE}")
        (count,) = cur.fetchone()
        cur.execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} ORDER BY health_score, customer_id LIMIT %s", (limit,))
        return count, cur.fetchall()


def export_rows() -> int:
    """The row count of the Parquet object the pipeline published (from its footer)."""
    fs = nbflow.connect("lake", folder=HERE)
    with fs.open(EXPORT, "rb") as f:
        return pq.ParquetFile(f).metadata.num_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=5, help="rows of the table to show (default: %(default)s)")
    args = parser.parse_args(argv)
    count, rows = table_rows(args.rows)
    print(f"{TABLE} in the warehouse: {count} rows; the {len(rows)} least healthy:")
    widths = [max(len(name), *(len(str(row[i])) for row in rows)) for i, name in enumerate(COLUMNS)]
    for line in (COLUMNS, *rows):
        print(("  " + " | ".join(str(value).ljust(width) for value, width in zip(line, widths, strict=True))).rstrip())
    exported = export_rows()
    print(f"s3://{EXPORT}: {exported} rows")
    if exported != count:
        print(f"show.py: the export has {exported} rows and the table {count}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
