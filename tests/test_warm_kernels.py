"""Kernels started ahead of time: every notebook still gets a fresh kernel of its own."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil

from nbflow import Pipeline
from nbflow.executors.local import LocalExecutor
from tests.conftest import live_kernels

PIDS = "import os, json, pathlib\npathlib.Path(f'pid-{name}.txt').write_text(str(os.getpid()))"


def _chain(folder: Path, make_notebook, n: int) -> None:
    for i in range(n):
        up = [f"t{i - 1}"] if i else []
        leak = f"leaked_{i} = 1\nassert not [k for k in globals() if k.startswith('leaked_') and k != 'leaked_{i}']"
        make_notebook(
            f"t{i}",
            f"upstream = {up!r}\nname = 't{i}'",
            PIDS,
            leak,
            f"import sys, os; os.write(2, b'kernel-side output of t{i}\\n')",
        )


def _kernel_children() -> list[psutil.Process]:
    return live_kernels()


def test_a_chain_runs_on_kernels_started_ahead_each_fresh(tmp_path: Path, make_notebook) -> None:
    _chain(tmp_path, make_notebook, 5)
    executor = LocalExecutor(workers=1, warm_kernels=2)
    result = Pipeline.from_dir(tmp_path).run(workers=1, executor=executor)
    executor.close()
    assert result.ok, result
    counts = executor._launcher.counts
    assert counts["warm"] >= 3 and counts["warm"] + counts["on demand"] == 5
    pids = {(tmp_path / f"pid-t{i}.txt").read_text() for i in range(5)}
    assert len(pids) == 5, "one kernel per notebook"
    run_dir = tmp_path / "_nbflow" / "runs" / result.run_id
    for i in range(5):  # each kernel's own output lands in its task's kernel log, wherever it started
        assert f"kernel-side output of t{i}" in (run_dir / f"t{i}" / "attempt-1.kernel.log").read_text()
    assert not list(run_dir.glob(".warm-kernel-*")), "no scratch file is left"
    deadline = time.monotonic() + 60
    while _kernel_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _kernel_children(), "no kernel outlives the run"


def test_kernels_started_for_tasks_that_never_run_are_stopped(tmp_path: Path, make_notebook) -> None:
    make_notebook("boom", "upstream = None", "raise ValueError('no')")
    for i in range(3):
        make_notebook(f"after{i}", "upstream = ['boom']", "print('never')")
    executor = LocalExecutor(workers=1, warm_kernels=3)
    result = Pipeline.from_dir(tmp_path).run(workers=1, executor=executor)
    assert {n: t.state for n, t in result.tasks.items()} == {
        "boom": "failed",
        **{f"after{i}": "upstream_failed" for i in range(3)},
    }
    executor.close()
    counts = executor._launcher.counts
    assert counts["ahead"] >= 2 and counts["warm"] <= 1, "kernels were started for the tasks after 'boom'"
    assert not _kernel_children()
    assert not list((tmp_path / "_nbflow" / "runs" / result.run_id).glob(".warm-kernel-*"))


def test_warm_kernels_off_and_a_bad_setting(tmp_path: Path, make_notebook, nbflow_cli) -> None:
    _chain(tmp_path, make_notebook, 2)
    result = nbflow_cli("run", str(tmp_path), "--warm-kernels", "0", "--json")
    assert result.exit_code == 0, result.stderr
    assert {t["state"] for t in json.loads(result.stdout)["tasks"].values()} == {"success"}
    (tmp_path / "nbflow.toml").write_text("warm_kernels = -1\n")
    bad = nbflow_cli("run", str(tmp_path))
    assert bad.exit_code == 2
    assert "nbflow.toml" in bad.stderr and "warm_kernels" in bad.stderr
