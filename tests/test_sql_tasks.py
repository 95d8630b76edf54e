"""SQL tasks: declared in a header comment, run by DuckDB, parameters bound, never formatted."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from nbflow.pipeline import Pipeline
from tests.conftest import nbflow_process, write_notebook


def test_a_sql_task_reads_upstream_products_binds_parameters_and_writes_its_product(tmp_path: Path) -> None:
    write_notebook(
        tmp_path,
        "make",
        "upstream = None\nproduct = {'rows': 'out/rows.parquet'}",
        'import duckdb\nduckdb.sql("COPY (SELECT range AS x, range % 3 AS g FROM range(30)) '
        "TO '\" + product['rows'] + \"' (FORMAT parquet)\")",
    )
    (tmp_path / "summarize.sql").write_text(
        "-- Sums per group, for groups at least min_group.\n"
        "-- upstream = ['make']\n"
        "-- product = 'out/summary.csv'\n"
        "-- min_group = 1\n"
        "-- label = 'x'\n"
        "SELECT g, sum(x) AS total, $label AS label FROM make_rows WHERE g >= $min_group GROUP BY g ORDER BY g;\n"
    )
    write_notebook(
        tmp_path,
        "report",
        "upstream = ['summarize']",
        "import duckdb\nprint(duckdb.sql(f\"SELECT count(*) FROM '{upstream['summarize']}'\").fetchall()[0][0])",
    )
    evil = "x'; DROP TABLE make_rows; --"
    proc = nbflow_process("run", str(tmp_path), "-p", f"label={evil}", "-p", "summarize.min_group=2", "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    rows = duckdb.sql(f"SELECT * FROM read_csv('{tmp_path / 'out/summary.csv'}')").fetchall()
    assert rows == [(2, sum(x for x in range(30) if x % 3 == 2), evil)]
    assert "-- 1 rows" in nbflow_process("logs", str(tmp_path), "summarize").stdout
    dag = json.loads(nbflow_process("dag", str(tmp_path), "--format", "json").stdout)
    assert ["make", "summarize"] in dag["edges"] and ["summarize", "report"] in dag["edges"]
    status = json.loads(nbflow_process("status", str(tmp_path), "--json").stdout)
    assert status["tasks"]["summarize"]["state"] == "success"
    assert status["tasks"]["summarize"]["output_notebook"] is None


def test_the_result_is_computed_once(tmp_path: Path) -> None:
    (tmp_path / "rand.sql").write_text("-- upstream = None\n-- product = 'r.csv'\nSELECT random() AS r;\n")
    result = Pipeline.from_dir(tmp_path).run(workers=1)
    assert result.ok
    written = duckdb.sql(f"SELECT r FROM read_csv('{tmp_path / 'r.csv'}')").fetchall()[0][0]
    with Pipeline.from_dir(tmp_path).open_store() as store:
        assert str(written)[:8] in store.get_log(result.run_id, "rand", 1)


def test_a_failing_query_is_a_failed_task_with_duckdbs_message(tmp_path: Path) -> None:
    (tmp_path / "broken.sql").write_text("-- upstream = None\nSELECT * FROM no_such_table;\n")
    result = Pipeline.from_dir(tmp_path).run(workers=1)
    assert result.states == {"broken": "failed"}
    assert result.tasks["broken"].error.startswith("CatalogException")
    assert "no_such_table" in result.tasks["broken"].error


def test_sql_declarations_are_validated(tmp_path: Path, nbflow_cli) -> None:
    (tmp_path / "bad.sql").write_text("-- upstream = 'a', 'b'\n-- product = {'a': 'x.parquet'}\nSELECT 1;\n")
    result = nbflow_cli("dag", str(tmp_path))
    assert result.exit_code == 2
    assert "bad.sql is not a valid SQL task" in result.stderr or "bad.sql" in result.stderr


def test_a_sql_task_past_its_timeout_is_interrupted(tmp_path: Path) -> None:
    (tmp_path / "nbflow.toml").write_text("[tasks.endless]\ntimeout = 1\n")
    (tmp_path / "endless.sql").write_text("-- upstream = None\nSELECT count(*) FROM range(1000000000000) a;\n")
    result = Pipeline.from_dir(tmp_path).run(workers=1)
    assert result.states == {"endless": "failed"}
    assert result.tasks["endless"].error.startswith("TaskTimeout")
    assert result.tasks["endless"].duration_s < 10
