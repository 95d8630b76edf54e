"""The panel's REST API in a real Jupyter server (pytest-jupyter), with real runs and real notebooks."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import nbformat
import pytest
from conftest import write_notebook
from tornado.httpclient import HTTPClientError

from nbflow.project.edit import set_upstream_in_source

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"nbflow": True}}}


@pytest.fixture
def pipe(jp_root_dir: Path) -> Path:
    folder = jp_root_dir / "pipe"
    write_notebook(folder, "load", "upstream = None\nrows = 3", "print('loaded', rows)")
    write_notebook(folder, "clean", 'upstream = ["load"]  # from load\nlimit = 10', "print('cleaned')")
    write_notebook(folder, "report", "upstream = None", "print('report')")
    return folder


async def _json(jp_fetch, *parts: str, method: str = "GET", body: dict | None = None, **params: str):
    kwargs = {"method": method, "params": params} if method == "GET" else {"method": method, "body": json.dumps(body)}
    response = await jp_fetch("nbflow", *parts, **kwargs)
    return response.code, json.loads(response.body)


async def _error(jp_fetch, *parts: str, method: str = "GET", body: dict | None = None, **params: str):
    with pytest.raises(HTTPClientError) as info:
        await _json(jp_fetch, *parts, method=method, body=body, **params)
    return info.value.code, json.loads(info.value.response.body)


async def test_the_dag_of_a_folder(jp_fetch, pipe: Path) -> None:
    code, dag = await _json(jp_fetch, "dag", path="pipe")
    assert code == 200 and dag["ok"] is True
    assert {t["name"]: t["upstream"] for t in dag["tasks"]} == {"load": [], "clean": ["load"], "report": []}
    assert {t["name"]: t["path"] for t in dag["tasks"]}["clean"] == "pipe/clean.ipynb"
    assert dag["edges"] == [["load", "clean"]] and dag["svg"].startswith("<svg")
    assert dag["parameters"] == {"rows": "3", "limit": "10"}


async def test_validation_problems_name_the_notebook(jp_fetch, pipe: Path) -> None:
    write_notebook(pipe, "clean", 'upstream = ["lod"]', "pass")
    code, dag = await _json(jp_fetch, "dag", path="pipe")
    assert code == 200 and dag["ok"] is False
    assert (
        dag["problems"] == [{"message": dag["problems"][0]["message"], "path": "pipe/clean.ipynb"}]
        and "'lod'" in dag["problems"][0]["message"]
    )


async def test_run_status_log_and_history(jp_fetch, pipe: Path) -> None:
    code, started = await _json(jp_fetch, "runs", method="POST", body={"path": "pipe", "params": {"rows": 5}})
    assert code == 201 and started["run_id"] and started["pid"] > 0
    deadline = time.monotonic() + 120
    while True:
        code, status = await _json(jp_fetch, "status", path="pipe")
        if status["run"]["state"] != "running" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert status["run"]["run_id"] == started["run_id"] and status["run"]["state"] == "success"
    assert status["run"]["params"] == {"rows": 5}
    assert {n: t["state"] for n, t in status["tasks"].items()} == {
        "load": "success",
        "clean": "success",
        "report": "success",
    }
    assert status["tasks"]["load"]["output_notebook"].startswith("pipe/_nbflow/runs/")
    token = status["token"]
    settle = time.monotonic() + 60
    while time.monotonic() < settle:  # the run's process may still be closing its store: let it settle
        code, same = await _json(jp_fetch, "status", path="pipe", since=token)
        if not same["changed"]:
            break
        token = same["token"]
        await asyncio.sleep(0.1)
    assert same == {"changed": False, "token": token}, "nothing changed: a cheap answer"
    code, log = await _json(jp_fetch, "log", path="pipe", task="load")
    assert "loaded 5" in log["text"] and log["attempt"] == 1 and log["output_notebook"].endswith("load/attempt-1.ipynb")
    code, older = await _json(jp_fetch, "status", path="pipe", run=started["run_id"])
    assert [r["run_id"] for r in older["runs"]] == [started["run_id"]]


async def test_a_bad_parameter_is_a_400_with_the_message(jp_fetch, pipe: Path) -> None:
    code, body = await _error(jp_fetch, "runs", method="POST", body={"path": "pipe", "params": {"nope": 1}})
    assert code == 400 and "nope" in body["message"]


async def test_a_run_process_that_crashes_before_its_run_is_a_500(jp_fetch, pipe: Path) -> None:
    """Not the request's fault: a ``nbflow run`` that dies (here at once, with code 3) is a server error."""
    (pipe / "nbflow_tasks.py").write_text("import os\nos._exit(3)\n\ndef setup(pipeline):\n    pass\n")
    code, body = await _error(jp_fetch, "runs", method="POST", body={"path": "pipe"})
    assert code == 500 and body["kind"] == "ChildRunFailedError"
    assert "exited with code 3" in body["message"]


