"""Jupytext text notebooks (``.py`` percent, ``.md`` Markdown and MyST) are tasks like ``.ipynb``
files when they carry a Jupytext header; other ``.py`` and ``.md`` files are not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import nbflow_process, write_notebook

from nbflow.errors import InvalidDeclarationError, MalformedNotebookError
from nbflow.kinds import file_nouns
from nbflow.kinds.discovery import discover
from nbflow.project.edit import set_upstream_in_text, write_upstream
from nbflow.project.notebook import read_notebook_spec
from nbflow.project.textnotebook import jupytext_header, read_text_notebook_spec

pytest_plugins = ["pytest_jupyter.jupyter_server"]

PY_HEADER = """\
# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
"""

CLEAN_PY = (
    PY_HEADER
    + """
# %% [markdown]
# Clean the loaded rows. A decoy line, in Markdown:
# upstream = ["load"]

# %% tags=["parameters"]
upstream = ["load"]  # where the rows come from
product = {"data": "clean.txt"}
factor = 2

# %%
n = int(open(upstream["load"]["data"]).read())
open(product["data"], "w").write(str(n * factor))
"""
)

REPORT_MD = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Report

```{code-cell} ipython3
:tags: [parameters]

upstream = ["clean"]
product = "report.txt"
title = "rows"
```

```{code-cell} ipython3
open(product, "w").write(title + " " + open(upstream["clean"]["data"]).read())
```
"""

PLAIN_MD = """\
---
jupyter:
  kernelspec:
    display_name: Python 3
    language: python
    name: python3
---

```python tags=["parameters"]
upstream = None
limit = 5
```

```python
print(limit)
```
"""

HELPER_PY = "def double(x):\n    return 2 * x\n"
README_MD = "---\ntitle: My pipeline\n---\n\n# My pipeline\n\nNotebooks with upstream = [...] lines.\n"


def _pipeline(folder: Path) -> None:
    """load.ipynb -> clean.py (percent) -> report.md (MyST), beside a helper module and a README."""
    write_notebook(
        folder, "load", 'upstream = None\nproduct = {"data": "load.txt"}', 'open(product["data"], "w").write("3")'
    )
    (folder / "clean.py").write_text(CLEAN_PY, encoding="utf-8")
    (folder / "report.md").write_text(REPORT_MD, encoding="utf-8")
    (folder / "helpers.py").write_text(HELPER_PY, encoding="utf-8")
    (folder / "README.md").write_text(README_MD, encoding="utf-8")


# -- the header --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "suffix", "found"),
    [
        (CLEAN_PY, ".py", True),
        (REPORT_MD, ".md", True),
        (PLAIN_MD, ".md", True),
        ("#!/usr/bin/env python\n# -*- coding: utf-8 -*-\n" + PY_HEADER + "\n# %%\nx = 1\n", ".py", True),
        ("<!--\n" + PLAIN_MD.replace("---\n\n", "---\n-->\n\n", 1), ".md", True),
        (PY_HEADER.replace("# ", "", 1), ".py", False),  # the fence not commented: no header
        (HELPER_PY, ".py", False),
        ('"""A module."""\n# ---\n# jupyter:\n# ---\n', ".py", False),  # not at the top
        ("# ---\n# title: notes\n# ---\n", ".py", False),  # a header without Jupytext's keys
        (README_MD, ".md", False),
        ("", ".md", False),
    ],
)
def test_the_jupytext_header_is_recognised_without_jupytext(text: str, suffix: str, found: bool) -> None:
    assert (jupytext_header(text, suffix) is not None) is found


# -- discovery ---------------------------------------------------------------------------------


