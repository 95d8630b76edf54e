"""``nbflow export airflow``: the DAG file's text here; then, for real, in Airflow 3.

The Airflow tests need ``NBFLOW_TEST_AIRFLOW=1`` (``scripts/test`` sets it): they build a
virtual environment with ``apache-airflow`` and nbflow's dependencies once (cached in
``~/.cache/nbflow-tests/``, or ``NBFLOW_AIRFLOW_VENV``), then parse the exported file with
Airflow's own DagBag, migrate a throwaway SQLite metadata database and run
``airflow dags test``, with this checkout of nbflow on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import textwrap
from pathlib import Path

import pytest

from nbflow.integrations.airflow.export import ExportError, airflow_id, dag_source, task_ids
from nbflow.pipeline import Pipeline
from tests.airflowenv import airflow, airflow_env, airflow_venv
from tests.conftest import REPO, write_notebook

#: the throwaway servers' fixtures (postgres_url)
pytest_plugins = ["servers_plugin"]

# -- the DAG file's text (no Airflow needed) -------------------------------------------------


def test_task_ids_follow_airflows_rules_and_collisions_are_refused():
    assert task_ids(["etl/clean", "load", "naïve name"]) == {
        "etl/clean": "etl.clean",
        "load": "load",
        "naïve name": "na_ve_name",
    }
    with pytest.raises(ExportError, match="'etl/clean' and 'etl.clean' would both be Airflow task 'etl.clean'"):
        task_ids(["etl/clean", "etl.clean"])
    assert airflow_id("my pipeline") == "my_pipeline"


def settings_pipeline(root: Path) -> Pipeline:
    root.mkdir(parents=True)
    (root / "nbflow.toml").write_text(
        textwrap.dedent(
            """\
            schedule = "0 6 * * *"
            max_active_runs = 2
            retries = 2
            retry_delay = "1m"
            retry_backoff = 2
            max_retry_delay = "10m"
            timeout = "15m"
            alert_on = ["failure", "run_end"]

            [tasks.cleanup]
            trigger_rule = "all_done"
            retries = 0
            alert_on = ["success"]

            [tasks.fetch]
            retry_rules = [{ match = "ValueError", action = "fail" }]

            [tasks."etl/clean"]
            retry_rules = [{ match = "ConnectionError", action = "retry", delay = "5s" }]

            [email]
            host = "127.0.0.1"
            sender = "nbflow@localhost"
            to = ["team@localhost"]
            """
        )
    )
    write_notebook(root, "fetch", 'upstream = None\nproduct = "out/raw.csv"\nrows = 100', "open(product, 'w')")
    write_notebook(root, "etl/clean", 'upstream = ["fetch"]\nproduct = "out/clean.csv"\nrows = 100', "1")
    write_notebook(root, "cleanup", 'upstream = ["fetch", "etl/clean"]\nthreshold = 0.5', "1")
    return Pipeline.from_dir(root)


def test_settings_map_to_airflows_own(tmp_path):
    source = dag_source(settings_pipeline(tmp_path / "p"), today=__import__("datetime").date(2026, 1, 2))
    compile(source, "dag.py", "exec")  # valid Python
    assert 'schedule="0 6 * * *"' in source and "max_active_runs=2" in source
    assert 'start_date=pendulum.datetime(2026, 1, 2, tz="UTC")' in source and "catchup=False" in source
    for arg in (
        '"retries": 2',
        '"retry_delay": timedelta(seconds=60)',
        '"retry_exponential_backoff": 2.0',
        '"max_retry_delay": timedelta(seconds=600)',
        '"execution_timeout": timedelta(seconds=900)',
    ):
        assert arg in source
    assert 'on_failure_callback=[NbflowAlert(PIPELINE, "run_end")]' in source
    assert (
        'cleanup = nbflow_task.override(task_id="cleanup", retries=0, trigger_rule="all_done", '
        'on_success_callback=[NbflowAlert(PIPELINE, "success", "cleanup")])("cleanup")'
    ) in source
    assert '**retry_policy(PIPELINE, "fetch")' in source
    assert 'etl_clean = nbflow_task.override(task_id="etl.clean", ' in source
    assert "[fetch, etl_clean] >> cleanup" in source
    assert '"rows": 100' in source and '"threshold": 0.5' in source


def odd_pipeline(root: Path) -> Pipeline:
    """Names that must not break (or get into) the DAG file's code."""
    root.mkdir(parents=True)
    (root / "nbflow.toml").write_text('[tasks.timedelta]\ntimeout = "1m"\nretry_jitter = true\n')
    write_notebook(root, "timedelta", 'upstream = None\nbig = 1e999\nlabel = "a\\"b"', "1")
    write_notebook(root, "dag", 'upstream = ["timedelta"]\nwhen = {1, 2}', "1")
    write_notebook(root, "2nd\nimport os", 'upstream = ["dag"]', "1")
    return Pipeline.from_dir(root)


