"""Task kinds together: any task may be the upstream of any other, whatever the kinds.

One pipeline folder holds an upstream task of each kind (a notebook, a SQL file, a Python
function and an HTTP request, the last two in ``nbflow_tasks.py``) and, for each pair of
kinds, a downstream of the one kind reading the product of the other: 16 pairs, one run of
the real CLI. Every product is a one-row CSV ``value`` naming the kind that wrote it first.
"""

from __future__ import annotations

import csv
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from nbflow.errors import PipelineValidationError
from nbflow.kinds import KINDS, code_kind, file_kinds, kind_of
from nbflow.pipeline import Pipeline
from tests.conftest import http_server, nbflow_process, write_notebook

KIND_NAMES = ("notebook", "sql", "python", "http")
PAIRS = [(up, down) for up in KIND_NAMES for down in KIND_NAMES]


@pytest.fixture
def csv_server():
    """A local API: ``GET /csv?value=x`` answers a one-row CSV of ``x``; ``POST /echo`` answers
    the file its JSON body's only upstream names (the product of the task before)."""
    posted: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's hook name
            url = urlparse(self.path)
            value = parse_qs(url.query).get("value", ["?"])[0]
            self._answer(f"value\n{value}\n".encode())

        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            posted.append(body)
            (path,) = body["upstream"].values()
            self._answer(Path(path).read_bytes())

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with http_server(Handler) as base:
        yield f"{base}", posted


def _value(path: Path) -> str:
    """The one value of a product."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1, rows
    return rows[0]["value"]


COPY = "open(product, 'w').write('value\\n' + open(upstream[{up!r}]).read().split()[1] + '\\n')"


def _write_notebook_task(folder: Path, name: str, up: str | None) -> None:
    if up is None:
        write_notebook(
            folder,
            name,
            "upstream = None\nproduct = 'out/up_notebook.csv'",
            "open(product, 'w').write('value\\nfrom-notebook\\n')",
        )
    else:
        write_notebook(folder, name, f"upstream = [{up!r}]\nproduct = 'out/{name}.csv'", COPY.format(up=up))


def _write_sql_task(folder: Path, name: str, up: str | None) -> None:
    if up is None:
        text = "-- upstream = None\n-- product = 'out/up_sql.csv'\nSELECT 'from-sql' AS value;\n"
    else:  # an upstream's product is a view named after the task
        text = f"-- upstream = [{up!r}]\n-- product = 'out/{name}.csv'\nSELECT value FROM {up};\n"
    (folder / f"{name}.sql").write_text(text)


def _code_tasks(base: str, downstream: dict[str, list[str]]) -> str:
    """``nbflow_tasks.py``: the Python and HTTP upstreams, and their kinds' downstreams, all literal."""
    lines = [
        "def _copy(source, product):",
        "    open(product, 'w').write('value\\n' + open(source).read().split()[1] + '\\n')",
        "",
        "",
        "def setup(pipeline):",
        "    @pipeline.task(product='out/up_python.csv')",
        "    def up_python(product):",
        "        open(product, 'w').write('value\\nfrom-python\\n')",
        "",
        f"    pipeline.http_task('up_http', {base + '/csv'!r}, params={{'value': 'from-http'}}, product='out/up_http.csv')",
    ]
    for up in downstream["python"]:
        name = f"python_after_{up}"
        lines += [
            "",
            f"    @pipeline.task(upstream=[{up!r}], product='out/{name}.csv')",
            f"    def {name}(upstream, product):",
            f"        _copy(upstream[{up!r}], product)",
        ]
    for up in downstream["http"]:
        name = f"http_after_{up}"
        lines.append(
            f"    pipeline.http_task({name!r}, {base + '/echo'!r}, method='POST', upstream=[{up!r}], "
            f"product='out/{name}.csv')"
        )
    return "\n".join(lines) + "\n"


