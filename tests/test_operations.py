"""Retries, timeouts and trigger rules, with real kernels."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from nbflow.pipeline import Pipeline
from tests.conftest import write_notebook


def _set_metadata(path: Path, settings: dict) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.metadata["nbflow"] = settings
    nbformat.write(nb, path)


def test_a_flaky_notebook_succeeds_on_its_third_attempt(tmp_path: Path) -> None:
    flaky = write_notebook(
        tmp_path,
        "flaky",
        "upstream = None",
        "import pathlib\ncount = pathlib.Path('count.txt')\nn = int(count.read_text()) + 1 if count.exists() else 1\n"
        "count.write_text(str(n))\nprint('attempt', n)\nif n < 3:\n    raise ConnectionError(f'flaky {n}')",
    )
    _set_metadata(flaky, {"retries": 3, "retry_delay": 0.2, "retry_backoff": 2})
    write_notebook(tmp_path, "after", "upstream = ['flaky']", "print('after')")
    seen = []

    class Watch:
        def on_task(self, *, task, **_):
            seen.append((task.task, task.state))

    result = Pipeline.from_dir(tmp_path).run(workers=1, listeners=[Watch()])
    assert result.ok, result.tasks
    assert result.tasks["flaky"].attempts == 3
    assert ("flaky", "up_for_retry") in seen
    with Pipeline.from_dir(tmp_path).open_store() as store:
        attempts = store.get_attempts(result.run_id, "flaky")
        assert [a.state for a in attempts] == ["failed", "failed", "success"]
        assert attempts[0].error.startswith("ConnectionError: flaky 1")
        assert len({a.output_notebook for a in attempts}) == 3
        assert all(Path(a.output_notebook).exists() for a in attempts)
        assert [store.get_log(result.run_id, "flaky", n) for n in (1, 2, 3)] == [
            "attempt 1\n",
            "attempt 2\n",
            "attempt 3\n",
        ]
        # backoff: 0.2 s then 0.4 s between attempts
        gap = (attempts[2].started_at - attempts[1].ended_at).total_seconds()
        assert gap >= 0.4


def test_a_rule_fails_an_error_at_once(tmp_path: Path) -> None:
    (tmp_path / "nbflow.toml").write_text(
        'retries = 3\nretry_delay = 0\nretry_rules = [{match = "ValueError", action = "fail"}]\n'
    )
    write_notebook(tmp_path, "bad", "upstream = None", "raise ValueError('not worth retrying')")
    result = Pipeline.from_dir(tmp_path).run(workers=1)
    assert result.states == {"bad": "failed"} and result.tasks["bad"].attempts == 1


def test_a_notebook_past_its_timeout_is_stopped_in_about_the_timeout(tmp_path: Path) -> None:
    slow = write_notebook(tmp_path, "slow", "upstream = None", "import time\ntime.sleep(120)")
    _set_metadata(slow, {"timeout": 2, "retries": 1, "retry_on_timeout": False})
    result = Pipeline.from_dir(tmp_path).run(workers=1)
    task = result.tasks["slow"]
    assert task.state == "failed" and task.attempts == 1
    assert task.error.startswith("TaskTimeout: the task ran longer than its timeout of 2s")
    assert task.duration_s < 10
    assert Path(task.output_notebook).exists()


def test_trigger_rules_run_cleanup_and_alert_notebooks(tmp_path: Path) -> None:
    (tmp_path / "nbflow.toml").write_text(
        '[tasks.cleanup]\ntrigger_rule = "all_done"\n[tasks.on_failure]\ntrigger_rule = "one_failed"\n'
        '[tasks.on_success]\ntrigger_rule = "all_success"\n'
    )
    write_notebook(tmp_path, "work", "upstream = None", "raise RuntimeError('broken')")
    write_notebook(tmp_path, "cleanup", "upstream = ['work']", "open('cleaned', 'w').write('yes')")
    write_notebook(tmp_path, "on_failure", "upstream = ['work']", "open('alerted', 'w').write('yes')")
    write_notebook(tmp_path, "on_success", "upstream = ['work']", "open('celebrated', 'w').write('yes')")
    result = Pipeline.from_dir(tmp_path).run(workers=2)
    assert result.states == {
        "work": "failed",
        "cleanup": "success",
        "on_failure": "success",
        "on_success": "upstream_failed",
    }
    assert result.state == "failed" and result.exit_code == 1
    assert (tmp_path / "cleaned").exists() and (tmp_path / "alerted").exists()
    assert not (tmp_path / "celebrated").exists()


def test_invalid_notebook_settings_are_named(tmp_path: Path, nbflow_cli) -> None:
    nb = write_notebook(tmp_path, "train", "upstream = None")
    _set_metadata(nb, {"retries": "many"})
    result = nbflow_cli("dag", str(tmp_path))
    assert result.exit_code == 2
    assert "train.ipynb (metadata 'nbflow'): setting 'retries' must be a whole number" in result.stderr
    (tmp_path / "nbflow.toml").write_text("[tasks.trian]\nretries = 1\n")
    _set_metadata(nb, {})
    result = nbflow_cli("dag", str(tmp_path))
    assert result.exit_code == 2 and "setting 'tasks.trian' names no task" in result.stderr
    assert json.loads(nbflow_cli("dag", str(tmp_path), "--format", "json").stdout or "null") is None