ODD_ROOT = 'we"ird \\user\nimport os  # '


def test_odd_names_paths_and_values_stay_data(tmp_path):
    import ast

    source = dag_source(odd_pipeline(tmp_path / ODD_ROOT))
    module = ast.parse(source)
    kinds = [type(node).__name__ for node in module.body]
    assert kinds == [
        "Expr",  # the docstring
        "ImportFrom",
        "ImportFrom",
        "Import",
        "ImportFrom",
        "ImportFrom",
        "Assign",  # PIPELINE
        "Assign",  # OUTPUT_DIR
        "FunctionDef",  # nbflow_task
        "FunctionDef",  # pipeline_dag
        "Expr",  # pipeline_dag()
    ], "nothing from a name, a path or a value became code"
    assert ast.literal_eval(module.body[6].value) == str(tmp_path / ODD_ROOT)
    assert '"big"' not in source and '"when"' not in source, "values Airflow cannot keep are left out"
    assert '"label": "a\\"b"' in source
    assert "timedelta_2 = nbflow_task.override(" in source, "a task variable never shadows a name in use"


def test_export_command_writes_the_file_and_refuses_bad_input(tmp_path, nbflow_cli):
    write_notebook(tmp_path / "p", "a", "upstream = None", "1")
    result = nbflow_cli("export", "airflow", str(tmp_path / "p"), "-o", str(tmp_path / "dags"))
    assert result.exit_code == 0, result
    assert (tmp_path / "dags" / "p.py").is_file() and "p.py" in result.stdout
    result = nbflow_cli("export", "airflow", str(tmp_path / "p"), "-o", str(tmp_path / "dags"), "--dag-id", "a b")
    assert result.exit_code == 2 and "'a b' is not a valid Airflow dag id" in result.stderr
    write_notebook(tmp_path / "p", "etl/x", "upstream = None", "1")
    write_notebook(tmp_path / "p", "etl.x", "upstream = None", "1")
    result = nbflow_cli("export", "airflow", str(tmp_path / "p"), "-o", str(tmp_path / "dags"))
    assert result.exit_code == 2 and "would both be Airflow task 'etl.x'" in result.stderr
    write_notebook(tmp_path / "bad", "a", 'upstream = ["nope"]', "1")
    result = nbflow_cli("export", "airflow", str(tmp_path / "bad"), "-o", str(tmp_path / "dags"))
    assert result.exit_code == 2 and "nope" in result.stderr


# -- in Airflow ---------------------------------------------------------------------------------

needs_airflow = pytest.mark.skipif(
    os.environ.get("NBFLOW_TEST_AIRFLOW") != "1",
    reason="installs Airflow (about 130 packages): set NBFLOW_TEST_AIRFLOW=1 (scripts/test does)",
)


@pytest.fixture(scope="session")
def airflow_python() -> Path:
    """The Python of a venv with Airflow and nbflow's dependencies (built once, cached)."""
    return airflow_venv()


@pytest.fixture(scope="session")
def airflow_etl_python(airflow_python: Path) -> Path:
    """The Airflow venv with the PostgreSQL client nbflow[etl] names (psycopg), added once."""
    import tomllib

    if subprocess.run([str(airflow_python), "-c", "import psycopg"], capture_output=True).returncode != 0:
        etl = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["etl"]
        wanted = [r for r in etl if r.startswith("psycopg")]
        subprocess.run([str(airflow_python), "-m", "pip", "install", "--quiet", *wanted], check=True, timeout=900)
    return airflow_python


