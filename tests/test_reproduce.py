"""Reproducible run records: what a run ran with, nbflow rerun and nbflow diff, on real runs."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from conftest import nbflow_process, write_notebook

import nbflow
from nbflow.history import open_store


def _pipeline(root: Path) -> None:
    write_notebook(
        root,
        "load",
        "upstream = None\nproduct = 'load.txt'\nrows = 1",
        "print('rows', rows)\nopen(product, 'w').write(str(rows))",
    )
    write_notebook(root, "train", 'upstream = ["load"]', "print('trained')")


def test_a_run_records_what_it_ran_with(tmp_path: Path) -> None:
    _pipeline(tmp_path)
    assert nbflow_process("run", str(tmp_path)).returncode == 0
    with open_store(tmp_path) as store:
        run = store.latest_run()
    env = run.environment
    assert env["python"] == platform.python_version() and env["nbflow"] == nbflow.__version__
    assert env["packages"]["nbflow"] == nbflow.__version__ and "duckdb" in env["packages"]
    assert set(env["sources"]) == {"load", "train"} and all(env["sources"].values())
    assert env["kernels"] == {"load": "python3", "train": "python3"}
    assert env["outputs"].endswith(f"_nbflow/runs/{run.run_id}")


def test_diff_names_parameters_sources_and_task_changes(tmp_path: Path) -> None:
    _pipeline(tmp_path)
    first = json.loads(nbflow_process("run", str(tmp_path), "--json", "-p", "rows=1").stdout)["run_id"]
    write_notebook(tmp_path, "train", 'upstream = ["load"]', "raise RuntimeError('worse')")
    second = json.loads(nbflow_process("run", str(tmp_path), "--json", "-p", "rows=2").stdout)["run_id"]
    proc = nbflow_process("diff", first, second, str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["runs"] == [first, second] and found["states"] == ["success", "failed"]
    assert found["params"]["changed"] == {"rows": [1, 2]}
    assert list(found["environment"]["sources"]["changed"]) == ["train"]
    assert found["environment"]["packages"] == {"added": {}, "removed": {}, "changed": {}}
    assert found["tasks"]["train"]["state"] == ["success", "failed"]
    changed_product = found["tasks"]["load"]["products"]["changed"]
    assert list(changed_product) == [str(tmp_path / "load.txt")] and all(
        v.startswith("sha256:") for v in changed_product[str(tmp_path / "load.txt")]
    )
    text = nbflow_process("diff", first, second, str(tmp_path)).stdout
    assert "parameter changed: rows 1 -> 2" in text and "task source changed: train" in text
    assert "success -> failed" in text and "product changed: load" in text
    missing = nbflow_process("diff", first, "no-such-run", str(tmp_path))
    assert missing.returncode == 2 and "no-such-run" in missing.stderr


def test_rerun_uses_the_runs_parameters_and_says_what_changed(tmp_path: Path) -> None:
    _pipeline(tmp_path)
    first = json.loads(nbflow_process("run", str(tmp_path), "--json", "-p", "rows=7").stdout)["run_id"]
    same = nbflow_process("rerun", first, str(tmp_path), "--json")
    assert same.returncode == 0 and "same sources, kernels, Python and packages" in same.stderr
    again = json.loads(same.stdout)
    assert again["rerun_of"] == first and again["params"] == {"rows": 7}
    assert set(again["tasks"][n]["state"] for n in again["tasks"]) == {"success"}, "every task runs again"
    write_notebook(tmp_path, "load", "upstream = None\nrows = 1", "print('rows!', rows)")
    changed = nbflow_process("rerun", first, str(tmp_path))
    assert changed.returncode == 0 and "task source changed: load" in changed.stderr


def test_environment_changes_name_each_package_python_and_kernel() -> None:
    from nbflow.engine.environment import environment_changes, is_empty
    from nbflow.views.text import changes_to_text

    before = {"python": "3.11.7", "packages": {"numpy": "1.26.0", "old": "1.0"}, "kernels": {"a": "python3"}}
    after = {"python": "3.12.1", "packages": {"numpy": "2.0.0", "new": "0.1"}, "kernels": {"a": "ir"}}
    changes = environment_changes(before, after)
    assert changes["python"] == ["3.11.7", "3.12.1"]
    assert changes["packages"] == {
        "added": {"new": "0.1"},
        "removed": {"old": "1.0"},
        "changed": {"numpy": ["1.26.0", "2.0.0"]},
    }
    assert "package changed: numpy 1.26.0 -> 2.0.0" in changes_to_text(changes)
    assert "task kernel changed: a python3 -> ir" in changes_to_text(changes)
    assert not is_empty(changes) and is_empty(environment_changes(before, before))
