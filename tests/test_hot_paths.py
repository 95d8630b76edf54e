"""The quick commands load only what they need: no kernel machinery, no papermill, no widgets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("jupyter_client", "papermill", "nbclient", "ipywidgets", "zmq", "IPython")
#: the drivers of connections: a view never reaches a database or an object store
DRIVERS = ("psycopg", "pymysql", "pymongo", "s3fs", "botocore", "adbc_driver_manager", "pyarrow", "sqlalchemy")

PROBE = """
import json, sys
from nbflow.cli import cli
try:
    cli.main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)
"""


def _modules_loaded_by(*args: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_an_up_to_date_run_status_and_dag_load_no_kernel_machinery(tmp_path: Path, make_notebook, nbflow_cli) -> None:
    make_notebook("a", "upstream = None", "x = 1")
    make_notebook("b", "upstream = ['a']", "y = 2")
    assert nbflow_cli("run", str(tmp_path)).exit_code == 0
    for command in (["run", str(tmp_path), "--no-progress"], ["status", str(tmp_path)], ["dag", str(tmp_path)]):
        loaded = _modules_loaded_by(*command)
        assert "nbflow" in loaded
        assert not loaded & {*HEAVY, *DRIVERS}, f"nbflow {command[0]} loaded {sorted(loaded & {*HEAVY, *DRIVERS})}"


ENTRY = """
import json, sys
from nbflow.cli import main
sys.argv = ["nbflow", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted({m.split('.')[0] for m, mod in sys.modules.items() if mod is not None})), file=sys.stderr)
"""


def test_a_run_does_not_build_jsonschemas_iri_parser(tmp_path: Path, make_notebook) -> None:
    make_notebook("a", "upstream = None", "x = 1")
    proc = subprocess.run(
        [sys.executable, "-c", ENTRY, "run", str(tmp_path), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    loaded = set(json.loads(proc.stderr.strip().splitlines()[-1]))
    assert {"papermill", "nbformat", "jsonschema"} <= loaded, "a task ran, through papermill"
    assert "rfc3987_syntax" not in loaded and "lark" not in loaded


WIDGET_STACK = ("ipywidgets", "anywidget")

SERVER_PROBE = """
import json, sys
import nbflow.server
import nbflow.server.service
import nbflow.server.handlers
from nbflow.server.service import NbflowService
NbflowService(sys.argv[1]).dag(".")  # a route's work: discovery, the layout, the parameters
print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)
"""


def test_the_server_extension_does_not_load_the_widget_stack(tmp_path: Path, make_notebook) -> None:
    make_notebook("a", "upstream = None", "x = 1")
    make_notebook("b", "upstream = ['a']", "y = 2")
    proc = subprocess.run(
        [sys.executable, "-c", SERVER_PROBE, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stderr.strip().splitlines()[-1]))
    assert {"nbflow", "tornado", "jupyter_server"} <= loaded
    assert not loaded & set(WIDGET_STACK), f"the server loaded {sorted(loaded & set(WIDGET_STACK))}"


def test_a_report_does_not_load_the_widget_stack(tmp_path: Path, make_notebook, nbflow_cli) -> None:
    make_notebook("a", "upstream = None", "x = 1")
    assert nbflow_cli("run", str(tmp_path), "--no-progress").exit_code == 0
    out = tmp_path / "report.html"
    loaded = _modules_loaded_by("report", str(tmp_path), "-o", str(out))
    assert out.read_text().startswith("<!doctype html>"), "the report was written"
    assert "nbflow" in loaded
    assert not loaded & set(WIDGET_STACK), f"nbflow report loaded {sorted(loaded & set(WIDGET_STACK))}"