DAGBAG = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "schedule": getattr(dag.timetable, "expression", None),
        "max_active_runs": dag.max_active_runs,
        "params": sorted(dag.params.keys()),
        "tasks": {
            t.task_id: {
                "upstream": sorted(t.upstream_task_ids),
                "retries": t.retries,
                "retry_delay": t.retry_delay.total_seconds(),
                "backoff": float(t.retry_exponential_backoff),
                "max_retry_delay": t.max_retry_delay.total_seconds() if t.max_retry_delay else None,
                "timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
                "trigger_rule": getattr(t.trigger_rule, "value", t.trigger_rule),
                "on_success": len(t.on_success_callback or []),
                "on_failure": len(t.on_failure_callback or []),
                "retry_policy": t.retry_policy is not None,
            }
            for t in dag.tasks
        },
    }
print(json.dumps(out))
"""


@needs_airflow
@pytest.mark.timeout(1800)
def test_airflows_dagbag_reads_the_export_with_every_setting(tmp_path, airflow_python, nbflow_cli):
    pipeline = settings_pipeline(tmp_path / "p")
    dags = tmp_path / "dags"
    assert nbflow_cli("export", "airflow", str(pipeline.root), "-o", str(dags), "--dag-id", "nightly").exit_code == 0
    odd = odd_pipeline(tmp_path / ODD_ROOT)
    assert nbflow_cli("export", "airflow", str(odd.root), "-o", str(dags), "--dag-id", "odd").exit_code == 0
    done = subprocess.run(
        [str(airflow_python), "-c", DAGBAG, str(dags)],
        env=airflow_env(tmp_path / "home", dags),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    bag = json.loads(done.stdout.strip().splitlines()[-1])
    assert bag["errors"] == {}
    dag = bag["dags"]["nightly"]
    assert dag["schedule"] == "0 6 * * *" and dag["max_active_runs"] == 2
    assert dag["params"] == ["rows", "threshold"]
    tasks = dag["tasks"]
    assert set(tasks) == {"fetch", "etl.clean", "cleanup"}
    assert tasks["etl.clean"]["upstream"] == ["fetch"]
    assert tasks["cleanup"]["upstream"] == ["etl.clean", "fetch"]
    fetch = tasks["fetch"]
    assert (fetch["retries"], fetch["retry_delay"], fetch["backoff"]) == (2, 60.0, 2.0)
    assert (fetch["max_retry_delay"], fetch["timeout"]) == (600.0, 900.0)
    assert fetch["retry_policy"] and fetch["on_failure"] == 1
    cleanup = tasks["cleanup"]
    assert cleanup["trigger_rule"] == "all_done" and cleanup["retries"] == 0
    assert cleanup["on_success"] == 1 and cleanup["on_failure"] == 0
    odd_tasks = bag["dags"]["odd"]["tasks"]
    assert set(odd_tasks) == {"timedelta", "dag", "2nd_import_os"} and odd_tasks["timedelta"]["timeout"] == 60.0

    # the retry rules, as Airflow's retry policy evaluates them in a worker
    done = subprocess.run(
        [str(airflow_python), "-c", POLICY, str(pipeline.root)],
        env=airflow_env(tmp_path / "home", dags),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "fetch ValueError": ["fail", None],
        "fetch KeyError": ["default", None],
        "etl/clean ConnectionError": ["retry", 5.0],
        "etl/clean other exception": ["default", None],
    }


POLICY = """
import json, sys
from nbflow.integrations.airflow.tasks import NbflowTaskFailed, retry_policy
root = sys.argv[1]
out = {}
for task, ename in [("fetch", "ValueError"), ("fetch", "KeyError"), ("etl/clean", "ConnectionError")]:
    policy = retry_policy(root, task)["retry_policy"]
    d = policy.evaluate(NbflowTaskFailed(task, ename + ": x", ename, None, "nb.ipynb"), 1, 3)
    out[f"{task} {ename}"] = [d.action.value, d.retry_delay.total_seconds() if d.retry_delay else None]
