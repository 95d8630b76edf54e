"""A notebook's inputs in its live kernel: ``%nbflow inputs``, ``nbflow inputs``, find_task/task_inputs.

The slow tests start real kernels with jupyter_client in the notebook's folder, with
``JPY_SESSION_NAME`` set as Jupyter Server sets it, and compare what the magic loaded with
what ``nbflow run`` injected into the executed notebook.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from conftest import live_kernels, nbflow_process, write_notebook

from nbflow.authoring.inputs import MissingUpstream, find_task, task_inputs
from nbflow.errors import NotATaskError, PipelineValidationError, UnknownTaskError
from nbflow.history import open_store
from nbflow.integrations.ipython import current_notebook, parse_line

TOKEN_VAR = "NBFLOW_INPUTS_TEST_TOKEN"
TOKEN = "s3cr3t-inputs-token"
TRAIN_PARAMETERS = 'upstream = ["load"]\nproduct = {"model": "out/model.txt"}\nlr = 0.5\napi_token = ""'
TRAIN_CODE = "import pathlib\npathlib.Path(product['model']).parent.mkdir(exist_ok=True)\npathlib.Path(product['model']).write_text(str(lr))"


def make_pipeline(folder: Path, load_code: str | None = None) -> Path:
    """``load`` writes out/load.csv; ``sub/train`` reads it, with a parameter and a secret. Returns train's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nbflow.toml").write_text(f'[secrets]\napi_token = "{TOKEN_VAR}"\n')
    write_notebook(
        folder,
        "load",
        'product = "out/load.csv"',
        load_code
        or "import pathlib\npathlib.Path(product).parent.mkdir(exist_ok=True)\npathlib.Path(product).write_text('x\\n1\\n')",
    )
    return write_notebook(folder, "sub/train", TRAIN_PARAMETERS, TRAIN_CODE)


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


# -- the injected cell's source ------------------------------------------------------------


