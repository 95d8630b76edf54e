"""Incremental runs: what is up to date is not run again, and the reason is visible."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import nbflow_process, write_notebook


def _states(proc) -> dict[str, str]:
    assert proc.returncode == 0, proc.stderr
    return {name: t["state"] for name, t in json.loads(proc.stdout)["tasks"].items()}


def _pipeline(root: Path) -> None:
    write_notebook(root, "a", "upstream = None\nproduct = 'a.txt'\nn = 1", "open(product, 'w').write(str(n))")
    write_notebook(
        root, "b", "upstream = ['a']\nproduct = 'b.txt'", "open(product, 'w').write(open(upstream['a']).read() * 2)"
    )
    write_notebook(root, "c", "upstream = None", "print('c')")


def test_a_second_run_reuses_everything_and_changes_rerun_what_they_touch(tmp_path: Path) -> None:
    _pipeline(tmp_path)
    assert set(_states(nbflow_process("run", str(tmp_path), "--json")).values()) == {"success"}
    assert _states(nbflow_process("run", str(tmp_path), "--json")) == {
        "a": "up_to_date",
        "b": "up_to_date",
        "c": "up_to_date",
    }

    # a changed notebook runs again, with what depends on it
    write_notebook(tmp_path, "a", "upstream = None\nproduct = 'a.txt'\nn = 1", "open(product, 'w').write(str(n + 1))")
    assert _states(nbflow_process("run", str(tmp_path), "--json")) == {
        "a": "success",
        "b": "success",
        "c": "up_to_date",
    }
    assert (tmp_path / "b.txt").read_text() == "22"

    # a deleted product, a changed parameter
    (tmp_path / "b.txt").unlink()
    assert _states(nbflow_process("run", str(tmp_path), "--json")) == {
        "a": "up_to_date",
        "b": "success",
        "c": "up_to_date",
    }
    assert _states(nbflow_process("run", str(tmp_path), "-p", "n=5", "--json"))["a"] == "success"
    assert (tmp_path / "b.txt").read_text() == "66"

    # forcing
    assert set(_states(nbflow_process("run", str(tmp_path), "-p", "n=5", "--force", "--json")).values()) == {"success"}
    forced = _states(nbflow_process("run", str(tmp_path), "-p", "n=5", "--force-task", "a", "--json"))
    assert forced == {"a": "success", "b": "success", "c": "up_to_date"}


def test_dry_run_and_status_why_say_why(tmp_path: Path) -> None:
    _pipeline(tmp_path)
    plan = json.loads(nbflow_process("run", str(tmp_path), "--dry-run", "--json").stdout)
    assert plan["a"] == {"run": True, "reason": "it has not succeeded before"}
    assert not (tmp_path / "_nbflow" / "state.duckdb").exists(), "a dry run runs nothing and records nothing"
    nbflow_process("run", str(tmp_path))
    write_notebook(tmp_path, "c", "upstream = None", "print('c changed')")
    plan = json.loads(nbflow_process("run", str(tmp_path), "--dry-run", "--json").stdout)
    assert plan["c"] == {"run": True, "reason": "its code changed"}
    assert plan["a"]["run"] is False and plan["a"]["reason"].startswith("up to date since run ")
    text = nbflow_process("run", str(tmp_path), "-p", "n=2", "--dry-run").stdout
    assert "b     run     upstream 'a' runs" in text
    nbflow_process("run", str(tmp_path))
    why = nbflow_process("status", str(tmp_path), "--why", "c")
    assert why.returncode == 0 and why.stdout.startswith("c: success in run ") and "its code changed" in why.stdout
    assert "up to date since run" in nbflow_process("status", str(tmp_path), "--why", "a").stdout
    bad = nbflow_process("run", str(tmp_path), "--force-task", "nope")
    assert bad.returncode == 2 and "--force-task: no task named 'nope'" in bad.stderr