d = retry_policy(root, "etl/clean")["retry_policy"].evaluate(RuntimeError("x"), 1, 3)
out["etl/clean other exception"] = [d.action.value, None]
print(json.dumps(out))
"""


def _task_states(home: Path, dag_id: str) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute("SELECT task_id, state, try_number FROM task_instance WHERE dag_id = ?", (dag_id,))
        return {task: (state, tries) for task, state, tries in rows}


@needs_airflow
@pytest.mark.timeout(1800)
def test_airflow_dags_test_runs_the_example_pipeline(tmp_path, airflow_python, nbflow_cli):
    example = tmp_path / "example"
    shutil.copytree(REPO / "notebooks", example, ignore=shutil.ignore_patterns("_nbflow", "output"))
    dags, home = tmp_path / "dags", tmp_path / "home"
    result = nbflow_cli("export", "airflow", str(example), "-o", str(dags), "--dag-id", "churn")
    assert result.exit_code == 0, result
    env = airflow_env(home, dags)
    migrated = airflow(airflow_python, env, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    ran = airflow(airflow_python, env, "dags", "test", "churn")
    assert ran.returncode == 0, (ran.stdout + ran.stderr)[-4000:]
    expected = {airflow_id(n) for n in Pipeline.from_dir(example).specs}
    states = _task_states(home, "churn")
    assert set(states) == expected and {s for s, _ in states.values()} == {"success"}
    assert (example / "output" / "report.md").is_file(), "the last task's product"
    executed = list((example / "_nbflow" / "airflow" / "churn").glob("*/report/attempt-1.ipynb"))
    assert len(executed) == 1 and "Churn model report" in executed[0].read_text()
    assert "# Churn model report" in ran.stdout + ran.stderr, "the task's output is in Airflow's task log"


@needs_airflow
@pytest.mark.timeout(1800)
def test_in_airflow_a_failed_task_retries_alerts_and_keeps_its_notebook(
    tmp_path, airflow_python, nbflow_cli, smtp_server
):
    host, port, inbox = smtp_server
    root = tmp_path / "p"
    root.mkdir()
    (root / "nbflow.toml").write_text(
        f'alert_on = ["failure"]\n[tasks.flaky]\nretries = 1\nretry_delay = "0s"\n'
        '[tasks.bad]\nretries = 2\nretry_delay = "0s"\nretry_rules = [{ match = "ValueError", action = "fail" }]\n'
        f'[email]\nhost = "{host}"\nport = {port}\nsender = "nbflow@localhost"\nto = ["team@localhost"]\n'
    )
    write_notebook(root, "start", 'upstream = None\nproduct = "out/start.txt"', "open(product, 'w').write('s')")
    write_notebook(
        root,
        "flaky",
        'upstream = ["start"]\nproduct = "out/flaky.txt"',
        "import pathlib\nmark = pathlib.Path('flaky.mark')\n"
        "if not mark.exists():\n    mark.write_text('1')\n    raise ConnectionError('first try fails')\n"
        "open(product, 'w').write('ok')",
    )
    write_notebook(root, "bad", 'upstream = ["start"]\nproduct = "out/bad.txt"', "raise ValueError('bad row 7')")
    dags, home = tmp_path / "dags", tmp_path / "home"
    assert nbflow_cli("export", "airflow", str(root), "-o", str(dags), "--dag-id", "flows").exit_code == 0
    env = airflow_env(home, dags)
    assert airflow(airflow_python, env, "db", "migrate").returncode == 0
    airflow(airflow_python, env, "dags", "test", "flows")  # the run fails: its states say how
    states = _task_states(home, "flows")
    assert states["start"][0] == "success"
    assert states["flaky"] == ("success", 2), "Airflow retried it, as the nbflow setting says"
    assert states["bad"] == ("failed", 1), "its retry rule says a ValueError is not retried"
    executed = list((root / "_nbflow" / "airflow" / "flows").glob("*/bad/attempt-1.ipynb"))
    assert len(executed) == 1 and "bad row 7" in executed[0].read_text()
    subjects = [m[2] for m in inbox.messages]
    assert any("task bad failed" in text and "ValueError: bad row 7" in text for text in subjects), subjects


# -- connections ----------------------------------------------------------------------------------


def connections_pipeline(root: Path, table: str) -> Pipeline:
    """Tasks that use connections: one the project declares, one only its code names, one unused."""
    root.mkdir(parents=True)
    (root / "nbflow.toml").write_text('[connections]\nwarehouse = "WAREHOUSE_URL"\nspare = "SPARE_URL"\n')
    write_notebook(
        root,
        "load",
        f'upstream = None\nproduct = "table://warehouse/public.{table}"',
        "import nbflow\nconn = nbflow.connect('warehouse')\n"
        f"conn.execute('CREATE TABLE public.{table} (task text)')\n"
        f"conn.execute(\"INSERT INTO public.{table} VALUES ('load')\")\nconn.commit()\nprint('wrote a row')",
    )
    write_notebook(
        root,
        "audit",
        'upstream = ["load"]',
        "import nbflow\nconn = nbflow.connect('archive')\n"
        f"conn.execute(\"INSERT INTO public.{table} VALUES ('audit')\")\nconn.commit()",
    )
    write_notebook(
        root,
        "environ",
        'upstream = None\nproduct = "out/spare.txt"',
        "import os\nopen(product, 'w').write(os.environ.get('SPARE_URL', 'unset'))",
    )
    return Pipeline.from_dir(root)


def test_the_dag_file_names_the_connections_and_is_unchanged_without_them(tmp_path):
    import ast

    source = dag_source(connections_pipeline(tmp_path / "c", "t"))
    module = ast.parse(source)
    doc = ast.get_docstring(module) or ""
    assert '- "warehouse": variable "WAREHOUSE_URL"' in doc
    assert '- "spare": variable "SPARE_URL"' in doc
    assert '- "archive": variable "AIRFLOW_CONN_ARCHIVE"' in doc, "a name only the code uses: Airflow's variable"
    assert "Airflow's connection of the same id" in doc
    plain = dag_source(settings_pipeline(tmp_path / "p"))
    assert "Connections" not in plain and "variable" not in plain.split('"""')[1]


