"""``GET nbflow/pipelines``: whether a folder is a pipeline and the pipelines below it, found by looking only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import write_notebook

from nbflow.errors import PathOutsideRootError
from nbflow.server.pipelines import find_pipelines
from nbflow.server.service import NbflowService


def test_the_pipelines_below_a_folder_that_is_not_one(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_notebook(root, "scratch", None, "print(1)")  # no parameters cell: not a task
    write_notebook(root / "sales", "load", "upstream = None", "print(1)")
    (root / "settings_only").mkdir()
    (root / "settings_only" / "nbflow.toml").write_text("")
    write_notebook(root / "deep" / "er" / "pipe", "a", "upstream = None", "print(1)")
    write_notebook(root / "sales" / "_nbflow" / "debug", "copy", "upstream = None", "print(1)")
    write_notebook(root / ".hidden", "h", "upstream = None", "print(1)")
    (root / "docs").mkdir()
    found = find_pipelines(NbflowService(root), "")
    assert found["pipeline"] is False
    assert [p["path"] for p in found["pipelines"]] == ["deep/er/pipe", "sales", "settings_only"]
    assert find_pipelines(NbflowService(root), "sales") == {"path": "sales", "pipeline": True, "pipelines": []}


def test_nothing_outside_the_root_is_looked_at(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    write_notebook(outside / "pipe", "a", "upstream = None", "print(1)")
    root.mkdir()
    os.symlink(outside / "pipe", root / "linked")  # a folder leading out: not entered
    (root / "mixed").mkdir()
    os.symlink(outside / "pipe" / "a.ipynb", root / "mixed" / "a.ipynb")  # a notebook leading out: not read
    service = NbflowService(root)
    assert find_pipelines(service, "")["pipelines"] == []
    assert find_pipelines(service, "mixed")["pipeline"] is False
    with pytest.raises(PathOutsideRootError):
        find_pipelines(service, "../outside")
    with pytest.raises(PathOutsideRootError):
        find_pipelines(service, "linked")
