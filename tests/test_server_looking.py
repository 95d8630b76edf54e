"""The panel's server given folders a user might be handed, in a real Jupyter server (pytest-jupyter).

Looking is never running: no GET route runs a folder's code or writes into it. And no route
reads or writes a file outside the server's root, whatever symlinks lead there.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from conftest import write_notebook
from hostile_folders import code_folder, markers_made, pickle_folder, snapshot, wal_folder
from tornado.httpclient import HTTPClientError

from nbflow.pipeline import Pipeline

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"nbflow": True}}}


@pytest.fixture
def markers(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("markers")


@pytest.fixture
def outside(tmp_path_factory) -> Path:
    """A folder beside the server's root, with a notebook and a secret the server must not touch."""
    folder = tmp_path_factory.mktemp("outside")
    write_notebook(folder, "secret", 'upstream = None\ntoken = "s3cret"', "pass")
    (folder / "sub").mkdir()
    write_notebook(folder / "sub", "deep", "upstream = None", "pass")
    (folder / "secret.txt").write_text("the secret\n")
    return folder


async def _get(jp_fetch, route: str, **params: str) -> tuple[int, dict]:
    try:
        response = await jp_fetch("nbflow", route, method="GET", params=params)
    except HTTPClientError as e:
        return e.code, json.loads(e.response.body)
    return response.code, json.loads(response.body)


async def _post(jp_fetch, *parts: str, body: dict) -> tuple[int, dict]:
    try:
        response = await jp_fetch("nbflow", *parts, method="POST", body=json.dumps(body))
    except HTTPClientError as e:
        return e.code, json.loads(e.response.body)
    return response.code, json.loads(response.body)


def _sql_pipeline_with_a_run(folder: Path) -> str:
    """A pipeline run once for real (a SQL task: no kernel), so it has a store, attempts and logs."""
    (folder / "a.sql").parent.mkdir(parents=True, exist_ok=True)
    (folder / "a.sql").write_text("-- upstream = None\n-- product = 'out/a.csv'\nSELECT 42 AS answer\n")
    (folder / "b.sql").write_text('-- upstream = ["a"]\nSELECT answer + 1 AS next FROM a\n')
    result = Pipeline.from_dir(folder).run(workers=1)
    assert result.ok, result.tasks
    return result.run_id


async def test_get_routes_run_nothing_and_write_nothing(jp_fetch, jp_root_dir: Path, markers: Path) -> None:
    run_id = _sql_pipeline_with_a_run(jp_root_dir / "ran")
    pickle_folder(jp_root_dir / "pickled", markers / "unpickled")
    code_folder(jp_root_dir / "coded", markers / "imported")
    wal_folder(jp_root_dir / "walled", markers / "copied")
    write_notebook(jp_root_dir / "fresh", "only", "upstream = None\nrows = 1", "pass")  # never run: no _nbflow
    for path in jp_root_dir.rglob("*.*"):  # old enough to be cached, were anything cached
        os.utime(path, (time.time() - 60, time.time() - 60))
    before = snapshot(jp_root_dir)

    answers = {}
    answers["info"] = await _get(jp_fetch, "info")
    for folder in ("ran", "pickled", "coded", "walled", "fresh", ""):
        for direction in ("LR", "TB"):
            answers[f"dag {folder} {direction}"] = await _get(jp_fetch, "dag", path=folder, direction=direction)
        code, status = await _get(jp_fetch, "status", path=folder)
        answers[f"status {folder}"] = (code, status)
        if code == 200:
            answers[f"status since {folder}"] = await _get(jp_fetch, "status", path=folder, since=status["token"])
    answers["status run"] = await _get(jp_fetch, "status", path="ran", run=run_id)
    answers["log"] = await _get(jp_fetch, "log", path="ran", task="b")
    answers["log attempt"] = await _get(jp_fetch, "log", path="walled", task="load", run="r1", attempt="1")
    answers["log of no run"] = await _get(jp_fetch, "log", path="fresh", task="only")
    answers["log of a dead writer"] = await _get(jp_fetch, "log", path="walled", task="load")

    assert snapshot(jp_root_dir) == before, "no GET wrote, created or removed anything"
    assert markers_made(markers) == [], "no code of a folder ran"
    assert answers["info"][0] == 200 and answers["log of no run"][0] == 404
    assert answers["dag pickled LR"][1]["ok"] and [t["name"] for t in answers["dag pickled LR"][1]["tasks"]] == ["load"]
    coded = answers["dag coded LR"][1]
    assert {t["name"]: t["loaded"] for t in coded["tasks"]} == {"load": True, "double": False}
    assert coded["code"]["loaded"] is False and coded["code"]["file"] == "coded/nbflow_tasks.py"
    assert "not loaded: double" in coded["code"]["note"] and coded["parameters"] == {"factor": "2"}
    assert answers["dag ran LR"][1]["code"] is None
    ran = answers["status ran"][1]
    assert ran["run"]["run_id"] == run_id and {n: t["state"] for n, t in ran["tasks"].items()} == {
        "a": "success",
        "b": "success",
    }
    assert answers["status since ran"][1] == {"changed": False, "token": ran["token"]}
    assert answers["log"][0] == 200 and answers["log"][1]["task"] == "b" and answers["log"][1]["run_id"] == run_id
    assert answers["log attempt"][1]["text"] == "hi\n"
    walled = answers["status walled"][1]
    assert [r["run_id"] for r in walled["runs"]] == ["r2", "r1"], "a dead writer's record, read without applying it"
    dead = answers["log of a dead writer"][1]
    assert (dead["run_id"], dead["text"], dead["error"]) == ("r2", "from the dead writer\n", "ValueError: x")
    assert answers["status fresh"][1]["runs"] == [] and not (jp_root_dir / "fresh" / "_nbflow").exists()


