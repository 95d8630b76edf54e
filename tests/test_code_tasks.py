"""Tasks defined in code: Python functions and HTTP requests, beside notebooks."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from nbflow.errors import PipelineValidationError
from nbflow.pipeline import Pipeline
from tests.conftest import http_server, nbflow_process, write_notebook


@pytest.fixture
def api_server():
    """A small local API: /rates answers JSON (echoing its query), /broken answers 500."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's hook name
            seen.append(self.path)
            url = urlparse(self.path)
            if url.path == "/rates":
                body = json.dumps({"query": parse_qs(url.query), "eur": 1.08}).encode()
                self.send_response(200)
            else:
                body = b"server exploded"
                self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with http_server(Handler) as base:
        yield f"{base}", seen


def test_function_and_http_tasks_run_beside_notebooks(tmp_path: Path, api_server) -> None:
    base, seen = api_server
    write_notebook(
        tmp_path,
        "prices",
        "upstream = None\nproduct = 'prices.json'",
        "import json\njson.dump({'usd': [10, 20]}, open(product, 'w'))",
    )
    write_notebook(tmp_path, "report", None, "print('report')")
    pipeline = Pipeline.from_dir(tmp_path)
    pipeline.http_task("rates", f"{base}/rates", params={"currency": "EUR"}, product="rates.json", retries=1)

    @pipeline.task(upstream=["prices", "rates"], product="converted.json", retries=2, retry_delay=0)
    def convert(upstream, product, factor=1):
        import json
        import pathlib

        marker = pathlib.Path("tried")
        if not marker.exists():
            marker.touch()
            raise ConnectionError("first try fails")
        usd = json.loads(pathlib.Path(upstream["prices"]).read_text())["usd"]
        eur = json.loads(pathlib.Path(upstream["rates"]).read_text())["eur"]
        print("converting", usd)
        pathlib.Path(product).write_text(json.dumps([round(v * eur * factor, 2) for v in usd]))

    pipeline["convert"] >> pipeline["report"]

    result = pipeline.run(params={"factor": 2, "rates.currency": "GBP"}, workers=2)
    assert result.ok, result.tasks
    assert result.states == {"prices": "success", "rates": "success", "convert": "success", "report": "success"}
    assert json.loads((tmp_path / "converted.json").read_text()) == [21.6, 43.2]
    assert result.tasks["convert"].attempts == 2
    assert json.loads((tmp_path / "rates.json").read_text())["query"] == {"currency": ["GBP"]}
    assert seen == ["/rates?currency=GBP"]
    with pipeline.open_store() as store:
        assert store.get_log(result.run_id, "convert", 2) == "converting [10, 20]\n"
        assert store.get_attempts(result.run_id, "convert")[0].error == "ConnectionError: first try fails"
        assert "GET" in store.get_log(result.run_id, "rates", 1)


def test_code_tasks_fail_like_notebooks(tmp_path: Path, api_server) -> None:
    base, _ = api_server
    write_notebook(tmp_path, "root", "upstream = None")
    pipeline = Pipeline.from_dir(tmp_path)
    pipeline.http_task("broken", f"{base}/broken")

    @pipeline.task(timeout=1)
    def sleepy():
        import time

        time.sleep(60)

    @pipeline.task
    def crashes():
        import os

        os._exit(3)

    result = pipeline.run(workers=3)
    assert result.tasks["broken"].error == f"UnexpectedStatus: GET {base}/broken answered 500, expected 200"
    assert result.tasks["sleepy"].error.startswith("TaskTimeout") and result.tasks["sleepy"].duration_s < 10
    assert result.tasks["crashes"].error.startswith("ProcessDied: the task's process ended with exit code 3")
    with pytest.raises(PipelineValidationError, match="Two tasks are named"):
        pipeline.http_task("root", f"{base}/rates")
    with pytest.raises(PipelineValidationError, match="declares upstream 'nope'"):
        pipeline.task(upstream=["nope"])(lambda: None)
    assert "<lambda>" not in pipeline.specs
    with pytest.raises(PipelineValidationError, match="'retries' must be a whole number"):
        pipeline.task(name="bad", retries=-1)(lambda: None)
    assert "bad" not in pipeline.dag.order and len(list(pipeline)) == len(pipeline.specs)


