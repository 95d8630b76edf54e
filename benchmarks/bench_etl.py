"""Benchmark nbflow's SQL tasks against pandas in a notebook, moving rows in and out of PostgreSQL.

    .venv/bin/python benchmarks/bench_etl.py                    # 1,000,000 rows, 3 rounds
    .venv/bin/python benchmarks/bench_etl.py --rows 100000 --rounds 1
    .venv/bin/python benchmarks/bench_etl.py --postgres-url postgresql://...   # an existing server

A throwaway PostgreSQL (``scripts/servers.py``) holds a table of ``--rows`` rows (bigint,
double, text, timestamp); a Parquet file holds the same columns. Each variant is a one-task
(or two-task) pipeline run by ``nbflow run`` as a whole process, in rounds, the variants
interleaved so that drift hits all of them:

* extract PostgreSQL -> Parquet:
  - ``nbflow SQL``: a ``.sql`` task on the connection (ADBC: binary COPY -> Arrow -> Parquet);
  - ``pandas notebook``: ``pd.read_sql(query, engine)`` then ``df.to_parquet`` (SQLAlchemy
    engine on psycopg 3), in a kernel;
* load Parquet -> a PostgreSQL table:
  - ``nbflow SQL on the database``: the upstream file staged as a temporary table (ADBC
    ingest, binary COPY), then ``SELECT * FROM it`` replaces the table product;
  - ``nbflow SQL in DuckDB``: DuckDB reads the file, its result replaces the table product
    (ADBC ingest straight into the new table);
  - ``pandas notebook``: ``pd.read_parquet`` then ``df.to_sql(..., if_exists="replace")``
    with pandas' defaults (``method=None``, ``chunksize=None``).

Reported per variant: the median task time (the attempt, as the store records it; a
notebook's kernel start included), rows per second, and the median wall time of the whole
``nbflow run`` process; then each nbflow variant's ratio against pandas. Every round checks
what was written (the Parquet file's rows, the table's rows).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

HERE = Path(__file__).resolve().parent
SERVERS = HERE.parent / "scripts" / "servers.py"
VARIABLE = "NBFLOW_BENCH_WAREHOUSE"
SETTINGS = f'[connections]\nwarehouse = "{VARIABLE}"\n'


@dataclass
class Variant:
    """One way of doing a job: its pipeline folder and the task whose time counts."""

    job: str
    label: str
    folder: Path
    task: str
    task_times: list[float] = field(default_factory=list)
    wall_times: list[float] = field(default_factory=list)

    @property
    def pandas(self) -> bool:
        return self.label.startswith("pandas")


def load_servers() -> object:
    spec = importlib.util.spec_from_file_location("nbflow_scripts_servers", SERVERS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with load_servers().postgres() as started:  # type: ignore[attr-defined]
        yield started


def prepare_data(url: str, rows: int, parquet: Path) -> None:
    """The table ``events`` on the server and the same columns in ``parquet``."""
    import duckdb
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS events")
        conn.execute(
            "CREATE TABLE events AS SELECT g::bigint AS id, random() * 1000 AS amount, 'user_' || (g % 5000) AS name, "
            f"timestamp '2024-01-01' + g * interval '1 second' AS at FROM generate_series(1, {rows}) g"
        )
        conn.execute("VACUUM ANALYZE events")
    duckdb.sql(
        "COPY (SELECT range::BIGINT AS id, random() * 1000 AS amount, 'user_' || (range % 5000)::VARCHAR AS name, "
        f"TIMESTAMP '2024-01-01' + range * INTERVAL 1 SECOND AS at FROM range({rows})) TO '{parquet}' (FORMAT parquet)"
    )


def write_notebook(path: Path, parameters: str, code: str) -> None:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    cell = new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, new_code_cell(code)]
    nbformat.write(nb, path)


ENGINE = (
    "import os\nimport pandas as pd\nimport sqlalchemy\n"
    f'engine = sqlalchemy.create_engine(os.environ["{VARIABLE}"].replace("postgresql://", "postgresql+psycopg://"))\n'
)


def write_pipelines(root: Path, parquet: Path) -> list[Variant]:
    """The folders of every variant (their settings name the warehouse connection)."""
    source = f"-- product = 'data/events.parquet'\nSELECT * FROM '{parquet}';\n"
    folders = {
        "extract-sql": {
            "extract.sql": '-- connection = "warehouse"\n-- product = "out/events.parquet"\nSELECT * FROM events;\n'
        },
        "extract-pandas": {},
        "load-sql": {
            "source.sql": source,
            "load.sql": '-- connection = "warehouse"\n-- upstream = ["source"]\n'
            '-- product = "table://warehouse/public.events_sql"\nSELECT * FROM source;\n',
        },
        "load-duckdb": {
            "source.sql": source,
            "load.sql": '-- upstream = ["source"]\n'
            '-- product = "table://warehouse/public.events_duckdb"\nSELECT * FROM source;\n',
        },
        "load-pandas": {},
    }
    for name, files in folders.items():
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "nbflow.toml").write_text(SETTINGS)
        for file, text in files.items():
            (folder / file).write_text(text)
    write_notebook(
        root / "extract-pandas" / "extract.ipynb",
        'product = "out/events.parquet"',
        ENGINE + 'df = pd.read_sql("SELECT * FROM events", engine)\n'
        "os.makedirs(os.path.dirname(product), exist_ok=True)\ndf.to_parquet(product)\n",
    )
    write_notebook(
        root / "load-pandas" / "load.ipynb",
        f"source = {str(parquet)!r}",
        ENGINE + 'df = pd.read_parquet(source)\ndf.to_sql("events_pandas", engine, if_exists="replace", index=False)\n',
    )
    return [
        Variant("extract", "nbflow SQL task (ADBC: COPY -> Arrow -> Parquet)", root / "extract-sql", "extract"),
        Variant("extract", "pandas notebook (read_sql + to_parquet)", root / "extract-pandas", "extract"),
        Variant("load", "nbflow SQL task on the database (stage + CREATE TABLE AS)", root / "load-sql", "load"),
        Variant("load", "nbflow SQL task in DuckDB -> table (ADBC ingest)", root / "load-duckdb", "load"),
        Variant("load", "pandas notebook (read_parquet + to_sql, defaults)", root / "load-pandas", "load"),
    ]


def run_once(variant: Variant) -> tuple[float, float]:
    """Run the variant's task in a whole ``nbflow run`` process: (task seconds, wall seconds)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "nbflow", "run", str(variant.folder), "--force-task", variant.task, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{variant.label} failed:\n{proc.stdout}\n{proc.stderr}")
    task = json.loads(proc.stdout)["tasks"][variant.task]
    return float(task["duration_s"]), wall


