"""Real processes: reading state while a run writes it, Ctrl-C, a killed orchestrator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from nbflow.store.duckdb import DuckDBRunStore
from tests.conftest import nbflow_process, write_notebook


def _start_run(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "nbflow", "run", str(root), "--no-progress", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_status_reads_while_another_process_runs(tmp_path: Path) -> None:
    write_notebook(tmp_path, "a", "upstream = None", "import time; time.sleep(0.8)")
    for name, up in (("b", "a"), ("c", "a"), ("d", "b"), ("e", "d")):
        write_notebook(tmp_path, name, f"upstream = ['{up}']", "import time; time.sleep(0.8)")
    proc = _start_run(tmp_path)

    # a tight reader in this process (a different process from the writer) ...
    store = DuckDBRunStore(tmp_path / "_nbflow" / "state.duckdb", lock_timeout=30)
    reads, errors = [], []

    def hammer() -> None:
        while proc.poll() is None:
            try:
                run = store.latest_run()
                if run:
                    reads.append(len(store.get_tasks(run.run_id)))
            except Exception as e:  # any lock error here is the bug this test exists for
                errors.append(e)

    reader = threading.Thread(target=hammer)
    reader.start()
    # ... and `nbflow status` in separate processes, as a user would
    observed = []
    while proc.poll() is None:
        status = nbflow_process("status", str(tmp_path), "--json")
        if status.returncode == 2 and "No runs recorded" in status.stderr:
            continue  # the run has not recorded itself yet
        assert status.returncode == 0, status.stderr
        observed.append(json.loads(status.stdout))
    reader.join()
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert errors == []
    assert len(reads) > 10
    assert any(o["state"] == "running" for o in observed), "no status was read during the run"
    assert any(t["state"] == "running" for o in observed for t in o["tasks"].values())
    final = nbflow_process("status", str(tmp_path), "--json")
    assert json.loads(final.stdout)["state"] == "success"


def _slow_pipeline(root: Path) -> Path:
    pid_file = root / "kernel.pid"
    write_notebook(
        root,
        "slow",
        "upstream = None",
        f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))",
        "import time; time.sleep(120)",
    )
    write_notebook(root, "after", "upstream = ['slow']", "print('after')")
    write_notebook(root, "quick", "upstream = None", "print('quick')")
    return pid_file


def test_ctrl_c_stops_the_kernels_and_records_the_run_as_interrupted(tmp_path: Path) -> None:
    pid_file = _slow_pipeline(tmp_path)
    proc = _start_run(tmp_path, "--workers", "2")
    _wait_for(lambda: pid_file.exists() and pid_file.read_text())
    kernel_pid = int(pid_file.read_text())
    store = DuckDBRunStore(tmp_path / "_nbflow" / "state.duckdb")
    _wait_for(lambda: store.get_tasks(store.latest_run().run_id)["quick"].state == "success")
    second = nbflow_process("run", str(tmp_path))
    assert second.returncode == 2
    assert f"Another nbflow run is running the pipeline in {tmp_path} (process {proc.pid}" in second.stderr
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    _wait_for(lambda: not _alive(kernel_pid), timeout=60)
    status = json.loads(nbflow_process("status", str(tmp_path), "--json").stdout)
    assert status["state"] == "interrupted"
    assert status["tasks"]["slow"]["state"] == "interrupted"
    assert status["tasks"]["after"]["state"] == "pending"
    assert status["tasks"]["quick"]["state"] == "success"
    assert Path(status["tasks"]["slow"]["output_notebook"]).exists(), "the interrupted attempt keeps its notebook"
    assert "interrupted" in err


def test_a_killed_run_is_recorded_as_interrupted_and_its_kernel_does_not_linger(tmp_path: Path) -> None:
    pid_file = _slow_pipeline(tmp_path)
    proc = _start_run(tmp_path, "--workers", "2")
    _wait_for(lambda: pid_file.exists() and pid_file.read_text())
    kernel_pid = int(pid_file.read_text())
    proc.kill()
    proc.communicate()
    _wait_for(lambda: not _alive(kernel_pid), timeout=20)
    status = json.loads(nbflow_process("status", str(tmp_path), "--json").stdout)
    assert status["state"] == "interrupted"
    assert status["tasks"]["slow"]["state"] == "interrupted"
    assert "died" in status["tasks"]["slow"]["error"]


def test_a_killed_run_can_be_resumed(tmp_path: Path) -> None:
    write_notebook(
        tmp_path,
        "first",
        "upstream = None\nproduct = 'first.txt'\nn = 1",
        "open(product, 'w').write(str(n))\nopen('first_runs.txt', 'a').write('x')",
    )
    write_notebook(
        tmp_path,
        "slow",
        "upstream = ['first']\nproduct = 'slow.txt'",
        "import os, pathlib\nif not pathlib.Path('resumed').exists():\n"
        "    pathlib.Path('slow.pid').write_text(str(os.getpid()))\n    import time; time.sleep(120)\n"
        "open(product, 'w').write(open(upstream['first']).read())",
    )
    write_notebook(tmp_path, "last", "upstream = ['slow']", "print(open(upstream['slow']).read())")
    proc = _start_run(tmp_path, "-p", "n=7")
    _wait_for(lambda: (tmp_path / "slow.pid").exists())
    proc.kill()
    proc.communicate()
    (tmp_path / "resumed").touch()

    resumed = nbflow_process("resume", str(tmp_path), "--json")
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    first_run = json.loads(nbflow_process("history", str(tmp_path), "--json").stdout)["runs"][1]
    assert first_run["state"] == "interrupted"
    assert report["resumed_from"] == first_run["run_id"]
    assert report["params"] == {"n": 7}, "a resumed run keeps the parameters of the run it resumes"
    assert {n: t["state"] for n, t in report["tasks"].items()} == {
        "first": "up_to_date",
        "slow": "success",
        "last": "success",
    }
    assert (tmp_path / "first_runs.txt").read_text() == "x", "what succeeded is not run again"
    assert (tmp_path / "slow.txt").read_text() == "7"