def test_a_folders_tasks_file_adds_code_tasks_for_the_cli(tmp_path: Path) -> None:
    write_notebook(tmp_path, "load", "upstream = None\nproduct = 'load.txt'", "open(product, 'w').write('42')")
    (tmp_path / "nbflow_tasks.py").write_text(
        "def setup(pipeline):\n"
        "    @pipeline.task(upstream=['load'], product='double.txt')\n"
        "    def double(upstream, product):\n"
        "        open(product, 'w').write(str(2 * int(open(upstream['load']).read())))\n"
    )
    dag = json.loads(nbflow_process("dag", str(tmp_path), "--format", "json").stdout)
    code = {"file": "nbflow_tasks.py", "loaded": False, "not_loaded": ["double"], "unread": []}
    assert dag == {"nodes": ["load", "double"], "edges": [["load", "double"]], "code": code}, "read, not run"
    loaded = json.loads(nbflow_process("dag", str(tmp_path), "--format", "json", "--load-code").stdout)
    assert loaded["nodes"] == ["load", "double"] and loaded["code"] == {**code, "loaded": True, "not_loaded": []}
    run = nbflow_process("run", str(tmp_path), "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["tasks"]["double"]["state"] == "success"
    assert (tmp_path / "double.txt").read_text() == "84"
    (tmp_path / "nbflow_tasks.py").write_text("def setup(pipeline):\n    raise RuntimeError('oops')\n")
    looked = nbflow_process("dag", str(tmp_path))
    assert looked.returncode == 0 and looked.stdout.startswith("load\n"), looked.stderr
    assert "nbflow_tasks.py defines tasks in code; nbflow has not run it" in looked.stdout
    bad = nbflow_process("run", str(tmp_path))
    assert (
        bad.returncode == 2 and "nbflow_tasks.py is not a valid tasks file: it raised RuntimeError: oops" in bad.stderr
    )


# -- nbflow_tasks.py is user code: read by views, run only by runs ------------------------


@pytest.mark.parametrize(
    ("body", "tasks", "edges", "unread"),
    [
        (
            "    @pipeline.task(upstream=['load'], product='d.txt', retries=1)\n"
            "    def double(upstream, product, factor=2, *, label='x'):\n        pass\n",
            {"double": ("python", ("load",), "d.txt", {"factor": "2", "label": "'x'"})},
            [],
            [],
        ),
        (
            "    @pipeline.task\n    def bare():\n        pass\n"
            "    pipeline.task(name='named', upstream=('bare',))(helper)\n"
            "    pipeline.task(other)\n",
            {
                "bare": ("python", (), None, {}),
                "named": ("python", ("bare",), None, {}),
                "other": ("python", (), None, {}),
            },
            [],
            [],
        ),
        (
            "    rates = pipeline.http_task('rates', URL, params={'currency': 'EUR'}, product={'body': 'r.json'})\n",
            {"rates": ("http", (), {"body": "r.json"}, {"currency": "'EUR'"})},
            [],
            [],
        ),
        (
            "    pipeline['a'] >> pipeline['b'] >> [pipeline['c'], pipeline['d']]\n"
            "    pipeline['e'] << pipeline['a']\n"
            "    pipeline.add_edge('b', 'e')\n"
            "    pipeline['d'].set_upstream(pipeline['e'])\n"
            "    pipeline.http_task('h', URL) >> pipeline['a']\n",
            {"h": ("http", (), None, {})},
            [("a", "b"), ("b", "c"), ("b", "d"), ("a", "e"), ("b", "e"), ("e", "d"), ("h", "a")],
            [],
        ),
        (
            "    for name in NAMES:\n        pipeline.http_task(name, URL)\n"
            "    @pipeline.task(name=PREFIX + 'x', upstream=UPSTREAM)\n    def f():\n        pass\n"
            "    @pipeline.task(upstream=UPSTREAM, product=PRODUCT)\n    def g():\n        pass\n"
            "    register_more(pipeline)\n"
            "    t = pipeline['g']\n"
            "    t >> pipeline['f']\n",
            {"g": ("python", (), None, {})},
            [],
            [
                "an HTTP task whose name is not a literal",
                "a task whose name is not a literal",
                "register_more(pipeline)",
                "t = pipeline['g']",
                "an edge between tasks that are not named literally",
            ],
        ),
    ],
    ids=["decorator", "other-forms", "http", "edges", "not-literal"],
)
def test_the_tasks_file_is_read_without_running_it(body: str, tasks: dict, edges: list, unread: list) -> None:
    from nbflow.pipeline import read_declarations

    found = read_declarations(f"import os\nos.system('never run')\n\ndef setup(pipeline):\n{body}")
    assert {t.name: (t.kind, t.upstream, t.product, t.defaults) for t in found.tasks} == tasks
    assert found.edges == edges
    assert len(found.unread) == len(unread) and all(
        any(fragment in line for line in found.unread) for fragment in unread
    ), found.unread
    if "UPSTREAM" in body:
        assert next(t for t in found.tasks if t.name == "g").unread == ("upstream", "product")


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("def setup(pipeline:\n", "not valid Python"),
        ("import os\n", "no setup(pipeline) function"),
        ("def setup():\n    pass\n", "takes no pipeline argument"),
        ("setup = make_setup()\n", "no setup(pipeline) function"),
    ],
)
def test_a_tasks_file_that_cannot_be_read_is_shown_as_code_not_loaded(tmp_path: Path, source: str, why: str) -> None:
    write_notebook(tmp_path, "load", "upstream = None")
    (tmp_path / "nbflow_tasks.py").write_text(source)
    pipeline = Pipeline.from_dir(tmp_path)
    assert list(pipeline.specs) == ["load"] and not pipeline.code_loaded and pipeline.not_loaded == set()
    assert why in pipeline.code_note and "nbflow has not run it" in pipeline.code_note