def test_discovery_finds_text_notebooks_and_skips_other_py_and_md_files(tmp_path: Path) -> None:
    _pipeline(tmp_path)
    # nbflow_tasks.py is the code kinds' file, even with a header; a README and a module are no tasks
    (tmp_path / "nbflow_tasks.py").write_text(PY_HEADER + "\n# %%\n", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Docs\n", encoding="utf-8")
    # a module named like a notebook is not a second task of that name
    (tmp_path / "load.py").write_text(HELPER_PY, encoding="utf-8")
    found = discover(tmp_path, cache=False)
    assert found.problems == []
    assert {s.name: (s.relpath, s.kind, s.upstream) for s in found.specs} == {
        "load": ("load.ipynb", "notebook", ()),
        "clean": ("clean.py", "notebook", ("load",)),
        "report": ("report.md", "notebook", ("clean",)),
    }
    report = next(s for s in found.specs if s.name == "report")
    assert report.product == "report.txt" and report.params.defaults == {"title": "'rows'"}
    assert report.kernel_name == "python3" and report.language == "python"


def test_a_text_notebook_paired_with_its_ipynb_is_that_notebook(tmp_path: Path) -> None:
    write_notebook(tmp_path, "load", "upstream = None", "x = 1")
    paired = PY_HEADER.replace("#   jupytext:\n", "#   jupytext:\n#     formats: ipynb,py:percent\n")
    (tmp_path / "load.py").write_text(paired + '\n# %% tags=["parameters"]\nupstream = None\n', encoding="utf-8")
    found = discover(tmp_path, cache=False)
    assert found.problems == [] and [s.relpath for s in found.specs] == ["load.ipynb"]
    (tmp_path / "load.ipynb").unlink()  # the text half alone is the notebook
    assert [s.relpath for s in discover(tmp_path, cache=False).specs] == ["load.py"]


def test_a_text_notebook_reads_as_its_ipynb_does(tmp_path: Path) -> None:
    import jupytext

    (tmp_path / "clean.py").write_text(CLEAN_PY, encoding="utf-8")
    jupytext.write(jupytext.read(tmp_path / "clean.py"), tmp_path / "copy.ipynb")
    text = read_text_notebook_spec(tmp_path / "clean.py", "clean", "clean.py")
    ipynb = read_notebook_spec(tmp_path / "copy.ipynb", "clean", "copy.ipynb")
    assert text.params == ipynb.params and text.parameters_cell == ipynb.parameters_cell == 1
    assert (text.kernel_name, text.language, text.source_hash) == (
        ipynb.kernel_name,
        ipynb.language,
        ipynb.source_hash,
    )
    assert text.params.upstream == ("load",) and text.params.defaults == {"factor": "2"}


@pytest.mark.parametrize(
    ("name", "text", "error", "fragment"),
    [
        ("bad_yaml.py", "# ---\n# jupyter:\n#   kernelspec: [oops\n# ---\n", MalformedNotebookError, "jupytext"),
        (
            "bad_cell.md",
            PLAIN_MD.replace("upstream = None", "upstream = ["),
            MalformedNotebookError,
            "is not valid Python",
        ),
        ("bad_upstream.py", CLEAN_PY.replace('["load"]  #', "3  #"), InvalidDeclarationError, "'upstream'"),
        ("latin1.py", PY_HEADER + "\n# %%\nx = 'caf\xe9'\n", MalformedNotebookError, "UTF-8"),
    ],
)
def test_a_malformed_text_notebook_is_a_problem_naming_its_file(
    tmp_path: Path, name: str, text: str, error: type, fragment: str
) -> None:
    encoding = "latin-1" if name.startswith("latin1") else "utf-8"
    (tmp_path / name).write_text(text, encoding=encoding)
    [problem] = discover(tmp_path, cache=False).problems
    assert isinstance(problem, error) and problem.path == name
    assert str(problem).startswith(name) and fragment in str(problem)


def test_the_discovery_cache_keeps_text_notebooks_and_sees_their_changes(tmp_path: Path) -> None:
    _pipeline(tmp_path)
    for path in tmp_path.iterdir():
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # old enough to be cached
    first = discover(tmp_path)
    entries = json.loads((tmp_path / "_nbflow" / "discovery.json").read_text())["entries"]
    assert set(entries) == {"load.ipynb", "clean.py", "report.md"}
    assert entries["clean.py"]["spec"]["upstream"] == ["load"]
    again = discover(tmp_path)
    assert [(s.name, s.source_hash) for s in again.specs] == [(s.name, s.source_hash) for s in first.specs]
    (tmp_path / "clean.py").write_text(CLEAN_PY.replace("factor = 2", "factor = 3"), encoding="utf-8")
    changed = {s.name: s for s in discover(tmp_path).specs}
    assert changed["clean"].params.defaults == {"factor": "3"}
    assert changed["clean"].source_hash != next(s.source_hash for s in first.specs if s.name == "clean")


def test_the_message_of_an_empty_folder_names_the_text_notebooks() -> None:
    assert file_nouns()[0] == "notebooks (*.ipynb; *.py, *.md with a Jupytext header)"


# -- editing the upstream line -----------------------------------------------------------------


def _diff(before: str, after: str) -> list[tuple[str, str]]:
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(a) == len(b), "a line was added or removed"
    return [(x, y) for x, y in zip(a, b, strict=True) if x != y]


def test_an_upstream_edit_changes_only_that_line_of_a_percent_notebook() -> None:
    after = set_upstream_in_text(CLEAN_PY, ".py", ["load", "extra"], "clean.py")
    assert _diff(CLEAN_PY, after) == [
        (
            'upstream = ["load"]  # where the rows come from\n',
            'upstream = ["load", "extra"]  # where the rows come from\n',
        )
    ]


def test_an_upstream_edit_changes_only_that_line_of_a_myst_notebook_with_crlf_lines() -> None:
    before = REPORT_MD.replace("\n", "\r\n")
    after = set_upstream_in_text(before, ".md", [], "report.md")
    assert _diff(before, after) == [('upstream = ["clean"]\r\n', "upstream = None\r\n")]


def test_an_upstream_line_is_added_first_in_the_parameters_cell() -> None:
    before = PLAIN_MD.replace("upstream = None\n", "")
    after = set_upstream_in_text(before, ".md", ["load"], "plain.md")
    assert after == before.replace('tags=["parameters"]\n', 'tags=["parameters"]\nupstream = ["load"]\n')


def test_a_text_notebook_without_a_parameters_cell_is_not_edited() -> None:
    with pytest.raises(InvalidDeclarationError, match="clean.py: it has no parameters cell"):
        set_upstream_in_text(PY_HEADER + "\n# %%\nx = 1\n", ".py", ["load"], "clean.py")


def test_write_upstream_keeps_a_text_notebook_text(tmp_path: Path) -> None:
    path = tmp_path / "clean.py"
    path.write_text(CLEAN_PY, encoding="utf-8")
    path.chmod(0o640)
    write_upstream(path, [], "clean.py")
    after = path.read_text(encoding="utf-8")
    assert _diff(CLEAN_PY, after) == [
        ('upstream = ["load"]  # where the rows come from\n', "upstream = None  # where the rows come from\n")
    ]
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.py"], "no temporary file, no .ipynb"


# -- without jupytext, and the hot paths (in a process of their own) ----------------------------

WITHOUT_JUPYTEXT = """
import json, sys
sys.modules["jupytext"] = None  # importing it fails, as when it is not installed
from nbflow.cli import main
sys.argv = ["nbflow", *sys.argv[1:]]
try:
    main()
except SystemExit as e:
    code = e.code
print(json.dumps(code), file=sys.stderr)
"""

LOADED = """
import json, sys
from nbflow.cli import main
sys.argv = ["nbflow", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted({m.split('.')[0] for m, mod in sys.modules.items() if mod is not None})), file=sys.stderr)
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["dag", "run"])
def test_without_jupytext_a_text_notebook_makes_the_pipeline_invalid(tmp_path: Path, command: str) -> None:
    _pipeline(tmp_path)
    proc = _python(WITHOUT_JUPYTEXT, command, str(tmp_path))
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == 2, proc.stderr
    assert (
        "clean.py is a Jupytext text notebook, and reading it needs jupytext, which is not installed: "
        'pip install "nbflow[jupytext]"' in proc.stderr
    )
    assert "report.md is a Jupytext text notebook" in proc.stderr
    assert not (tmp_path / "load.txt").exists(), "nothing ran"


@pytest.mark.slow
def test_status_and_dag_never_import_jupytext_without_text_notebooks(tmp_path: Path) -> None:
    write_notebook(tmp_path, "load", "upstream = None", "x = 1")
    (tmp_path / "helpers.py").write_text(HELPER_PY, encoding="utf-8")
    (tmp_path / "README.md").write_text(README_MD, encoding="utf-8")
    for command in ("dag", "status"):
        proc = _python(LOADED, command, str(tmp_path))
        loaded = set(json.loads(proc.stderr.strip().splitlines()[-1]))
        assert "nbflow" in loaded and "jupytext" not in loaded, command
    # nor with text notebooks read before: their specs come from the discovery cache
    _pipeline(tmp_path)
    for path in tmp_path.iterdir():
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert len(discover(tmp_path).specs) == 3  # as a run's discovery, it writes the cache
    for command in ("dag", "status"):
        proc = _python(LOADED, command, str(tmp_path))
        loaded = set(json.loads(proc.stderr.strip().splitlines()[-1]))
        assert "jupytext" not in loaded, command
    dag = _python(LOADED, "dag", str(tmp_path))
    assert "report  <- clean" in dag.stdout, "the text notebooks are there, from the cache"


# -- a real run --------------------------------------------------------------------------------


def _executed(folder: Path, task: str) -> nbformat.NotebookNode:
    [path] = (folder / "_nbflow" / "runs").glob(f"*/{task}/attempt-1.ipynb")
    return nbformat.read(path, as_version=4)


@pytest.mark.slow
def test_a_pipeline_of_ipynb_percent_and_myst_notebooks_runs(tmp_path: Path) -> None:
    _pipeline(tmp_path)
    sources = {name: (tmp_path / name).read_bytes() for name in ("clean.py", "report.md", "helpers.py", "README.md")}
    proc = nbflow_process("run", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert {t: v["state"] for t, v in json.loads(proc.stdout)["tasks"].items()} == {
        "load": "success",
        "clean": "success",
        "report": "success",
    }
    assert (tmp_path / "clean.txt").read_text() == "6"
    assert (tmp_path / "report.txt").read_text() == "rows 6"
    assert {name: (tmp_path / name).read_bytes() for name in sources} == sources, "the sources are not written"
    assert {p.name for p in tmp_path.iterdir()} == {
        "_nbflow",
        "load.ipynb",
        "load.txt",
        "clean.txt",
        "report.txt",
        *sources,
    }
    for task in ("clean", "report"):
        nb = _executed(tmp_path, task)
        [injected] = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert str(tmp_path / ("clean.txt" if task == "report" else "load.txt")) in injected.source
        assert nb.metadata.kernelspec.name == "python3" and "jupytext" not in nb.metadata
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)

    # nothing changed: nothing runs; the .py changed: it runs again, and what depends on it
    plan = json.loads(nbflow_process("run", str(tmp_path), "--dry-run", "--json").stdout)
    assert {t: p["run"] for t, p in plan.items()} == {"load": False, "clean": False, "report": False}
    (tmp_path / "clean.py").write_text(CLEAN_PY.replace("n * factor", "n * factor + 1"), encoding="utf-8")
    plan = json.loads(nbflow_process("run", str(tmp_path), "--dry-run", "--json").stdout)
    assert plan["clean"] == {"run": True, "reason": "its code changed"}
    assert plan["load"]["run"] is False and plan["report"]["run"] is True
    assert nbflow_process("run", str(tmp_path)).returncode == 0
    assert (tmp_path / "report.txt").read_text() == "rows 7"


# -- the panel's upstream edit, through a real Jupyter server ----------------------------------


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"nbflow": True}}}


@pytest.mark.slow
async def test_the_panel_edits_the_upstream_line_of_a_text_notebook(jp_fetch, jp_root_dir: Path) -> None:
    folder = jp_root_dir / "pipe"
    folder.mkdir()
    _pipeline(folder)
    write_notebook(folder, "extra", "upstream = None", "pass")
    body = {"path": "pipe", "task": "clean", "add": "extra"}
    response = await jp_fetch("nbflow", "upstream", method="POST", body=json.dumps(body))
    dag = json.loads(response.body)
    assert response.code == 200
    assert {t["name"]: t["upstream"] for t in dag["tasks"]}["clean"] == ["load", "extra"]
    after = (folder / "clean.py").read_text(encoding="utf-8")
    assert _diff(CLEAN_PY, after) == [
        (
            'upstream = ["load"]  # where the rows come from\n',
            'upstream = ["load", "extra"]  # where the rows come from\n',
        )
    ]
    assert not (folder / "clean.ipynb").exists()
    body = {"path": "pipe", "task": "clean", "remove": "extra"}
    response = await jp_fetch("nbflow", "upstream", method="POST", body=json.dumps(body))
    assert response.code == 200 and (folder / "clean.py").read_text(encoding="utf-8") == CLEAN_PY