async def test_an_invalid_pipeline_found_by_the_run_process_is_a_400(jp_fetch, pipe: Path) -> None:
    (pipe / "nbflow_tasks.py").write_text("def setup(pipeline):\n    raise ValueError('no such table')\n")
    code, body = await _error(jp_fetch, "runs", method="POST", body={"path": "pipe"})
    assert code == 400 and body["kind"] == "ChildRunFailedError"
    assert "no such table" in body["message"] and not body["message"].startswith("nbflow: error:")


async def test_the_status_routes_run_shape(jp_fetch, pipe: Path) -> None:
    """Pinned: the panel reads these fields (``Wire.IRun``); times have microseconds, the duration is text."""
    import re
    from datetime import datetime

    from nbflow.store.base import RunRecord
    from nbflow.store.duckdb import DuckDBRunStore

    started, ended = datetime(2026, 1, 2, 3, 4, 5, 678901), datetime(2026, 1, 2, 3, 5, 35)
    with DuckDBRunStore(pipe / "_nbflow" / "state.duckdb") as store:
        store.save_run(RunRecord("r1", str(pipe), "success", started, ended, {"rows": 5}, workers=2, pid=4321))
        store.save_run(RunRecord("r0", str(pipe), "failed", datetime(2026, 1, 1), datetime(2026, 1, 1, 0, 0, 1)))
    code, status = await _json(jp_fetch, "status", path="pipe", run="r1")
    assert code == 200
    assert status["run"] == {
        "run_id": "r1",
        "state": "success",
        "started_at": "2026-01-02T03:04:05.678901Z",
        "ended_at": "2026-01-02T03:05:35Z",
        "duration": "1m29s",
        "params": {"rows": 5},
        "pid": 4321,
    }
    assert list(status["run"]) == ["run_id", "state", "started_at", "ended_at", "duration", "params", "pid"]
    code, latest = await _json(jp_fetch, "status", path="pipe")
    assert [r["run_id"] for r in latest["runs"]][:2] == ["r1", "r0"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", r["started_at"]) for r in latest["runs"])


async def test_stop_signals_no_process_a_planted_store_names(jp_fetch, pipe: Path) -> None:
    """A store is data from the folder: a 'running' run naming some other live process stops nothing."""
    import socket
    import subprocess
    import sys

    from nbflow.engine.runner import utcnow
    from nbflow.store.base import RunRecord
    from nbflow.store.duckdb import DuckDBRunStore

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        with DuckDBRunStore(pipe / "_nbflow" / "state.duckdb") as store:
            store.save_run(
                RunRecord("planted", str(pipe), "running", utcnow(), pid=bystander.pid, hostname=socket.gethostname())
            )
        code, body = await _error(jp_fetch, "runs", "planted", "stop", method="POST", body={"path": "pipe"})
        assert code == 409 and f"process {bystander.pid} does not run this pipeline" in body["message"]
        assert bystander.poll() is None, "the bystander got no signal"
    finally:
        bystander.kill()
        bystander.wait()


async def test_stop_a_running_run(jp_fetch, pipe: Path) -> None:
    write_notebook(pipe, "report", "upstream = None", "import time\ntime.sleep(120)")
    code, started = await _json(jp_fetch, "runs", method="POST", body={"path": "pipe", "only": ["report"]})
    deadline = time.monotonic() + 60
    while (await _json(jp_fetch, "status", path="pipe"))[1]["tasks"].get("report", {}).get("state") != "running":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    code, body = await _json(jp_fetch, "runs", started["run_id"], "stop", method="POST", body={"path": "pipe"})
    assert code == 202 and body["stopping"] is True
    while (await _json(jp_fetch, "status", path="pipe"))[1]["run"]["state"] == "running":
        assert time.monotonic() < deadline + 60
        await asyncio.sleep(0.2)
    code, status = await _json(jp_fetch, "status", path="pipe")
    assert status["run"]["state"] == "interrupted"
    code, body = await _error(jp_fetch, "runs", started["run_id"], "stop", method="POST", body={"path": "pipe"})
    assert code == 409 and "not going on" in body["message"]
    code, body = await _error(jp_fetch, "runs", "no-such-run", "stop", method="POST", body={"path": "pipe"})
    assert code == 404


async def test_add_then_remove_an_upstream_rewrites_only_that_line(jp_fetch, pipe: Path) -> None:
    before = nbformat.read(pipe / "clean.ipynb", as_version=4)
    code, dag = await _json(
        jp_fetch, "upstream", method="POST", body={"path": "pipe", "task": "clean", "add": "report"}
    )
    assert code == 200 and {t["name"]: t["upstream"] for t in dag["tasks"]}["clean"] == ["load", "report"]
    after = nbformat.read(pipe / "clean.ipynb", as_version=4)
    assert after.cells[0].source == 'upstream = ["load", "report"]  # from load\nlimit = 10'
    assert after.cells[1:] == before.cells[1:] and after.metadata == before.metadata
    code, dag = await _json(
        jp_fetch, "upstream", method="POST", body={"path": "pipe", "task": "clean", "remove": "report"}
    )
    assert nbformat.read(pipe / "clean.ipynb", as_version=4).cells[0].source == before.cells[0].source.replace(
        '["load"]', '["load"]'
    )


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"path": "pipe", "task": "load", "add": "clean"}, 400, "Cycle"),
        ({"path": "pipe", "task": "clean", "add": "nope"}, 400, "'nope'"),
        ({"path": "pipe", "task": "ghost", "add": "load"}, 404, "ghost"),
        ({"path": "pipe", "task": "clean"}, 400, "add"),
        ({"path": "pipe", "task": 3}, 400, "task"),
    ],
)
async def test_bad_upstream_edits_write_nothing(jp_fetch, pipe: Path, body: dict, status: int, fragment: str) -> None:
    before = {p.name: p.read_bytes() for p in pipe.glob("*.ipynb")}
    code, answer = await _error(jp_fetch, "upstream", method="POST", body=body)
    assert code == status and fragment in answer["message"]
    assert {p.name: p.read_bytes() for p in pipe.glob("*.ipynb")} == before


