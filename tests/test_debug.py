"""``nbflow debug``: a failed attempt's debug notebook, run again to the failure in a real kernel,
and ``--console``'s kernel, attached to and stopped. Every run is a real ``nbflow run``."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
from conftest import nbflow_process, write_notebook
from jupyter_client import BlockingKernelClient
from jupyter_client.manager import start_new_kernel

pytestmark = pytest.mark.slow

TASK = "etl/clean"
SECRET_VAR = "NBFLOW_DEBUG_TEST_TOKEN"
SECRET = "debug-s3cr3t-value"


class Ran:
    """A pipeline whose ``etl/clean`` failed in two runs: with factor 2, then with factor 3."""

    def __init__(self, root: Path, runs: list[str]) -> None:
        self.root, self.runs = root, runs

    @property
    def notebook_folder(self) -> Path:
        return (self.root / "etl").resolve()


def _run(root: Path, *args: str) -> str:
    proc = nbflow_process("run", str(root), "--no-progress", "--json", *args)
    assert proc.returncode == 1, proc.stderr
    return str(json.loads(proc.stdout)["run_id"])


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ran]:
    root = tmp_path_factory.mktemp("pipeline")
    (root / "nbflow.toml").write_text(f'[secrets]\napi_token = "{SECRET_VAR}"\n')
    write_notebook(
        root,
        "load",
        'upstream = None\nproduct = "out/load.txt"',
        "import os\nos.makedirs('out', exist_ok=True)\nopen(product, 'w').write('41')",
    )
    path = write_notebook(
        root / "etl",
        "clean",
        'upstream = ["load"]\nproduct = None\nfactor = 1\napi_token = None',
        "value = int(open(upstream['load']).read()) * factor\nprint('value is', value)",
        "raise RuntimeError('a cell tagged nbflow-skip ran')",
        "token_length = len(api_token)",
        "print('about to fail')\nraise ValueError(f'bad value {value}')",
        "after = 'never'",
    )
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].metadata["tags"] = ["nbflow-skip"]
    nbformat.write(nb, path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SECRET_VAR, SECRET)
        runs = [_run(root, "-p", "factor=2"), _run(root, "-p", "factor=3")]
    yield Ran(root, runs)


def _debug(ran: Ran, *args: str) -> dict[str, Any]:
    proc = nbflow_process("debug", TASK, str(ran.root), "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def _tags(cell: Any) -> list[str]:
    return list(cell.metadata.get("tags", []))


def _injected(nb: Any) -> str:
    (cell,) = [c for c in nb.cells if "injected-parameters" in _tags(c)]
    return str(cell.source)


def test_the_debug_notebook_reproduces_the_latest_failed_attempt(ran: Ran) -> None:
    found = _debug(ran)
    assert (found["task"], found["run_id"], found["attempt"]) == (TASK, ran.runs[1], 1)
    path = Path(found["path"])
    assert path == ran.root / "_nbflow" / "debug" / ran.runs[1] / "etl" / "clean.ipynb"
    assert Path(found["cwd"]) == ran.notebook_folder
    assert (found["kernel_name"], found["language"]) == ("python3", "python")
    assert found["error"].startswith("ValueError: bad value 123")
    assert found["secrets"] == ["api_token"]

    nb = nbformat.read(path, as_version=4)
    executed = nbformat.read(found["executed_notebook"], as_version=4)
    assert _injected(nb) == _injected(executed)
    assert "factor = 3" in _injected(nb)
    assert str(ran.root / "out" / "load.txt") in _injected(nb)
    assert SECRET not in path.read_text(), "a secret is never written"
    assert not [c for c in nb.cells if "papermill-error-cell-tag" in _tags(c)]
    assert nb.metadata.kernelspec.name == "python3"

    first = nb.cells[0]
    assert _tags(first) == ["nbflow-debug"]
    assert first.source == f"import os\nos.chdir({str(ran.notebook_folder)!r})"

    failed = nb.cells[found["failed_cell"]]
    assert "raise ValueError" in failed.source
    assert [o.output_type for o in failed.outputs] == ["stream", "error"]
    assert failed.outputs[1].ename == "ValueError"
    assert failed.outputs[1].evalue == "bad value 123"

    skipped = next(i for i, c in enumerate(nb.cells) if "nbflow-skip" in _tags(c))
    assert skipped < found["failed_cell"]
    assert skipped not in found["run_cells"], "a skipped cell stays skipped"
    expected = [i for i, c in enumerate(nb.cells[: found["failed_cell"]]) if c.cell_type == "code" and i != skipped]
    assert found["run_cells"] == expected
    assert found["run_cells"][0] == 0
    for i in found["run_cells"]:
        assert nb.cells[i].outputs == [] and nb.cells[i].execution_count is None, f"cell {i} is cleared"
    assert nb.metadata.nbflow.debug == {
        "task": TASK,
        "run_id": ran.runs[1],
        "attempt": 1,
        "failed_cell": found["failed_cell"],
        "run_cells": found["run_cells"],
        "cwd": str(ran.notebook_folder),
        "executed_notebook": found["executed_notebook"],
    }


def _evaluate(kc: BlockingKernelClient, **expressions: str) -> dict[str, str]:
    """Each expression's ``repr``, evaluated in the kernel."""
    msg_id = kc.execute("", user_expressions=expressions)
    reply = kc.get_shell_msg(timeout=60)
    assert reply["parent_header"]["msg_id"] == msg_id
    found = reply["content"]["user_expressions"]
    assert all(v["status"] == "ok" for v in found.values()), found
    return {k: v["data"]["text/plain"] for k, v in found.items()}


