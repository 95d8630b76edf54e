"""Airflow: the DAG file export and the functions the exported file calls."""