async def test_paths_outside_the_root_are_refused_and_never_read(jp_fetch, pipe: Path, tmp_path_factory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    write_notebook(outside, "secret", "upstream = None", "pass")
    (pipe.parent / "escape").symlink_to(outside, target_is_directory=True)
    for path in ("../", "..", str(outside), "pipe/../..", "escape", "~"):
        code, body = await _error(jp_fetch, "dag", path=path)
        assert code == 403, (path, code, body)
    assert not (outside / "_nbflow").exists(), "nothing was read or written outside the root"
    code, _ = await _error(jp_fetch, "dag", path="no-such-folder")
    assert code == 404


async def test_bad_requests_are_400s_not_500s(jp_fetch, pipe: Path) -> None:
    response_codes = []
    for kwargs in (
        {"method": "POST", "body": "not json"},
        {"method": "POST", "body": "[1, 2]"},
        {"method": "POST", "body": json.dumps({"path": 3})},
        {"method": "POST", "body": json.dumps({"path": "pipe", "only": "load"})},
    ):
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("nbflow", "runs", **kwargs)
        response_codes.append(info.value.code)
    assert response_codes == [400, 400, 400, 400]
    code, body = await _error(jp_fetch, "status")
    assert code == 400 and "path" in body["message"]
    code, body = await _error(jp_fetch, "log", path="pipe", task="load")
    assert code == 404  # no run yet


async def test_every_endpoint_needs_the_token(jp_fetch, pipe: Path) -> None:
    for parts, method in (
        (("dag",), "GET"),
        (("status",), "GET"),
        (("runs",), "POST"),
        (("upstream",), "POST"),
        (("log",), "GET"),
        (("runs", "x", "stop"), "POST"),
        (("info",), "GET"),
    ):
        kwargs = {"method": method, "headers": {"Authorization": ""}, "params": {"path": "pipe"}}
        if method == "POST":
            kwargs = {"method": method, "headers": {"Authorization": ""}, "body": json.dumps({"path": "pipe"})}
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("nbflow", *parts, **kwargs)
        assert info.value.code == 403, parts


def test_the_upstream_line_is_replaced_in_place_or_added() -> None:
    assert set_upstream_in_source('upstream = ["a"]\nx = 1', ["a", "b"]) == 'upstream = ["a", "b"]\nx = 1'
    assert set_upstream_in_source("x = 1", ["a"]) == 'upstream = ["a"]\nx = 1'
    assert set_upstream_in_source("", ["a"]) == 'upstream = ["a"]'
    assert set_upstream_in_source('upstream = [\n    "a",\n]  # note\ny = 2', []) == "upstream = None  # note\ny = 2"
    assert (
        set_upstream_in_source('%load_ext x\nupstream: list = ["é"]', ["é", "b"])
        == '%load_ext x\nupstream = ["é", "b"]'
    )


def test_the_extension_is_enabled_by_installing_nbflow() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    text = out.stdout + out.stderr
    assert "nbflow" in text and "enabled" in text.split("nbflow", 1)[1][:40]


def test_a_run_started_by_the_server_outlives_a_server_restart(tmp_path: Path) -> None:
    from nbflow.server.service import NbflowService

    write_notebook(tmp_path / "pipe", "slow", "upstream = None", "import time\ntime.sleep(2)\nprint('done')")
    started = NbflowService(tmp_path).start_run("pipe")
    assert started["run_id"]
    restarted = NbflowService(tmp_path)  # a new server: the run is its own process, recorded in the store
    deadline = time.monotonic() + 120
    while (status := restarted.status("pipe"))["run"]["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert status["run"]["run_id"] == started["run_id"] and status["tasks"]["slow"]["state"] == "success"