def test_running_the_cells_to_run_brings_a_kernel_to_the_failure(ran: Ran) -> None:
    found = _debug(ran)
    nb = nbformat.read(found["path"], as_version=4)
    env = {**os.environ, SECRET_VAR: SECRET}  # a JupyterLab started where the project's variable is set
    km, kc = start_new_kernel(kernel_name=found["kernel_name"], cwd=str(Path(found["path"]).parent), env=env)
    try:
        for i in found["run_cells"]:
            reply = kc.execute_interactive(nb.cells[i].source, timeout=60, output_hook=lambda msg: None)
            assert reply["content"]["status"] == "ok", (i, reply["content"])
        state = _evaluate(kc, value="value", cwd="__import__('os').getcwd()", load="upstream['load']", n="token_length")
        assert state["value"] == "123"
        assert state["cwd"] == repr(str(ran.notebook_folder))
        assert state["load"] == repr(str(ran.root / "out" / "load.txt"))
        assert state["n"] == str(len(SECRET))
        failing = kc.execute_interactive(nb.cells[found["failed_cell"]].source, timeout=60, output_hook=lambda m: None)
        assert failing["content"]["ename"] == "ValueError", "the failing cell fails again"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_run_picks_an_older_failed_run(ran: Ran) -> None:
    found = _debug(ran, "--run", ran.runs[0])
    assert found["run_id"] == ran.runs[0]
    assert Path(found["path"]).parent == ran.root / "_nbflow" / "debug" / ran.runs[0] / "etl"
    nb = nbformat.read(found["path"], as_version=4)
    assert "factor = 2" in _injected(nb)
    assert nb.cells[found["failed_cell"]].outputs[-1].evalue == "bad value 82"


