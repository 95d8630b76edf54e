"""Finding the tasks of a pipeline folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nbflow.errors import DuplicateTaskError
from nbflow.kinds.discovery import discover
from tests.conftest import nbflow_process, write_notebook


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

    from nbflow.kinds import discovery
    from nbflow.kinds.discovery import discover
    from nbflow.paths import CACHE_FILE_NAME

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


def _aged(folder: Path) -> None:
    """Files changed a minute ago: old enough to be cached."""
    import os
    import time

    old = time.time() - 60
    for path in folder.rglob("*.ipynb"):
        os.utime(path, (old, old))


def test_the_cache_is_json_and_an_old_pickle_is_never_read(tmp_path: Path) -> None:
    import json

    from hostile_folders import markers_made, pickle_folder

    from nbflow.paths import CACHE_FILE_NAME, LEGACY_CACHE_FILE_NAME

    markers = tmp_path / "markers"
    markers.mkdir()
    folder = pickle_folder(tmp_path / "pipe", markers / "unpickled")
    _aged(folder)
    found = discover(folder)
    assert [s.name for s in found.specs] == ["load"] and markers_made(markers) == []
    cache = json.loads((folder / "_nbflow" / CACHE_FILE_NAME).read_text())
    assert cache["format"] == "nbflow-discovery" and set(cache["entries"]) == {"load.ipynb"}
    assert not (folder / "_nbflow" / LEGACY_CACHE_FILE_NAME).exists(), (
        "the old cache is removed when the new one is written"
    )
    assert discover(folder).specs == found.specs, "read back from the JSON cache"
    assert markers_made(markers) == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda c: b"not json {",
        lambda c: b"[1, 2]",
        lambda c: json.dumps({**c, "version": 1}).encode(),
        lambda c: json.dumps({**c, "format": "someone-else"}).encode(),
        lambda c: json.dumps({**c, "entries": {"a.ipynb": {**c["entries"]["a.ipynb"], "stamp": "x"}}}).encode(),
        lambda c: _forged(c, upstream=7),
        lambda c: _forged(c, upstream=["b"], kind="sql"),
        lambda c: _forged(c, defaults={"rows": 3}),
        lambda c: _forged(c, product={"x": 1}),
        lambda c: _forged(c, parameters_cell=True),
        lambda c: json.dumps({**c, "entries": []}).encode(),
        lambda c: b'{"format": "nbflow-discovery", "entries": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=[
        "not-json",
        "not-an-object",
        "older-version",
        "foreign",
        "bad-stamp",
        "upstream-not-a-list",
        "kind-of-another-file",
        "default-not-text",
        "product-not-paths",
        "cell-not-a-number",
        "entries-not-a-map",
        "nested-too-deep",
    ],
)
def test_a_damaged_or_foreign_cache_is_ignored_and_rebuilt(tmp_path: Path, make_notebook, damage) -> None:
    from nbflow.paths import CACHE_FILE_NAME

    make_notebook("a", "upstream = None\nrows = 3\nproduct = 'a.csv'")
    _aged(tmp_path)
    first = discover(tmp_path)
    path = tmp_path / "_nbflow" / CACHE_FILE_NAME
    path.write_bytes(damage(json.loads(path.read_text())))
    again = discover(tmp_path)
    assert again.specs == first.specs and again.problems == []
    assert again.specs[0].upstream == () and again.specs[0].params.defaults == {"rows": "3"}
    assert json.loads(path.read_text())["entries"]["a.ipynb"]["spec"]["upstream"] == [], "rebuilt"


def _forged(cache: dict, **spec) -> bytes:
    """The cache with the entry of a.ipynb (its stamp still right) saying something of another shape."""
    entry = cache["entries"]["a.ipynb"]
    return json.dumps({**cache, "entries": {"a.ipynb": {**entry, "spec": {**entry["spec"], **spec}}}}).encode()


def test_a_view_writes_no_cache(tmp_path: Path, make_notebook) -> None:
    make_notebook("a", "upstream = None")
    _aged(tmp_path)
    assert [s.name for s in discover(tmp_path, save_cache=False).specs] == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ipynb"]


def test_within_a_root_symlinks_leading_outside_are_problems_never_read(tmp_path: Path) -> None:
    from nbflow.errors import OutsideFolderError

    root, outside = tmp_path / "root", tmp_path / "outside"
    write_notebook(root / "pipe", "load", "upstream = None")
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.ipynb").write_text("not even JSON")  # read, it would be a different problem
    (outside / "sub" / "other.ipynb").write_text("not even JSON")
    (root / "pipe" / "secret.ipynb").symlink_to(outside / "secret.ipynb")
    (root / "pipe" / "sub").symlink_to(outside / "sub", target_is_directory=True)
    (root / "pipe" / "inside.ipynb").symlink_to(root / "pipe" / "load.ipynb")  # inside: fine
    found = discover(root / "pipe", within=root.resolve())
    assert [s.name for s in found.specs] == ["inside", "load"]
    assert all(isinstance(p, OutsideFolderError) for p in found.problems)
    assert sorted(p.path for p in found.problems) == ["secret.ipynb", "sub"]
    everywhere = discover(root / "pipe", save_cache=False)  # from a terminal, links are followed
    assert {p.path for p in everywhere.problems} == {"secret.ipynb", "sub/other.ipynb"}


def test_nbflow_deserializes_nothing_that_could_carry_code() -> None:
    """No pickle, marshal or shelve reads; YAML only with a safe loader; no eval or exec."""
    import re

    source = Path(__file__).resolve().parent.parent / "nbflow"
    unsafe = re.compile(
        r"\b(pickle|cPickle|dill|cloudpickle|marshal|shelve)\.(load|loads|Unpickler|open)\b"
        r"|\byaml\.(unsafe_load|full_load)\b|\byaml\.load\((?![^)]*Loader=_yaml_loader)"
        r"|(?<![\w.])(eval|exec)\("
    )
    found = [
        f"{path.relative_to(source)}:{n}: {line.strip()}"
        for path in source.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if unsafe.search(line)
    ]
    assert found == []


def test_a_file_name_that_is_not_text_is_named_and_refused(tmp_path: Path) -> None:
    import os

    write_notebook(tmp_path, "good", "upstream = None", "pass")
    bad = os.path.join(os.fsencode(tmp_path), b"caf\xe9.ipynb")  # Latin-1 bytes, not UTF-8
    with open(bad, "wb") as f:
        f.write((tmp_path / "good.ipynb").read_bytes())
    proc = nbflow_process("run", str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "caf\\xe9.ipynb is not a valid notebook: its path is not valid UTF-8 text; rename it" in proc.stderr
