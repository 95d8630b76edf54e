"""``nbflow export``: the pipeline written for another orchestrator."""

from __future__ import annotations

from pathlib import Path

import click

from nbflow.cli.options import handle_errors, path_argument


@click.group()
def export() -> None:
    """Write the pipeline for another orchestrator."""


@export.command("airflow")
@path_argument
@click.option(
    "-o",
    "--output",
    "dags_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="The folder to write the DAG file in (Airflow's dags folder).",
)
@click.option("--dag-id", default=None, help="The DAG's id (default: the pipeline folder's name).")
@click.option(
    "--notebooks-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Where Airflow's runs write executed notebooks and logs (default: the pipeline's _nbflow/airflow).",
)
@handle_errors
def export_airflow(path: str, dags_dir: str, dag_id: str | None, notebooks_dir: str | None) -> None:
    """Write the pipeline in PATH as an Airflow 3 DAG file: one task per nbflow task, the same
    dependencies, retries, timeouts, trigger rules, schedule and alerts."""
    from nbflow.integrations.airflow.export import export as write_dag
    from nbflow.pipeline import Pipeline

    pipeline = Pipeline.from_dir(path, load_code=True)  # the DAG file runs every task, code ones too
    out = write_dag(
        pipeline, dags_dir, dag_id=dag_id, output_dir=str(Path(notebooks_dir).resolve()) if notebooks_dir else None
    )
    click.echo(f"wrote {out} ({len(pipeline.specs)} tasks)")


COMMANDS = (export,)