def test_only_connections_airflow_has_change_the_environment():
    from nbflow.integrations.airflow.connections import environment_updates

    variables = {"warehouse": "WAREHOUSE_URL", "archive": "AIRFLOW_CONN_ARCHIVE", "spare": "SPARE_URL"}
    airflow_has = {"warehouse": "postgres://u:p@h/db", "archive": "postgres://a:b@h/db"}
    environ = {"WAREHOUSE_URL": "postgresql://old@h/db", "SPARE_URL": "postgresql://s@h/db"}
    assert environment_updates(variables, environ, airflow_has.get) == {
        "WAREHOUSE_URL": ("warehouse", "postgres://u:p@h/db"),
        "AIRFLOW_CONN_ARCHIVE": ("archive", "postgres://a:b@h/db"),
    }
    environ["AIRFLOW_CONN_ARCHIVE"] = "postgres://set@h/db"  # Airflow's own variable: already what Airflow has
    assert set(environment_updates(variables, environ, airflow_has.get)) == {"WAREHOUSE_URL"}


@needs_airflow
@pytest.mark.timeout(1800)
def test_in_airflow_tasks_run_with_airflows_connections(tmp_path, airflow_etl_python, nbflow_cli, postgres_url):
    """Connections defined only in Airflow's metadata database reach the notebooks; one Airflow
    lacks keeps the worker's variable; no URI is written to a file or a log."""
    import secrets
    from urllib.parse import urlsplit

    import psycopg

    table = f"airflow_{secrets.token_hex(4)}"
    root = tmp_path / "p"
    connections_pipeline(root, table)
    dags, home = tmp_path / "dags", tmp_path / "home"
    assert nbflow_cli("export", "airflow", str(root), "-o", str(dags), "--dag-id", "conns").exit_code == 0
    env = {k: v for k, v in airflow_env(home, dags).items() if not k.startswith("AIRFLOW_CONN_")}
    env["WAREHOUSE_URL"] = "postgresql://nobody:wrong@127.0.0.1:1/nothing"  # Airflow's connection wins
    env["SPARE_URL"] = "postgresql://spare@127.0.0.1:1/spare"  # Airflow has no "spare": left as it is
    assert airflow(airflow_etl_python, env, "db", "migrate").returncode == 0
    for conn_id in ("warehouse", "archive"):
        added = airflow(airflow_etl_python, env, "connections", "add", conn_id, "--conn-uri", postgres_url)
        assert added.returncode == 0, added.stderr[-2000:]
    ran = airflow(airflow_etl_python, env, "dags", "test", "conns")
    output = ran.stdout + ran.stderr
    assert _task_states(home, "conns") == {n: ("success", 1) for n in ("load", "audit", "environ")}, output[-4000:]
    assert "connection 'warehouse' is Airflow's connection 'warehouse' (in $WAREHOUSE_URL" in output
    assert "(in $AIRFLOW_CONN_ARCHIVE for this task)" in output
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(f"SELECT task FROM public.{table} ORDER BY task").fetchall()
    assert rows == [("audit",), ("load",)]
    assert (root / "out" / "spare.txt").read_text() == env["SPARE_URL"]

    password = urlsplit(postgres_url).password
    assert password and password not in output
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.name.startswith("airflow.db"):  # Airflow keeps its connections there
            assert password.encode() not in path.read_bytes(), f"{path} holds the connection's password"