@pytest.mark.parametrize(("kernel", "language"), [("python3", "python"), ("ir", "R")])
@pytest.mark.parametrize(
    ("parameters", "secrets"),
    [
        ({"lr": 0.1, "upstream": {"load": "/d/out/load.csv"}, "product": {"m": "/d/m.txt"}}, {"api_token": "VAR"}),
        ({"upstream": {"a": None, "b": {"x": "/d/x"}}}, {}),
        ({}, {"api_token": "VAR", "other": "OTHER"}),
        ({}, {}),
    ],
)
def test_the_source_is_the_cell_papermill_and_the_run_inject(
    tmp_path: Path, kernel: str, language: str, parameters: dict[str, Any], secrets: dict[str, str]
) -> None:
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    from nbflow.kinds.notebook.inject import injected_source
    from nbflow.kinds.notebook.papermill import ENGINE_NAME, _inject_secrets, register_engine

    register_engine()
    path = write_notebook(tmp_path, "train", "lr = 0.5", "print(lr)", kernel=kernel)
    nb = load_notebook_node(str(path))  # as the run loads it
    nb.metadata.kernelspec.language = language
    if parameters:  # as the run's _execute does
        nb = parameterize_notebook(nb, parameters, False, kernel_name=kernel, engine_name=ENGINE_NAME)
    if secrets:
        _inject_secrets(nb, {name: "value" for name in secrets}, secrets)
    injected = [c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    source = injected_source(parameters, kernel_name=kernel, language=language, secrets=secrets, variables=secrets)
    assert [source] == injected if injected else source == ""


# -- find_task -----------------------------------------------------------------------------


def test_find_task_takes_the_nearest_settings_folder_not_above_stop(tmp_path: Path) -> None:
    root = tmp_path / "project"
    path = write_notebook(root / "etl" / "steps", "clean", "upstream = None")
    assert find_task(path) == ((root / "etl" / "steps").resolve(), "clean")  # no settings: its own folder
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert find_task(path)[0] == (root / "etl" / "steps").resolve()  # a pyproject.toml without [tool.nbflow]
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n[tool.nbflow]\nwarm_kernels = 0\n")
    assert find_task(path) == (root.resolve(), "etl/steps/clean")
    (root / "etl" / "nbflow.toml").write_text("")
    assert find_task(path) == ((root / "etl").resolve(), "steps/clean")
    assert find_task(path, stop=root / "etl" / "steps") == ((root / "etl" / "steps").resolve(), "clean")
    with pytest.raises(NotATaskError, match="outside"):
        find_task(path, stop=tmp_path / "elsewhere")


def test_find_task_refuses_what_is_not_a_task(tmp_path: Path) -> None:
    write_notebook(tmp_path, "clean", "upstream = None")
    (tmp_path / "notes.txt").write_text("hello")
    checkpoint = write_notebook(tmp_path / ".ipynb_checkpoints", "clean-checkpoint", "upstream = None")
    own = write_notebook(tmp_path / "_nbflow" / "runs", "clean", "upstream = None")
    dashboard = write_notebook(tmp_path, "dashboard", "x = 1")
    nb = nbformat.read(dashboard, as_version=4)
    nb.metadata["nbflow"] = {"task": False}
    nbformat.write(nb, dashboard)
    for path, reason in [
        (tmp_path / "missing.ipynb", "no such file"),
        (tmp_path / "notes.txt", "tasks are"),
        (checkpoint, ".ipynb_checkpoints"),
        (own, "_nbflow"),
        (dashboard, '"task": false'),
    ]:
        with pytest.raises(NotATaskError, match=reason) as caught:
            find_task(path)
        assert caught.value.exit_code == 2


# -- task_inputs: looking, without running ---------------------------------------------------


def test_task_inputs_before_any_run_names_the_missing_upstream_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_VAR, raising=False)
    make_pipeline(tmp_path)
    before = listing(tmp_path)
    inputs = task_inputs(tmp_path, "sub/train", {"lr": 0.25})
    assert listing(tmp_path) == before  # no _nbflow/, no discovery cache, no store
    assert inputs.parameters == {
        "lr": 0.25,
        "upstream": {"load": str((tmp_path / "out/load.csv").resolve())},
        "product": {"model": str((tmp_path / "sub/out/model.txt").resolve())},
    }
    assert inputs.missing == (MissingUpstream("load", "it has not run successfully"),)
    assert inputs.upstreams == ("load",) and inputs.secrets == ("api_token",)
    assert inputs.cwd == (tmp_path / "sub").resolve() and inputs.notebook == (tmp_path / "sub/train.ipynb").resolve()
    assert inputs.unset_secrets(os.environ) == [("api_token", TOKEN_VAR)]
    assert inputs.names == ("lr", "upstream", "product", "api_token")
    data = json.loads(json.dumps(inputs.to_json()))
    assert data["missing"] == [{"task": "load", "reason": "it has not run successfully"}]
    assert data["folder"] == str(tmp_path.resolve()) and data["code"] == inputs.code
    namespace: dict[str, Any] = {}
    monkeypatch.setenv(TOKEN_VAR, TOKEN)
    exec(inputs.code, namespace)  # the code sets exactly the injected names, the secret from the environment
    assert {k: namespace[k] for k in inputs.names} == {**inputs.parameters, "api_token": TOKEN}
    root = task_inputs(tmp_path, "load")
    assert root.missing == () and root.upstreams == () and root.secrets == ()


def test_task_inputs_refuses_unknown_tasks_bad_overrides_and_tasks_without_a_kernel(tmp_path: Path) -> None:
    make_pipeline(tmp_path)
    (tmp_path / "summary.sql").write_text("-- upstream = ['load']\nSELECT 1;\n")
    with pytest.raises(UnknownTaskError, match="Did you mean 'sub/train'"):
        task_inputs(tmp_path, "sub/trian")
    with pytest.raises(PipelineValidationError, match="nope"):
        task_inputs(tmp_path, "sub/train", {"nope": 1})
    with pytest.raises(PipelineValidationError, match="secret"):
        task_inputs(tmp_path, "sub/train", {"api_token": "written down"})
    with pytest.raises(NotATaskError, match="SQL task"):
        task_inputs(tmp_path, "summary")


# -- the magic's own reading -----------------------------------------------------------------


