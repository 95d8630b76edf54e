"""The CLI package's shared parts: errors from one module, library warnings through logging."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from nbflow import errors


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (errors.NoScheduleError("etl"), 'etl has no schedule: set schedule = "@daily"'),
        (errors.ExecutorOptionError("--scheduler", "--executor local"), "cannot be used with --executor local"),
        (errors.ExecutorOptionError("--worker-root"), "--worker-root is for the Dask executor: add --executor dask"),
        (errors.KernelStartError("r", ["OSError: no such file"]), "the kernel 'r' did not start: OSError"),
        (errors.KernelStartError("r", stopped=True), "the run was stopped before the kernel started"),
        (errors.AirflowIdClashError("a/b", "a.b", "a.b"), "'a/b' and 'a.b' would both be Airflow task 'a.b'"),
        (errors.InvalidDagIdError("a b"), "'a b' is not a valid Airflow dag id"),
        (errors.AirflowTaskFailedError("t", "E: x", "E", "Traceback\n", "t.ipynb"), "task t failed: E: x"),
    ],
)
def test_errors_are_nbflow_errors_and_cross_processes(error: errors.NbflowError, message: str) -> None:
    assert isinstance(error, errors.NbflowError)
    assert message in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error) and copy.__dict__ == error.__dict__


def test_a_task_failure_inside_airflow_stays_a_runtime_error_for_airflow() -> None:
    failure = errors.AirflowTaskFailedError("t", "E: x", "E", None, "t.ipynb")
    assert isinstance(failure, RuntimeError)
    assert (failure.task, failure.ename, failure.notebook) == ("t", "E", "t.ipynb")
    assert failure.exit_code == errors.KernelStartError.exit_code == 1  # a task failed, the pipeline is valid


def test_no_schedule_is_one_message_for_backfill_and_the_scheduler(tmp_path: Path, make_notebook, nbflow_cli) -> None:
    from nbflow.integrations.cron import CronScheduler

    make_notebook("a", "upstream = None", "x = 1")
    result = nbflow_cli("backfill", str(tmp_path), "--start", "2026-01-01", "--end", "2026-01-02")
    assert result.exit_code == 2
    with pytest.raises(errors.NoScheduleError) as raised:
        CronScheduler([tmp_path], log=lambda text: None)
    assert f"nbflow: error: {raised.value}" in result.stderr
    assert 'set schedule = "@daily" (or a cron line) in its nbflow.toml' in result.stderr


def test_a_kernel_that_does_not_start_fails_its_task_not_the_command(tmp_path: Path, make_notebook) -> None:
    """A KernelStartError (an NbflowError) is the task's recorded failure, not the command's
    exit code 2; both tries are named in the task's error."""
    kernels = tmp_path / "jupyter" / "kernels" / "broken"
    kernels.mkdir(parents=True)
    missing = tmp_path / "no-such-python"
    spec = {"argv": [str(missing), "-m", "ipykernel_launcher", "-f", "{connection_file}"], "language": "python"}
    (kernels / "kernel.json").write_text(json.dumps({**spec, "display_name": "broken"}))
    pipeline = tmp_path / "pipeline"
    pipeline.mkdir()
    make_notebook("pipeline/a", "upstream = None", "x = 1", kernel="broken")
    proc = subprocess.run(
        [sys.executable, "-m", "nbflow", "run", str(pipeline), "--no-progress", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "JUPYTER_PATH": str(tmp_path / "jupyter")},
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    task = json.loads(proc.stdout)["tasks"]["a"]
    assert task["state"] == "failed"
    assert task["error"].startswith("KernelStartError: the kernel 'broken' did not start:")
    assert "; then " in task["error"]  # tried twice
    assert "Traceback" not in proc.stderr


def test_nbflow_loggers_print_plain_lines_on_the_clis_stderr(tmp_path: Path) -> None:
    """What a library module logs at WARNING comes out of a command as its bare message."""
    probe = (
        "import logging, sys\n"
        "from nbflow.cli import cli\n"
        "try:\n"
        "    cli.main(['history', sys.argv[1]], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "logging.getLogger('nbflow.store').warning('nbflow: warning: the probe')\n"
        "logging.getLogger('nbflow.store').info('not shown')\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.stderr.splitlines()[-1] == "nbflow: warning: the probe"
    assert "not shown" not in proc.stderr
