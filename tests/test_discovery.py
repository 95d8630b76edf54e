"""Finding the tasks of a pipeline folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from nbflow.discovery import discover
from nbflow.errors import DuplicateTaskError
from tests.conftest import write_notebook


def test_names_are_relative_paths_and_own_folders_are_skipped(tmp_path) -> None:
    write_notebook(tmp_path, "load", "upstream = None")
    write_notebook(tmp_path / "etl", "clean", "upstream = ['load']")
    write_notebook(tmp_path / ".hidden", "secret")
    write_notebook(tmp_path / ".ipynb_checkpoints", "load-checkpoint")
    write_notebook(tmp_path / "etl" / ".ipynb_checkpoints", "clean-checkpoint")
    write_notebook(tmp_path / "_nbflow" / "runs" / "r1", "load")
    (tmp_path / "notes.txt").write_text("not a notebook")
    found = discover(tmp_path)
    assert [s.name for s in found.specs] == ["etl/clean", "load"]
    assert found.problems == []
    clean = found.specs[0]
    assert clean.relpath == "etl/clean.ipynb"
    assert clean.folder == tmp_path / "etl"


def test_names_that_differ_only_in_case_are_duplicates(tmp_path) -> None:
    write_notebook(tmp_path, "Clean", "upstream = None")
    write_notebook(tmp_path, "clean", "upstream = None")
    found = discover(tmp_path)
    assert len(found.specs) == 1
    [problem] = found.problems
    assert isinstance(problem, DuplicateTaskError)
    assert "Clean.ipynb" in str(problem) and "clean.ipynb" in str(problem)


def test_discovery_gathers_every_problem(tmp_path) -> None:
    from tests.conftest import notebook_path

    for name in ("invalid_json.ipynb", "upstream_not_a_list.ipynb"):
        shutil.copy(notebook_path(name), tmp_path / name)
    write_notebook(tmp_path, "ok", "upstream = None")
    found = discover(tmp_path)
    assert [s.name for s in found.specs] == ["ok"]
    assert sorted(p.path for p in found.problems) == ["invalid_json.ipynb", "upstream_not_a_list.ipynb"]


def test_symlink_loops_and_broken_links_are_walked_safely(tmp_path) -> None:
    write_notebook(tmp_path / "etl", "clean", "upstream = None")
    (tmp_path / "etl" / "loop").symlink_to(tmp_path / "etl")
    (tmp_path / "self").symlink_to("self")
    (tmp_path / "dangling.ipynb").symlink_to(tmp_path / "missing.ipynb")
    found = discover(tmp_path)
    assert [s.name for s in found.specs] == ["etl/clean"]
    assert found.problems == []


def test_unchanged_files_are_not_read_again_and_a_change_is_seen(tmp_path: Path, make_notebook, monkeypatch) -> None:
    import os
    import time

    from nbflow import discovery
    from nbflow.discovery import CACHE_FILE_NAME, discover

    reads: list[str] = []
    real_read = discovery.read_task_spec

    def counting_read(path, name, relpath):
        reads.append(name)
        return real_read(path, name, relpath)

    monkeypatch.setattr(discovery, "read_task_spec", counting_read)

    a = make_notebook("a", "upstream = None", "x = 1")
    make_notebook("b", "upstream = ['a']", "y = 2")
    old = time.time() - 60
    for path in tmp_path.glob("*.ipynb"):
        os.utime(path, (old, old))  # files this old are safe to cache
    first = discover(tmp_path)
    assert (tmp_path / "_nbflow" / CACHE_FILE_NAME).exists()
    assert discover(tmp_path).specs == first.specs
    assert reads == ["a", "b"], "the second discovery read nothing"
    a.write_text("not json any more, same file")  # a change the second discovery must see
    b = tmp_path / "b.ipynb"
    b_bytes = b.read_bytes()
    b.write_bytes(b_bytes)  # rewritten with the same bytes: re-read, same spec
    second = discover(tmp_path)
    assert reads[2:] == ["a", "b"]
    assert [s.name for s in first.specs] == ["a", "b"]
    assert [s.name for s in second.specs] == ["b"]
    assert "a.ipynb" in str(second.problems[0])
    assert second.specs[0].upstream == ("a",)
    for path in tmp_path.glob("*.ipynb"):
        os.utime(path, (old, old))
    (tmp_path / "_nbflow" / CACHE_FILE_NAME).write_bytes(b"damaged")  # a broken cache is ignored
    assert [s.name for s in discover(tmp_path).specs] == ["b"]