def test_the_magic_line_and_the_notebook_the_kernel_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    line = parse_line("inputs sub/train -p lr=0.1 --param=n=2 -pk=v --run-upstream")
    assert (line.task, line.params, line.run_upstream) == ("sub/train", ["lr=0.1", "n=2", "k=v"], True)
    for bad in ("", "input", "inputs a b", "inputs --bogus", "inputs -p"):
        with pytest.raises(Exception) as caught:  # noqa: PT011 - the private usage error, checked below
            parse_line(bad)
        assert type(caught.value).__name__ == "_UsageError"
    path = make_pipeline(tmp_path / "root")
    monkeypatch.chdir(path.parent)
    assert current_notebook({}, {"JPY_SESSION_NAME": str(path)}) == path
    assert current_notebook({}, {"JPY_SESSION_NAME": "sub/train.ipynb"}).resolve() == path.resolve()  # type: ignore[union-attr]
    assert current_notebook({"__vsc_ipynb_file__": str(path)}, {}) == path
    assert current_notebook({}, {"JPY_SESSION_NAME": "console-1"}) is None


# -- nbflow inputs ---------------------------------------------------------------------------


def test_cli_prints_the_code_the_missing_upstreams_and_json(tmp_path: Path, nbflow_cli, monkeypatch) -> None:
    monkeypatch.delenv(TOKEN_VAR, raising=False)
    make_pipeline(tmp_path)
    before = listing(tmp_path)
    result = nbflow_cli("inputs", "sub/train", str(tmp_path), "-p", "lr=0.125")
    assert result.exit_code == 0, result
    assert result.stdout == task_inputs(tmp_path, "sub/train", {"lr": 0.125}).code + "\n"  # pasted or piped
    assert "upstream 'load' is missing: it has not run successfully" in result.stderr
    assert f"nbflow run {tmp_path} --only load" in result.stderr
    result = nbflow_cli("inputs", "sub/train", str(tmp_path), "-p", "lr=0.125", "--json")
    assert result.exit_code == 0, result
    assert result.json() == task_inputs(tmp_path, "sub/train", {"lr": 0.125}).to_json()
    unknown = nbflow_cli("inputs", "nope", str(tmp_path))
    assert unknown.exit_code == 2 and "No task named 'nope'" in unknown.stderr and not unknown.stdout
    assert nbflow_cli("inputs", "sub/train", str(tmp_path), "-p", "nope=1").exit_code == 2
    assert listing(tmp_path) == before


# -- real kernels ----------------------------------------------------------------------------


@contextlib.contextmanager
def kernel(cwd: Path, session_name: str | None) -> Iterator[Any]:
    """A real ipykernel started in ``cwd``, with ``JPY_SESSION_NAME`` as Jupyter Server sets it."""
    from jupyter_client.manager import start_new_kernel

    env = {k: v for k, v in os.environ.items() if k != "JPY_SESSION_NAME"}
    if session_name is not None:
        env["JPY_SESSION_NAME"] = session_name
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(cwd), env=env, startup_timeout=120)
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc: Any, code: str, timeout: float = 240) -> tuple[str, str, str]:
    """Execute ``code``: (stdout, stderr, status)."""
    out: list[str] = []
    err: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            (out if msg["content"]["name"] == "stdout" else err).append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            err.append("\n".join(msg["content"]["traceback"]))

    reply = kc.execute_interactive(code, output_hook=hook, timeout=timeout)
    return "".join(out), "".join(err), reply["content"]["status"]


def values(kc: Any, *names: str) -> dict[str, Any]:
    stdout, stderr, status = run(
        kc, f"import json as _json; print(_json.dumps({{n: globals()[n] for n in {list(names)!r}}}))"
    )
    assert status == "ok", stderr
    return json.loads(stdout)


def injected_cell(folder: Path, task: str) -> str:
    """The injected-parameters cell of ``task``'s latest successful executed notebook."""
    with open_store(folder, read_only=True) as store:
        executed = store.last_successes()[task].output_notebook
    assert executed is not None
    nb = nbformat.read(executed, as_version=4)
    (cell,) = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    return cell.source


