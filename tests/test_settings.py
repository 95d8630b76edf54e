"""Settings from the project file and the notebook, retry decisions, backoff."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from nbflow.engine.retry import backoff_delay, decide
from nbflow.errors import InvalidSettingsError
from nbflow.project.settings import TaskSettings, load_project, parse_duration


def test_project_defaults_then_task_section_then_notebook_metadata(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        """
[project]
name = "x"

[tool.nbflow]
retries = 2
retry_delay = "10s"
retry_backoff = 2
max_retry_delay = "1m"
timeout = "15m"
retry_rules = [
  {match = "ValueError", action = "fail"},
  {pattern = "connection (reset|refused)", action = "retry", delay = 1},
]

[tool.nbflow.tasks.train]
retries = 5
trigger_rule = "all_done"
"""
    )
    project = load_project(tmp_path)
    assert project.source == "pyproject.toml [tool.nbflow]"
    assert project.for_task("clean").retries == 2
    assert project.for_task("clean").timeout == 900
    train = project.for_task("train")
    assert (train.retries, train.retry_delay, train.trigger_rule) == (5, 10.0, "all_done")
    from_notebook = project.for_task("train", {"retries": 1, "timeout": 30}, "train.ipynb")
    assert (from_notebook.retries, from_notebook.timeout, from_notebook.trigger_rule) == (1, 30.0, "all_done")


def test_nbflow_toml_is_read_at_top_level(tmp_path: Path) -> None:
    (tmp_path / "nbflow.toml").write_text('retries = 1\nalert_on = ["failure", "retry"]\n')
    assert load_project(tmp_path).defaults.alert_on == ("failure", "retry")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("retries = -1", "'retries' must be a whole number"),
        ("retries = true", "'retries' must be a whole number"),
        ("retrys = 1", "'retrys' is not an nbflow setting. Did you mean 'retries'?"),
        ('timeout = "soon"', "'timeout' must be a duration"),
        ('trigger_rule = "sometimes"', "'trigger_rule' must be one of all_success"),
        ("retry_backoff = 0.5", "'retry_backoff' must be a multiplier of 1 or more"),
        ('retry_rules = [{match = "X", action = "maybe"}]', "a rule's action must be one of"),
        ('retry_rules = [{pattern = "(", action = "retry"}]', "is not a valid regex"),
        (
            '[email]\nhost = "h"\nto = "a@b"\nsender = "s@b"\npassword = "hunter2"',
            "credentials come only from the environment",
        ),
        ("retries = [", "is not valid TOML"),
        ("retry_delay = inf", "'retry_delay' must be a duration"),
        ("retry_backoff = inf", "'retry_backoff' must be a multiplier"),
        ('retry_rules = [{match = 5, action = "retry"}]', "a rule's 'match' must be text"),
        ('[email]\nhost = "h"\nto = 5\nsender = "s@b"', "'email.to' must be an address or a list"),
    ],
)
def test_invalid_settings_name_their_file(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "nbflow.toml").write_text(toml)
    with pytest.raises(InvalidSettingsError) as info:
        load_project(tmp_path)
    assert str(info.value).startswith("nbflow.toml")
    assert message in str(info.value)


def test_durations() -> None:
    assert [parse_duration(v, "f", "k") for v in (30, 1.5, "30s", "5m", "2h", "250ms", "1d")] == [
        30,
        1.5,
        30,
        300,
        7200,
        0.25,
        86400,
    ]


def test_a_huge_backoff_is_capped_not_an_overflow() -> None:
    s = TaskSettings(retries=3, retry_delay=1, retry_backoff=1e200, max_retry_delay=1)
    assert [backoff_delay(s, n) for n in (1, 2, 3)] == [1, 1, 1]
    assert backoff_delay(TaskSettings(retry_delay=1, retry_backoff=1e200), 3) == 86400


def test_backoff_is_airflows() -> None:
    s = TaskSettings(retries=5, retry_delay=10, retry_backoff=2, max_retry_delay=60)
    assert [backoff_delay(s, n) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]
    jittered = TaskSettings(retries=5, retry_delay=10, retry_jitter=True)
    delays = {backoff_delay(jittered, 1, random.Random(i)) for i in range(20)}
    assert all(5 <= d <= 10 for d in delays) and len(delays) > 1


def test_rules_decide_in_order() -> None:
    from nbflow.project.settings import RetryRule

    s = TaskSettings(
        retries=3,
        retry_delay=30,
        retry_on_timeout=False,
        retry_rules=(
            RetryRule("fail", match="Value*"),
            RetryRule("retry", pattern="connection reset", delay=2),
            RetryRule("default", match="KeyError"),
        ),
    )
    assert not decide(s, 1, "ValueError", "ValueError: bad").retry
    assert decide(s, 1, "OSError", "OSError: connection reset by peer").delay == 2
    assert decide(s, 1, "KeyError", "KeyError: 'x'").delay == 30
    assert not decide(s, 1, "TaskTimeout", "TaskTimeout: ...").retry
    assert decide(s, 3, "RuntimeError", "x").retry and not decide(s, 4, "RuntimeError", "x").retry