def check(variant: Variant, url: str, rows: int) -> None:
    """What the variant wrote has every row."""
    if variant.job == "extract":
        import pyarrow.parquet as pq

        written = pq.ParquetFile(variant.folder / "out" / "events.parquet").metadata.num_rows
    else:
        import psycopg

        table = {"load-sql": "events_sql", "load-duckdb": "events_duckdb", "load-pandas": "events_pandas"}
        with psycopg.connect(url) as conn:
            written = conn.execute(f"SELECT count(*) FROM {table[variant.folder.name]}").fetchone()[0]  # type: ignore[index]
    if written != rows:
        raise SystemExit(f"{variant.label} wrote {written} rows, not {rows}")


def report(variants: list[Variant], rows: int, rounds: int) -> None:
    print(f"\n{rows:,} rows, median of {rounds} round(s); task = the attempt as recorded, wall = the nbflow process")
    for job in ("extract", "load"):
        group = [v for v in variants if v.job == job]
        title = "extract PostgreSQL -> Parquet" if job == "extract" else "load Parquet -> PostgreSQL table"
        print(f"\n{title}")
        for v in group:
            task, wall = statistics.median(v.task_times), statistics.median(v.wall_times)
            print(f"  {v.label:<60} task {task:7.2f} s  {rows / task:>12,.0f} rows/s   wall {wall:7.2f} s")
        baseline = next(v for v in group if v.pandas)
        for v in group:
            if v is baseline:
                continue
            task_ratio = statistics.median(baseline.task_times) / statistics.median(v.task_times)
            wall_ratio = statistics.median(baseline.wall_times) / statistics.median(v.wall_times)
            print(f"  {v.label:<60} {task_ratio:5.1f}x faster (task), {wall_ratio:5.1f}x (wall)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--postgres-url", help="an existing server to use (default: start a throwaway one)")
    args = parser.parse_args()
    with postgres(args.postgres_url) as url, tempfile.TemporaryDirectory(prefix="nbflow-bench-etl-") as tmp:
        os.environ[VARIABLE] = url
        root = Path(tmp)
        parquet = root / "events.parquet"
        prepare_data(url, args.rows, parquet)
        variants = write_pipelines(root, parquet)
        for round_ in range(args.warmup + args.rounds):
            timed = round_ >= args.warmup
            for variant in variants:
                task, wall = run_once(variant)
                check(variant, url, args.rows)
                if timed:
                    variant.task_times.append(task)
                    variant.wall_times.append(wall)
                what = "round" if timed else "warm-up"
                print(f"{what} {round_ + 1}: {variant.label}: task {task:.2f} s, wall {wall:.2f} s", flush=True)
        report(variants, args.rows, args.rounds)


if __name__ == "__main__":
    main()
