"""A virtual environment with Apache Airflow, for the export's tests and benchmark.

Airflow (about 130 packages) is never a dependency of nbflow's own environment: it goes
in a venv of its own, with nbflow's dependencies, built once and cached (key: Python's
version and the requirements) in ``~/.cache/nbflow-tests/`` or ``NBFLOW_AIRFLOW_VENV``.
nbflow itself comes from this checkout, through ``PYTHONPATH``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AIRFLOW = "apache-airflow==3.3.2"


def requirements() -> list[str]:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    # psycopg: the connection tests' tasks reach PostgreSQL through nbflow.connect()
    return [
        AIRFLOW,
        *project["dependencies"],
        *extras["example"],
        *(r for r in extras["etl"] if r.startswith("psycopg")),
    ]


def airflow_venv() -> Path:
    """The venv's Python, building the venv first if needed."""
    reqs = requirements()
    key = hashlib.sha256(json.dumps([sys.version, reqs]).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nbflow-tests"
    venv = Path(os.environ.get("NBFLOW_AIRFLOW_VENV") or cache / f"airflow-{key}")
    if not (venv / ".complete").exists():
        building = venv.with_name(venv.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(building)], check=True)
        subprocess.run(
            [str(building / "bin" / "python"), "-m", "pip", "install", "--quiet", *reqs], check=True, timeout=1500
        )
        shutil.rmtree(venv, ignore_errors=True)
        building.rename(venv)
        (venv / ".complete").write_text("\n".join(reqs))
    return venv / "bin" / "python"


def airflow_env(home: Path, dags: Path) -> dict[str, str]:
    """Environment for an Airflow of its own: home, dags folder, a SQLite metadata DB."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "PYTHONWARNINGS": "ignore",
    }


def airflow(python: Path, env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the ``airflow`` command of that venv."""
    return subprocess.run(
        [str(python), "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