def test_every_kind_reads_the_product_of_every_kind(tmp_path: Path, csv_server) -> None:
    base, posted = csv_server
    folder = tmp_path / "pipe"
    folder.mkdir()
    ups = {kind: f"up_{kind}" for kind in KIND_NAMES}
    _write_notebook_task(folder, "up_notebook", None)
    _write_sql_task(folder, "up_sql", None)
    downstream: dict[str, list[str]] = {kind: [] for kind in KIND_NAMES}
    for up, down in PAIRS:
        name = f"{down}_after_{ups[up]}"
        if down == "notebook":
            _write_notebook_task(folder, name, ups[up])
        elif down == "sql":
            _write_sql_task(folder, name, ups[up])
        downstream[down].append(ups[up])
    (folder / "nbflow_tasks.py").write_text(_code_tasks(base, downstream))

    looked = Pipeline.from_dir(folder)  # read, not run: every edge is there already
    assert looked.not_loaded == {
        "up_python",
        "up_http",
        *(f"{k}_after_up_{u}" for u, k in PAIRS if k in ("python", "http")),
    }
    for up, down in PAIRS:
        assert looked.dag.upstreams[f"{down}_after_{ups[up]}"] == (ups[up],)

    run = nbflow_process("run", str(folder), "--json", "--workers", "2")
    assert run.returncode == 0, run.stderr + run.stdout
    tasks = json.loads(run.stdout)["tasks"]
    assert len(tasks) == 4 + len(PAIRS) and {t["state"] for t in tasks.values()} == {"success"}, tasks
    for up, down in PAIRS:
        seen = _value(folder / "out" / f"{down}_after_{ups[up]}.csv")
        assert seen == f"from-{up}", f"{down} after {up}"
    sent = sorted(path for body in posted for path in body["upstream"].values())
    assert sent == sorted(str(folder / "out" / f"up_{kind}.csv") for kind in KIND_NAMES), "HTTP tasks sent the paths"


# -- a task file whose upstream is a task defined in code -----------------------------------


def _code_folder(folder: Path, marker: Path, body: str) -> Path:
    """A folder whose ``nbflow_tasks.py`` touches ``marker`` when imported."""
    folder.mkdir()
    (folder / "nbflow_tasks.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n\n\ndef setup(pipeline):\n{body}"
    )
    return folder


FETCH = (
    "    @pipeline.task(product='fetched.csv')\n"
    "    def fetch(product):\n"
    "        open(product, 'w').write('value\\nfetched\\n')\n"
)