def test_looking_lists_code_tasks_and_running_runs_them(tmp_path: Path) -> None:
    from hostile_folders import code_folder, markers_made

    markers = tmp_path / "markers"
    markers.mkdir()
    folder = code_folder(tmp_path / "pipe", markers / "imported")
    write_notebook(folder, "report", "upstream = None", "print(open('double.txt').read())")
    (folder / "nbflow.toml").write_text("[tasks.double]\nretries = 2\n")  # settings for a code task

    pipeline = Pipeline.from_dir(folder)
    assert markers_made(markers) == [], "listing the tasks ran nothing"
    assert pipeline.not_loaded == {"double"} and not pipeline.code_loaded
    assert pipeline.dag.upstreams["double"] == ("load",) and pipeline.specs["double"].target is None
    assert pipeline.specs["double"].params.defaults == {"factor": "2"}
    assert pipeline.settings["double"].retries == 2
    pipeline["double"] >> pipeline["report"]  # an edge added in code to a task not loaded yet

    result = pipeline.run(workers=2)  # a run loads the code first
    assert markers_made(markers) == ["imported", "imported.setup"]
    assert result.ok, result.tasks
    assert pipeline.code_loaded and pipeline.not_loaded == set() and callable(pipeline.specs["double"].target)
    assert pipeline.dag.upstreams["report"] == ("double",) and (folder / "double.txt").read_text() == "42"

    looked = Pipeline.from_dir(folder)  # states and history stay visible for code tasks
    with looked.open_store() as store:
        assert store.get_tasks(result.run_id)["double"].state == "success"
    assert looked.not_loaded == {"double"}