def test_the_text_output_says_where_the_notebook_is_and_how_to_open_it(ran: Ran) -> None:
    proc = nbflow_process("debug", TASK, str(ran.root))
    assert proc.returncode == 0, proc.stderr
    path = ran.root / "_nbflow" / "debug" / ran.runs[1] / "etl" / "clean.ipynb"
    assert f"debug notebook of {TASK} (run {ran.runs[1]}, attempt 1): {path}" in proc.stdout
    assert "ValueError: bad value 123" in proc.stdout
    assert f"jupyter lab {path}" in proc.stdout
    assert "--console" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["load"], "'load' has no failed attempt in any recorded run to debug (it never failed)"),
        (["load", "--run", "RUN0"], "'load' has no failed attempt in run RUN0 to debug (its state there: success)"),
        (["etl/claen"], "No task named 'etl/claen' in this pipeline. Did you mean 'etl/clean'?"),
        ([TASK, "--run", "no-such-run"], "No run 'no-such-run'"),
    ],
)
def test_what_cannot_be_debugged_is_refused_with_exit_2(ran: Ran, args: list[str], message: str) -> None:
    args = [a.replace("RUN0", ran.runs[0]) for a in args]
    proc = nbflow_process("debug", args[0], str(ran.root), *args[1:])
    assert proc.returncode == 2, proc.stdout
    assert message.replace("RUN0", ran.runs[0]) in proc.stderr


def test_an_attempt_whose_executed_notebook_is_gone_is_refused(ran: Ran) -> None:
    executed = ran.root / "_nbflow" / "runs" / ran.runs[0] / "etl" / "clean" / "attempt-1.ipynb"
    aside = executed.with_name("aside.ipynb")
    executed.rename(aside)
    try:
        proc = nbflow_process("debug", TASK, str(ran.root), "--run", ran.runs[0])
    finally:
        aside.rename(executed)
    assert proc.returncode == 2
    assert f"its executed notebook {executed} is gone" in proc.stderr


# -- --console ---------------------------------------------------------------------------


def _wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Console:
    """``nbflow debug TASK --console`` in a process of its own, its stdout read line by line."""

    def __init__(self, ran: Ran) -> None:
        env = {**os.environ, SECRET_VAR: SECRET, "PYTHONWARNINGS": "ignore"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nbflow", "debug", TASK, str(ran.root), "--console"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        out, err = self.proc.stdout, self.proc.stderr
        self.readers = [
            threading.Thread(target=lambda: [self.lines.put(line) for line in out], daemon=True),
            threading.Thread(target=lambda: self.err.extend(err), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def line_starting(self, prefix: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.close()
                raise AssertionError(f"no line {prefix!r}; stderr: {''.join(self.err)}") from None
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def finish(self, timeout: float = 60) -> str:
        """Wait for the process to end; its stderr."""
        self.proc.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=timeout)
        return "".join(self.err)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def console(ran: Ran) -> Iterator[Console]:
    started = Console(ran)
    yield started
    started.close()


def _attach(console: Console) -> tuple[dict[str, str], str]:
    connection_file = console.line_starting("connection file:")
    assert f"attach: jupyter console --existing {connection_file}" == "attach: " + console.line_starting("attach:")
    kc = BlockingKernelClient()
    kc.load_connection_file(connection_file)
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    state = _evaluate(
        kc,
        value="value",
        cwd="__import__('os').getcwd()",
        pid="__import__('os').getpid()",
        secret_env="__import__('os').environ.get('NBFLOW_SECRET_API_TOKEN') == api_token",
        after="'after' in globals()",
    )
    kc.stop_channels()
    return state, connection_file


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_console_keeps_a_kernel_at_the_failure_until_stopped(ran: Ran, console: Console, sig: int) -> None:
    state, connection_file = _attach(console)
    assert state["value"] == "123", "the cells before the failing one ran"
    assert state["cwd"] == repr(str(ran.notebook_folder))
    assert state["secret_env"] == "True", "the kernel has the run's secret environment"
    assert state["after"] == "False", "nothing ran past the failing cell"
    kernel = int(state["pid"])
    console.proc.send_signal(sig)
    err = console.finish()
    assert console.proc.returncode == 0, err
    assert "kernel shut down" in err
    _wait_for(lambda: _gone(kernel), timeout=30)
    assert not Path(connection_file).exists()


def test_a_killed_console_leaves_no_kernel(ran: Ran, console: Console) -> None:
    state, _ = _attach(console)
    kernel = int(state["pid"])
    console.proc.kill()
    console.finish()
    _wait_for(lambda: _gone(kernel), timeout=30)