def test_a_notebook_after_a_code_task_is_seen_without_running_the_code(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    folder = _code_folder(tmp_path / "pipe", marker, FETCH)
    write_notebook(folder, "after", "upstream = ['fetch']", "print(open(upstream['fetch']).read())")

    pipeline = Pipeline.from_dir(folder, save_cache=False)
    assert pipeline.dag.upstreams["after"] == ("fetch",) and pipeline.not_loaded == {"fetch"}
    assert pipeline.code_unread == []
    dag = nbflow_process("dag", str(folder), "--format", "json")
    assert dag.returncode == 0, dag.stderr
    assert json.loads(dag.stdout)["edges"] == [["fetch", "after"]]
    text = nbflow_process("dag", str(folder))
    assert text.returncode == 0 and "after  <- fetch" in text.stdout, text.stdout + text.stderr
    assert not marker.exists(), "looking ran nbflow_tasks.py"

    pipeline.load_code()
    assert marker.exists() and pipeline.code_loaded and pipeline.dag.upstreams["after"] == ("fetch",)
    assert callable(pipeline.specs["fetch"].target)


def test_an_unknown_upstream_still_names_the_file_and_the_missing_task(tmp_path: Path) -> None:
    folder = _code_folder(tmp_path / "pipe", tmp_path / "imported", FETCH)
    (folder / "after.sql").write_text("-- upstream = ['fecth']\nSELECT 1 AS value;\n")

    for command in ("run", "dag"):
        proc = nbflow_process(command, str(folder))
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "after.sql declares upstream 'fecth', which is not a task of this pipeline" in proc.stderr
        assert "Did you mean 'fetch'?" in proc.stderr
    with pytest.raises(PipelineValidationError, match="after.sql declares upstream 'fecth'"):
        Pipeline.from_dir(folder, save_cache=False)
    assert not (tmp_path / "imported").exists()


def test_a_cycle_through_a_code_task_names_its_loop(tmp_path: Path) -> None:
    body = "    @pipeline.task(upstream=['after'])\n    def fetch():\n        pass\n"
    folder = _code_folder(tmp_path / "pipe", tmp_path / "imported", body)
    (folder / "after.sql").write_text("-- upstream = ['fetch']\nSELECT 1 AS value;\n")

    looked = Pipeline.from_dir(folder, save_cache=False)  # looking notes it: only a run can tell for sure
    assert looked.dag.upstreams["after"] == ("fetch",) and looked.dag.upstreams["fetch"] == ()
    assert looked.code_unread == ["the edge after -> fetch would close the cycle after -> fetch -> after"]
    proc = nbflow_process("run", str(folder))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Cycle in upstreams: after -> fetch -> after" in proc.stderr
    with pytest.raises(PipelineValidationError, match="Cycle in upstreams: after -> fetch -> after"):
        looked.load_code()
    assert not looked.code_loaded and looked.not_loaded == {"fetch"}, "left as it was"


def test_an_upstream_the_code_may_define_waits_for_the_code_to_run(tmp_path: Path) -> None:
    body = "    NAME = 'fe' + 'tch'\n" + FETCH.replace("@pipeline.task(", "@pipeline.task(name=NAME, ")
    folder = _code_folder(tmp_path / "pipe", tmp_path / "imported", body)
    (folder / "after.sql").write_text(
        "-- upstream = ['fetch']\n-- product = 'after.csv'\nSELECT value FROM \"fetch\";\n"
    )

    looked = Pipeline.from_dir(folder, save_cache=False)
    assert looked.not_loaded == set() and looked.dag.upstreams["after"] == ()
    assert "after.sql declares upstream 'fetch', which is no task listed; nbflow_tasks.py may define it" in (
        looked.code_note or ""
    )
    result = Pipeline.from_dir(folder).run(workers=2)
    assert result.ok, result.tasks
    assert _value(folder / "after.csv") == "fetched"


def test_the_registry_knows_each_kind_by_name_and_suffix() -> None:
    from nbflow.errors import UnknownKindError

    assert list(KINDS) == [*KIND_NAMES, "mongo"]  # a mongo task needs a server: tests/test_mongo_tasks.py
    assert {s: k.name for s, k in file_kinds().items()} == {
        ".ipynb": "notebook",
        ".py": "notebook",  # with a Jupytext header
        ".md": "notebook",
        ".sql": "sql",
    }
    assert [k.name for k in KINDS.values() if k.uses_kernel] == ["notebook"]
    assert [k.name for k in KINDS.values() if k.injects_defaults] == ["sql", "http", "mongo"]
    with pytest.raises(UnknownKindError, match="No task kind named 'shell'; nbflow knows http, mongo, notebook, python, sql"):
        kind_of("shell")
    with pytest.raises(UnknownKindError, match="nbflow knows http, mongo, python"):
        code_kind("sql")


def test_an_http_tasks_params_are_sent_as_declared_and_must_be_literals(tmp_path: Path, csv_server) -> None:
    import datetime

    base, _ = csv_server
    (tmp_path / "after.sql").write_text("-- upstream = None\n-- product = 'after.csv'\nSELECT value FROM ask;\n")
    pipeline = Pipeline.from_dir(tmp_path)
    with pytest.raises(PipelineValidationError, match="parameter 'since' must be a literal .*got date"):
        pipeline.http_task("ask", f"{base}/csv", params={"since": datetime.date(2026, 1, 1)})
    pipeline.http_task("ask", f"{base}/csv", params={"value": "declared"}, product="asked.csv") >> pipeline["after"]
    assert pipeline.run(workers=1).ok and _value(tmp_path / "after.csv") == "declared", "the default was sent"
    assert pipeline.run(params={"ask.value": "overridden"}, workers=1).ok
    assert _value(tmp_path / "after.csv") == "overridden"
