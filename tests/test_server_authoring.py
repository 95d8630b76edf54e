"""The authoring routes in a real Jupyter server: a notebook's inputs (read, never run, nothing
written) and a failed task's debug notebook, with real runs in real kernels."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nbformat
import pytest
from conftest import nbflow_process, write_notebook
from tornado.httpclient import HTTPClientError

pytestmark = pytest.mark.slow
pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"nbflow": True}}}


@pytest.fixture
def pipe(jp_root_dir: Path) -> Path:
    folder = jp_root_dir / "pipe"
    write_notebook(
        folder,
        "load",
        'upstream = None\nproduct = {"data": "out/load.csv"}',
        "import pathlib\npathlib.Path(product['data']).parent.mkdir(exist_ok=True)\n"
        "pathlib.Path(product['data']).write_text('a\\n1\\n')",
    )
    write_notebook(
        folder,
        "clean",
        'upstream = ["load"]\nproduct = {"data": "out/clean.csv"}\nlimit = 10',
        "import pathlib\ntext = pathlib.Path(upstream['load']['data']).read_text()",
        "pathlib.Path(product['data']).write_text(text)",
    )
    (folder / "nbflow.toml").write_text("")
    return folder


async def _json(jp_fetch, *parts: str, method: str = "GET", body: dict | None = None, **params: str):
    kwargs = {"method": method, "params": params} if method == "GET" else {"method": method, "body": json.dumps(body)}
    response = await jp_fetch("nbflow", *parts, **kwargs)
    return response.code, json.loads(response.body)


async def _error(jp_fetch, *parts: str, method: str = "GET", body: dict | None = None, **params: str):
    with pytest.raises(HTTPClientError) as info:
        await _json(jp_fetch, *parts, method=method, body=body, **params)
    return info.value.code, json.loads(info.value.response.body)


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder below ``folder`` with its content's hash: what a GET must leave as it is."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


async def test_the_inputs_of_a_notebook_name_a_missing_upstream_and_write_nothing(jp_fetch, pipe: Path) -> None:
    before = _snapshot(pipe.parent)
    code, inputs = await _json(jp_fetch, "inputs", notebook="pipe/clean.ipynb")
    assert code == 200
    assert _snapshot(pipe.parent) == before, "looking wrote nothing (no _nbflow/, no cache)"
    assert not (pipe / "_nbflow").exists()
    assert inputs["task"] == "clean" and inputs["folder"] == "pipe" and inputs["notebook"] == "pipe/clean.ipynb"
    assert inputs["upstreams"] == ["load"]
    assert [m["task"] for m in inputs["missing"]] == ["load"] and inputs["missing"][0]["reason"]
    assert inputs["parameters"]["upstream"] == {"load": {"data": "pipe/out/load.csv"}}, "relative to the root"
    assert inputs["parameters"]["product"] == {"data": "pipe/out/clean.csv"}
    assert "limit" not in inputs["parameters"], "a default stays the notebook's own, as in a run"
    assert str((pipe / "out" / "load.csv").resolve()) in inputs["code"], "the code keeps the absolute paths a run injects"

    code, same = await _json(jp_fetch, "inputs", notebook="pipe/clean.ipynb", task="clean", path="pipe")
    assert same == inputs, "the task named explicitly"


async def test_after_a_run_the_upstream_is_there_and_the_code_sets_it(jp_fetch, pipe: Path) -> None:
    proc = nbflow_process("run", str(pipe), "--only", "load", "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    before = _snapshot(pipe.parent)
    code, inputs = await _json(jp_fetch, "inputs", notebook="pipe/clean.ipynb")
    assert _snapshot(pipe.parent) == before
    assert inputs["missing"] == []
    scope: dict = {}
    exec(inputs["code"], scope)  # the injected cell, as a kernel would run it
    assert scope["upstream"] == {"load": {"data": str((pipe / "out" / "load.csv").resolve())}}


async def test_inputs_outside_the_root_or_through_a_symlink_leading_out_are_refused(
    jp_fetch, pipe: Path, jp_root_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    write_notebook(outside, "secret", "upstream = None", "print('secret')")
    (pipe / "secret.ipynb").symlink_to(outside / "secret.ipynb")
    (jp_root_dir / "away").symlink_to(outside, target_is_directory=True)
    for notebook in ("../outside/secret.ipynb", str(outside / "secret.ipynb"), "pipe/secret.ipynb", "away/secret.ipynb"):
        code, body = await _error(jp_fetch, "inputs", notebook=notebook)
        assert code == 403, (notebook, body)
        assert str(outside) not in body["message"] or notebook.startswith("/")
    code, body = await _error(jp_fetch, "inputs", notebook="pipe/clean.ipynb", task="clean", path="../..")
    assert code == 403
    # a task notebook of the same pipeline that leads outside the root is not read to answer for another
    code, body = await _error(jp_fetch, "inputs", notebook="pipe/clean.ipynb")
    assert code == 400 and "secret.ipynb is a symbolic link leading outside" in body["message"]
    assert "print('secret')" not in body["message"]


async def test_inputs_errors(jp_fetch, pipe: Path) -> None:
    code, body = await _error(jp_fetch, "inputs", notebook="pipe/nowhere.ipynb")
    assert code == 404 and "nowhere.ipynb" in body["message"]
    code, body = await _error(jp_fetch, "inputs", notebook="pipe/clean.ipynb", task="nope", path="pipe")
    assert code == 404 and "nope" in body["message"]
    code, body = await _error(jp_fetch, "inputs")
    assert code == 400


async def test_debug_writes_the_notebook_of_the_failed_attempt_and_answers_relative_paths(jp_fetch, pipe: Path) -> None:
    write_notebook(
        pipe,
        "clean",
        'upstream = ["load"]\nproduct = {"data": "out/clean.csv"}',
        "seen = 41 + 1",
        "raise ValueError('bad <row>')",
        "never = True",
    )
    proc = nbflow_process("run", str(pipe), "--no-progress")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    code, body = await _error(jp_fetch, "debug", method="POST", body={"path": "pipe", "task": "load"})
    assert code == 409 and "load" in body["message"], "a task that did not fail"

    code, debug = await _json(jp_fetch, "debug", method="POST", body={"path": "pipe", "task": "clean"})
    assert code == 201
    assert debug["path"].startswith("pipe/_nbflow/debug/") and debug["path"].endswith("clean.ipynb")
    assert debug["cwd"] == "pipe" and debug["task"] == "clean" and debug["attempt"] == 1
    nb = nbformat.read(pipe.parent / debug["path"], as_version=4)
    meta = nb.metadata["nbflow"]["debug"]
    assert meta["failed_cell"] == debug["failed_cell"]
    assert "raise ValueError" in nb.cells[debug["failed_cell"]].source
    assert any("seen = 41 + 1" in nb.cells[i].source for i in meta["run_cells"])
    assert (pipe / "clean.ipynb").read_text().count("raise ValueError") == 1, "the task's notebook is untouched"

    code, again = await _json(
        jp_fetch, "debug", method="POST", body={"path": "pipe", "task": "clean", "run": debug["run_id"]}
    )
    assert again["path"] == debug["path"]


async def test_debug_errors(jp_fetch, pipe: Path) -> None:
    code, body = await _error(jp_fetch, "debug", method="POST", body={"path": "pipe", "task": "nope"})
    assert code in (404, 409) and "nope" in body["message"]
    code, body = await _error(jp_fetch, "debug", method="POST", body={"path": "pipe", "task": "clean"})
    assert code == 409 and "clean" in body["message"], "no run yet: nothing failed"
    code, body = await _error(jp_fetch, "debug", method="POST", body={"path": "pipe", "task": "clean", "run": "r-none"})
    assert code == 404
    code, body = await _error(jp_fetch, "debug", method="POST", body={"path": "../..", "task": "clean"})
    assert code == 403
    code, body = await _error(jp_fetch, "debug", method="POST", body={"path": "pipe"})
    assert code == 400