async def test_an_upstream_edit_through_a_symlink_leading_outside_is_refused(
    jp_fetch, jp_root_dir: Path, outside: Path
) -> None:
    pipe = jp_root_dir / "pipe"
    write_notebook(pipe, "load", "upstream = None", "pass")
    (pipe / "secret.ipynb").symlink_to(outside / "secret.ipynb")
    (pipe / "sub").symlink_to(outside / "sub", target_is_directory=True)
    before = snapshot(outside)

    for task in ("secret", "sub/deep"):
        code, body = await _post(jp_fetch, "upstream", body={"path": "pipe", "task": task, "add": "load"})
        assert code == 403, (task, body)
    code, dag = await _get(jp_fetch, "dag", path="pipe")
    assert code == 200 and dag["ok"] is False
    assert sorted(p["message"].split(" ")[0] for p in dag["problems"]) == ["secret.ipynb", "sub"]
    assert all("leading outside" in p["message"] and "s3cret" not in p["message"] for p in dag["problems"])
    assert snapshot(outside) == before, "nothing outside the root was written"
    code, _ = await _post(jp_fetch, "upstream", body={"path": "pipe", "task": "load", "add": "secret"})
    assert code in (400, 404), "an upstream that is outside is not a task here either"
    assert snapshot(outside) == before


async def test_an_upstream_edit_through_a_symlink_inside_the_root_keeps_the_link(jp_fetch, jp_root_dir: Path) -> None:
    pipe = jp_root_dir / "pipe"
    write_notebook(pipe, "load", "upstream = None", "pass")
    shared = write_notebook(jp_root_dir / "shared", "report", "upstream = None", "pass")
    (pipe / "report.ipynb").symlink_to(shared)
    code, _ = await _post(jp_fetch, "upstream", body={"path": "pipe", "task": "report", "add": "load"})
    assert code == 200
    assert (pipe / "report.ipynb").is_symlink(), "the link stays a link"
    assert 'upstream = ["load"]' in nbformat.read(shared, as_version=4).cells[0].source, "its target holds the change"


@pytest.mark.parametrize(
    "link",
    ["_nbflow", "_nbflow/state.duckdb", "_nbflow/runs", "_nbflow/run.lock", "nbflow_tasks.py", "nbflow.toml"],
)
async def test_nbflows_own_files_leading_outside_refuse_every_route(
    jp_fetch, jp_root_dir: Path, outside: Path, link: str
) -> None:
    pipe = jp_root_dir / "pipe"
    write_notebook(pipe, "load", "upstream = None", "pass")
    target = outside / "target"
    if link == "_nbflow":
        target.mkdir()
    (pipe / link).parent.mkdir(parents=True, exist_ok=True)
    (pipe / link).symlink_to(target, target_is_directory=link == "_nbflow")
    before = snapshot(outside)

    refused = [
        await _get(jp_fetch, "dag", path="pipe"),
        await _get(jp_fetch, "status", path="pipe"),
        await _get(jp_fetch, "log", path="pipe", task="load"),
        await _post(jp_fetch, "runs", body={"path": "pipe"}),
        await _post(jp_fetch, "runs", "r1", "stop", body={"path": "pipe"}),
        await _post(jp_fetch, "upstream", body={"path": "pipe", "task": "load", "add": "x"}),
    ]
    assert [code for code, _ in refused] == [403] * 6, refused
    assert all("outside the folder this server serves" in body["message"] for _, body in refused)
    assert snapshot(outside) == before, "nothing was created or written outside the root"


async def test_a_log_file_the_store_names_outside_the_root_is_not_read(
    jp_fetch, jp_root_dir: Path, outside: Path
) -> None:
    from nbflow.store.base import AttemptRecord, RunRecord, TaskRecord
    from nbflow.store.duckdb import DuckDBRunStore

    pipe = jp_root_dir / "pipe"
    write_notebook(pipe, "load", "upstream = None", "pass")
    inside_log = pipe / "_nbflow" / "runs" / "r1" / "mine" / "attempt-1.log"
    inside_log.parent.mkdir(parents=True)
    inside_log.write_text("my own output\n")
    started = datetime(2026, 1, 1)
    store = DuckDBRunStore(pipe / "_nbflow" / "state.duckdb")  # a planted store: its paths are not to be trusted
    store.save_run(RunRecord("r1", str(pipe), "running", started, pid=1, hostname="elsewhere"))
    for task, log in (("load", outside / "secret.txt"), ("mine", inside_log)):
        store.save_task(TaskRecord("r1", task, "running", 1, started))
        store.save_attempt(AttemptRecord("r1", task, 1, "running", started, log_path=str(log)))
    store.close()

    code, log = await _get(jp_fetch, "log", path="pipe", task="load")
    assert code == 200 and log["text"] == "" and "secret" not in json.dumps(log)
    code, log = await _get(jp_fetch, "log", path="pipe", task="mine")
    assert code == 200 and log["text"] == "my own output\n", "a running attempt's log inside the root is read"
