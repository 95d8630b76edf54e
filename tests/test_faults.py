"""Faults from outside the notebook's code: a kernel that dies, a signal to the runner, a full disk.

Each case checks what a user relies on afterwards: the state recorded, the exit code of
``nbflow run``, what is kept on disk, and that no kernel process is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import nbflow_process, write_notebook

#: the first lines of every notebook here: the kernel says who it is before anything else
PID = "import os, pathlib\npathlib.Path({name!r} + '.pid').write_text(str(os.getpid()))\n"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie is gone for our purpose
    except FileNotFoundError:
        return False


def _until(check, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.05)


def _kernel_pids(root: Path) -> list[int]:
    return [int(p.read_text()) for p in root.glob("*.pid") if p.read_text()]


def _status(root: Path) -> dict:
    proc = nbflow_process("status", str(root), "--json")
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def test_a_kernel_that_dies_fails_its_task_and_keeps_what_ran(tmp_path: Path) -> None:
    write_notebook(
        tmp_path,
        "dies",
        "upstream = None",
        PID.format(name="dies") + "print('before the crash', flush=True)",
        "os._exit(1)",
        "print('never')",
    )
    write_notebook(tmp_path, "after", "upstream = ['dies']", "print('never')")
    write_notebook(tmp_path, "side", "upstream = None", "print('side ran')")
    proc = nbflow_process("run", str(tmp_path), "--no-progress", "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert {n: t["state"] for n, t in report["tasks"].items()} == {
        "dies": "failed",
        "after": "upstream_failed",
        "side": "success",
    }
    assert report["tasks"]["dies"]["error"].startswith("KernelDied")
    executed = Path(report["tasks"]["dies"]["output_notebook"])
    assert "before the crash" in executed.read_text(), "the executed notebook keeps the cells that ran"
    assert "before the crash" in nbflow_process("logs", str(tmp_path), "dies").stdout
    assert "Traceback" not in proc.stderr
    assert not any(_alive(pid) for pid in _kernel_pids(tmp_path))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint-inherited-ignored"])
def test_a_signal_stops_the_run_its_kernels_and_records_it_interrupted(tmp_path: Path, sig: int) -> None:
    """SIGTERM, and SIGINT (the panel's Stop) even in a process started with SIGINT ignored, as
    everything started by a script's ``cmd &`` is."""
    go = tmp_path / "never"
    write_notebook(
        tmp_path,
        "waits",
        "upstream = None",
        PID.format(name="waits")
        + f"import time\nprint('waiting', flush=True)\nwhile not pathlib.Path({str(go)!r}).exists():\n"
        "    time.sleep(0.05)",
    )
    write_notebook(tmp_path, "after", "upstream = ['waits']", "print('never')")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbflow", "run", str(tmp_path), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        _until(lambda: (tmp_path / "waits.pid").exists() and (tmp_path / "waits.pid").read_text(), what="the kernel")
        _until(lambda: "waiting" in (_log(tmp_path, "waits") or ""), what="the notebook to be waiting")
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    status = _status(tmp_path)
    assert status["state"] == "interrupted"
    assert status["tasks"]["waits"]["state"] == "interrupted"
    assert status["tasks"]["after"]["state"] == "pending"
    assert "waiting" in Path(status["tasks"]["waits"]["output_notebook"]).read_text()
    _until(lambda: not any(_alive(pid) for pid in _kernel_pids(tmp_path)), 60, "the kernel to be gone")


def _log(root: Path, task: str) -> str | None:
    logs = sorted(root.glob(f"_nbflow/runs/*/{task}/attempt-*.log"))
    return logs[-1].read_text() if logs else None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MB file system of its own (tmpfs), so that a test can fill it."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("filling a disk needs a tmpfs of the test's own: run the suite as root (as CI does)")
    where = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


FILL = (
    "import os, pathlib\n"
    "if pathlib.Path('fill').exists():  # write until the disk is full, and leave it full\n"
    "    with open('filler.bin', 'wb') as f:\n"
    "        try:\n"
    "            while True:\n"
    "                f.write(b'x' * 1_000_000)\n"
    "                f.flush()\n"
    "        except OSError as e:\n"
    "            print('the notebook saw:', e)\n"
    "print('y' * 5000)\n"
    "open(product, 'w').write('done')"
)


def test_a_full_disk_stops_the_run_clearly_and_resume_finishes_it(small_disk: Path) -> None:
    root = small_disk / "pipe"
    write_notebook(root, "first", "upstream = None\nproduct = 'out/first.txt'", "open(product, 'w').write('ok')")
    write_notebook(root, "hog", "upstream = ['first']\nproduct = 'out/hog.txt'", PID.format(name="hog") + FILL)
    write_notebook(root, "after", "upstream = ['hog']\nproduct = 'out/after.txt'", "open(product, 'w').write('ok')")
    (root / "fill").touch()

    proc = nbflow_process("run", str(root), "--no-progress")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "is full" in proc.stderr and "nbflow resume" in proc.stderr, proc.stderr
    assert not any(_alive(pid) for pid in _kernel_pids(root)), "no kernel outlives the run"
    first_notebook = next(root.glob("_nbflow/runs/*/first/attempt-1.ipynb"))
    assert "cells" in json.loads(first_notebook.read_text()), "what was written before stays whole"
    assert not list(root.glob("_nbflow/runs/*/*/.*.tmp")), "no half-written file is left"

    # room again: what was recorded is there, and resume finishes the run
    (root / "filler.bin").unlink()
    (root / "fill").unlink()
    status = _status(root)
    assert status["tasks"]["first"]["state"] == "success"
    assert status["state"] in ("failed", "interrupted")
    resumed = nbflow_process("resume", str(root), "--json")
    assert resumed.returncode == 0, resumed.stderr
    tasks = json.loads(resumed.stdout)["tasks"]
    assert {n: t["state"] for n, t in tasks.items()} == {"first": "up_to_date", "hog": "success", "after": "success"}
    assert (root / "out" / "after.txt").read_text() == "ok"
