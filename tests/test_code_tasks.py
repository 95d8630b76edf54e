"""Tasks defined in code: Python functions and HTTP requests, beside notebooks."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from nbflow.errors import PipelineValidationError
from nbflow.pipeline import Pipeline
from tests.conftest import nbflow_process, write_notebook


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

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


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
    assert dag == {"nodes": ["load", "double"], "edges": [["load", "double"]]}
    run = nbflow_process("run", str(tmp_path), "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["tasks"]["double"]["state"] == "success"
    assert (tmp_path / "double.txt").read_text() == "84"
    (tmp_path / "nbflow_tasks.py").write_text("def setup(pipeline):\n    raise RuntimeError('oops')\n")
    bad = nbflow_process("dag", str(tmp_path))
    assert (
        bad.returncode == 2 and "nbflow_tasks.py is not a valid tasks file: it raised RuntimeError: oops" in bad.stderr
    )