def test_a_tasks_file_that_fails_to_load_leaves_the_pipeline_as_it_was(tmp_path: Path) -> None:
    write_notebook(tmp_path, "load", "upstream = None")
    (tmp_path / "nbflow_tasks.py").write_text(
        "def setup(pipeline):\n"
        "    pipeline.http_task('ping', 'http://127.0.0.1:9/', upstream=['load'])\n"
        "    raise RuntimeError('oops')\n"
    )
    pipeline = Pipeline.from_dir(tmp_path)
    before = (dict(pipeline.specs), pipeline.dag.upstreams)
    with pytest.raises(PipelineValidationError, match="it raised RuntimeError: oops"):
        pipeline.load_code()
    assert (dict(pipeline.specs), pipeline.dag.upstreams) == before and pipeline.not_loaded == {"ping"}
    with pytest.raises(PipelineValidationError, match="it raised RuntimeError: oops"):
        pipeline.run()  # and a run still tries, and says why it cannot


def test_add_task_is_read_without_running_it_for_each_code_kind() -> None:
    from nbflow.pipeline import read_declarations

    found = read_declarations(
        "import os\nos.system('never run')\n\ndef setup(pipeline):\n"
        "    pipeline.add_task('python', 'p', func=f, upstream=['a'], product='p.txt', retries=2)\n"
        "    pipeline.add_task('http', 'h', url=URL, params={'k': 1}) >> pipeline['p']\n"
        "    pipeline.add_task(KIND, 'x')\n"
        "    pipeline.add_task('python', NAME, func=f)\n"
        "    pipeline.add_task('http', 'y', **more)\n"
    )
    assert {t.name: (t.kind, t.upstream, t.product, t.defaults) for t in found.tasks} == {
        "p": ("python", ("a",), "p.txt", {}),
        "h": ("http", (), None, {"k": "1"}),
    }
    assert found.edges == [("h", "p")]
    assert found.unread == [
        "line 7: a task whose kind is not a literal",
        "line 8: a Python task whose name is not a literal",
        "line 9: an HTTP task's arguments given as *args or **mapping",
    ]


def test_add_task_declares_a_python_task_as_task_does(tmp_path: Path) -> None:
    (tmp_path / "load.sql").write_text("-- product = 'load.csv'\nSELECT 21 AS n\n")
    pipeline = Pipeline.from_dir(tmp_path)

    def double(upstream, product, factor=2):
        n = int(Path(upstream["load"]).read_text().split()[1])
        Path(product).write_text(str(factor * n))

    task = pipeline.add_task("python", "double", func=double, upstream=["load"], product="double.txt", retries=1)

    assert task is pipeline["double"] and pipeline.dag.upstreams["double"] == ("load",)
    assert pipeline.specs["double"].params.defaults == {"factor": "2"} and pipeline.settings["double"].retries == 1
    with pytest.raises(TypeError, match="needs func="):
        pipeline.add_task("python", "nothing")
    result = pipeline.run(params={"double.factor": 3}, workers=1)
    assert result.ok, result.tasks
    assert (tmp_path / "double.txt").read_text() == "63"


def test_a_python_tasks_product_left_by_an_earlier_run_does_not_count_as_written(tmp_path: Path) -> None:
    pipeline = Pipeline.from_dir(_empty_folder(tmp_path))

    def maybe(product, write=True):
        if write:
            Path(product).write_text("fresh")

    pipeline.add_task("python", "maybe", func=maybe, product="out.txt")
    assert pipeline.run(workers=1).ok
    stale = pipeline.run(params={"maybe.write": False}, workers=1)

    assert stale.states == {"maybe": "failed"}
    assert stale.tasks["maybe"].error == f"MissingProduct: the Python task ran but did not write {tmp_path / 'out.txt'}"
    assert (tmp_path / "out.txt").read_text() == "fresh"  # what was there stays


def _empty_folder(folder: Path) -> Path:
    """A pipeline folder whose only task is defined in code: an ``nbflow_tasks.py`` with an empty setup."""
    (folder / "nbflow_tasks.py").write_text("def setup(pipeline):\n    pass\n")
    return folder