@pytest.mark.slow
def test_the_magic_loads_what_a_run_injects_and_never_changes_the_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_VAR, TOKEN)
    path = make_pipeline(tmp_path)
    original = path.read_bytes()
    with kernel(path.parent, str(path)) as kc:  # Jupyter Server: the notebook's absolute path
        assert run(kc, "%load_ext nbflow")[2] == "ok"
        stdout, stderr, status = run(kc, "%nbflow inputs")
        assert status == "ok" and not stderr, stderr
        assert "loaded the inputs of 'sub/train': upstream, product, api_token" in stdout
        assert "upstream 'load' is missing: it has not run successfully" in stdout
        assert f"nbflow run {tmp_path.resolve()} --only load" in stdout and "--run-upstream" in stdout
        before_run = values(kc, "upstream", "product", "api_token")
        assert "NameError" in run(kc, "lr")[1]  # not injected without -p: the parameters cell sets it

        proc = nbflow_process("run", str(tmp_path))
        assert proc.returncode == 0, proc.stderr + proc.stdout
        cell = injected_cell(tmp_path, "sub/train")
        assert task_inputs(tmp_path, "sub/train").code == cell  # the very cell, secret lines included
        assert "NBFLOW_SECRET_API_TOKEN" in cell and TOKEN not in cell
        ran: dict[str, Any] = {}
        exec(cell, ran)
        assert before_run == {"upstream": ran["upstream"], "product": ran["product"], "api_token": TOKEN}

        stdout, stderr, status = run(kc, "%nbflow inputs -p lr=0.125")
        assert status == "ok" and not stderr, stderr
        assert "loaded the inputs of 'sub/train': lr, upstream, product, api_token" in stdout
        assert "missing" not in stdout
        assert values(kc, "lr")["lr"] == 0.125
        stdout, stderr, _ = run(kc, "%nbflow inputs nope")
        assert "nbflow: error: No task named 'nope'" in stderr and "Traceback" not in stderr
    assert path.read_bytes() == original
    deadline = time.monotonic() + 30
    while live_kernels() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not live_kernels()


@pytest.mark.slow
def test_run_upstream_runs_a_stale_upstream_then_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_VAR, TOKEN)
    server_root = tmp_path
    folder = tmp_path / "pipeline"
    path = make_pipeline(folder)
    product = folder / "out" / "load.csv"
    # Jupyter Server without a name: the path relative to its root, the kernel in the notebook's folder
    with kernel(path.parent, path.relative_to(server_root).as_posix()) as kc:
        assert run(kc, "%load_ext nbflow")[2] == "ok"
        stdout, stderr, status = run(kc, "%nbflow inputs --run-upstream")
        assert status == "ok" and not stderr, stdout + stderr
        assert f"nbflow run {folder.resolve()} --only load" in stdout
        assert product.read_text() == "x\n1\n"  # the upstream ran
        assert "missing" not in stdout.split("--only load")[-1]
        assert values(kc, "upstream")["upstream"] == {"load": str(product.resolve())}

        product.unlink()  # stale: its product is gone
        stdout, _, _ = run(kc, "%nbflow inputs")
        assert "upstream 'load' is missing: its product out/load.csv is missing" in stdout
        stdout, stderr, status = run(kc, "%nbflow inputs --run-upstream")
        assert status == "ok" and not stderr, stdout + stderr
        assert product.exists() and "missing" not in stdout.split("--only load")[-1]

        write_notebook(folder, "load", 'product = "out/load.csv"', "raise ValueError('no data today')")
        run(kc, "del upstream")
        stdout, stderr, status = run(kc, "%nbflow inputs --run-upstream")
        assert "no data today" in stdout
        assert "running the upstreams of 'sub/train' failed" in stderr and "not loaded" in stderr
        assert "NameError" in run(kc, "upstream")[1]  # nothing was loaded


@pytest.mark.slow
def test_the_magic_without_a_notebook_asks_for_the_task_and_shows_its_usage(tmp_path: Path) -> None:
    make_pipeline(tmp_path)
    with kernel(tmp_path, None) as kc:
        assert run(kc, "%load_ext nbflow")[2] == "ok"
        stdout, stderr, _ = run(kc, "%nbflow inputs")
        assert "pass the task name, as in %nbflow inputs train" in stderr and "Traceback" not in stderr
        for line in ("%nbflow", "%nbflow bogus", "%nbflow inputs --bogus"):
            stdout, stderr, status = run(kc, line)
            assert status == "ok" and "Usage: %nbflow inputs [TASK]" in stdout, stdout + stderr
        stdout, stderr, status = run(kc, "%nbflow inputs load")  # the pipeline of the working directory
        assert status == "ok" and "loaded the inputs of 'load': product" in stdout, stdout + stderr
        assert values(kc, "product")["product"] == str((tmp_path / "out/load.csv").resolve())
