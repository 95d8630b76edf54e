"""The CLI's contract: exit codes, JSON shapes, logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_notebook


@pytest.fixture(scope="module")
def ran_pipeline(tmp_path_factory):
    """A pipeline with a failure in it, run once through the CLI: (folder, run --json output, exit code)."""
    from click.testing import CliRunner

    from nbflow.cli import cli

    root = tmp_path_factory.mktemp("pipeline")
    write_notebook(
        root,
        "load",
        "upstream = None\nproduct = 'load.txt'\nn = 1",
        "open(product, 'w').write(str(n))\nprint('loaded', n)",
    )
    write_notebook(root, "fit", "upstream = ['load']", "print('fitting')\nraise RuntimeError('diverged')")
    write_notebook(root, "report", "upstream = ['fit']", "print('never')")
    write_notebook(root, "side", "upstream = ['load']", "print('side ok')")
    result = CliRunner().invoke(cli, ["run", str(root), "-p", "n=5", "--json", "--no-progress"], catch_exceptions=False)
    return root, result


def test_run_exit_code_and_json(ran_pipeline) -> None:
    import json

    root, result = ran_pipeline
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert set(report) >= {"run_id", "state", "tasks"}
    assert report["state"] == "failed"
    assert report["params"] == {"n": 5}
    assert set(report["tasks"]) == {"load", "fit", "report", "side"}
    fit = report["tasks"]["fit"]
    assert set(fit) >= {"state", "attempts", "duration_s", "output_notebook", "error"}
    assert fit["state"] == "failed" and fit["attempts"] == 1 and fit["duration_s"] > 0
    assert fit["error"].startswith("RuntimeError: diverged")
    assert Path(fit["output_notebook"]).exists()
    assert report["tasks"]["report"] == {**report["tasks"]["report"], "state": "upstream_failed", "attempts": 0}
    # progress went to stderr as plain lines, with a summary and where to look
    assert "✗ fit failed: RuntimeError: diverged" in result.stderr
    assert f"nbflow logs fit --run {report['run_id']}" in result.stderr
    assert "2 success, 1 failed, 1 upstream_failed" in result.stderr


def test_status_json_matches_the_run(ran_pipeline, nbflow_cli) -> None:
    import json

    root, run_result = ran_pipeline
    run_report = json.loads(run_result.stdout)
    status = nbflow_cli("status", str(root), "--json")
    assert status.exit_code == 0
    assert status.json() == {**run_report, "alerts": []}
    by_id = nbflow_cli("status", str(root), "--run", run_report["run_id"], "--json")
    assert by_id.json() == {**run_report, "alerts": []}
    text = nbflow_cli("status", str(root))
    assert f"run {run_report['run_id']}: failed" in text.stdout
    assert "fit     failed" in text.stdout
    missing = nbflow_cli("status", str(root), "--run", "nope")
    assert missing.exit_code == 2 and "No run 'nope'" in missing.stderr


def test_logs_show_output_and_traceback(ran_pipeline, nbflow_cli) -> None:
    root, _ = ran_pipeline
    logs = nbflow_cli("logs", str(root), "fit")
    assert logs.exit_code == 0
    assert "fitting" in logs.stdout
    assert "RuntimeError: diverged" in logs.stdout
    assert "raise RuntimeError('diverged')" in logs.stdout  # the traceback, not only the message
    ok = nbflow_cli("logs", str(root), "load")
    assert "loaded 5" in ok.stdout and "Traceback" not in ok.stdout
    never = nbflow_cli("logs", str(root), "report")
    assert never.exit_code == 2 and "report" in never.stderr
    unknown = nbflow_cli("logs", str(root), "lod")
    assert unknown.exit_code == 2 and "Did you mean 'load'?" in unknown.stderr


def test_history_json(ran_pipeline, nbflow_cli) -> None:
    import json

    root, run_result = ran_pipeline
    history = nbflow_cli("history", str(root), "--json").json()
    [run] = history["runs"]
    assert run["run_id"] == json.loads(run_result.stdout)["run_id"]
    assert run["state"] == "failed" and run["params"] == {"n": 5} and run["duration_s"] > 0
    assert "failed" in nbflow_cli("history", str(root)).stdout


def test_dag_formats(tmp_path: Path, nbflow_cli) -> None:
    write_notebook(tmp_path, "a", "upstream = None")
    write_notebook(tmp_path / "etl", "b", "upstream = ['a']")
    write_notebook(tmp_path, 'c"q', "upstream = ['a', 'etl/b']")
    as_json = nbflow_cli("dag", str(tmp_path), "--format", "json")
    assert as_json.exit_code == 0
    assert as_json.json() == {"nodes": ["a", "etl/b", 'c"q'], "edges": [["a", "etl/b"], ["a", 'c"q'], ["etl/b", 'c"q']]}
    dot = nbflow_cli("dag", str(tmp_path), "--format", "dot").stdout
    assert dot.startswith("digraph pipeline {") and '"a" -> "etl/b";' in dot and '"etl/b" -> "c\\"q";' in dot
    text = nbflow_cli("dag", str(tmp_path)).stdout
    assert "etl/b  <- a" in text and "3 tasks, 3 edges, 1 roots" in text


def test_success_exits_zero_and_default_path_is_the_current_folder(tmp_path: Path, monkeypatch, nbflow_cli) -> None:
    write_notebook(tmp_path, "only", "upstream = None", "print('hi')")
    monkeypatch.chdir(tmp_path)
    result = nbflow_cli("run", "--workers", "1")
    assert result.exit_code == 0, result
    assert nbflow_cli("status", "--json").json()["tasks"]["only"]["state"] == "success"
    assert "hi" in nbflow_cli("logs", "only").stdout


def test_bad_options_exit_two(nbflow_cli, tmp_path: Path) -> None:
    assert nbflow_cli("run", str(tmp_path), "--workers", "0").exit_code == 2
    assert nbflow_cli("dag", str(tmp_path), "--format", "png").exit_code == 2
    assert nbflow_cli("frobnicate").exit_code == 2
