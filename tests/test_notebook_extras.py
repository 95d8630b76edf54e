"""Cells skipped in pipeline runs (tag ``nbflow-skip``), and executed notebooks that are trusted."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.sign import NotebookNotary

import nbflow
from nbflow.kinds.notebook.client import SKIP_TAG
from tests.conftest import write_notebook

pytestmark = pytest.mark.slow  # each test runs a notebook in a kernel


def _executed(folder: Path, task: str) -> nbformat.NotebookNode:
    (path,) = (folder / "_nbflow" / "runs").glob(f"*/{task}/attempt-1.ipynb")
    return nbformat.read(path, as_version=4)


def test_a_cell_tagged_nbflow_skip_is_not_run_and_says_so(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path,
        "explore",
        "upstream = None",
        "open('before.txt', 'w').write('ran')",
        "open('skipped.txt', 'w').write('ran'); raise SystemExit('a skipped cell must not run')",
        "open('after.txt', 'w').write('ran')",
    )
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].metadata["tags"] = [SKIP_TAG]
    nbformat.write(nb, path)

    result = nbflow.Pipeline.from_dir(tmp_path).run()

    assert result.states == {"explore": "success"}
    assert (tmp_path / "before.txt").exists() and (tmp_path / "after.txt").exists()
    assert not (tmp_path / "skipped.txt").exists()
    (cell,) = [c for c in _executed(tmp_path, "explore").cells if SKIP_TAG in c.metadata.get("tags", [])]
    assert cell.metadata["nbflow"]["skipped"] is True
    assert cell.execution_count is None
    assert [o["text"] for o in cell.outputs] == [f"[nbflow: not run in pipeline runs (tag {SKIP_TAG})]\n"]


def test_an_executed_notebook_is_trusted_so_its_rich_outputs_render(tmp_path: Path) -> None:
    write_notebook(
        tmp_path,
        "chart",
        "upstream = None",
        "from IPython.display import HTML, display\ndisplay(HTML('<b>bold</b><script>1</script>'))",
    )
    assert nbflow.Pipeline.from_dir(tmp_path).run().states == {"chart": "success"}
    executed = _executed(tmp_path, "chart")
    assert any("text/html" in o.get("data", {}) for c in executed.cells for o in c.get("outputs", []))
    assert NotebookNotary().check_signature(executed)
    # a notebook changed afterwards is no longer trusted: the signature covers its content
    executed.cells[-1].outputs[0]["data"]["text/html"] = "<i>changed</i>"
    assert not NotebookNotary().check_signature(executed)


def test_an_executed_notebook_runs_again_on_its_own(tmp_path: Path, monkeypatch) -> None:
    """Its injected cell holds literal values (upstream, product, parameters) and reads a secret
    from the environment, so it runs top to bottom without nbflow, in the notebook's folder."""
    from nbclient import NotebookClient

    (tmp_path / "nbflow.toml").write_text('[secrets]\ntoken = "EXTRAS_TOKEN"\n')
    monkeypatch.setenv("EXTRAS_TOKEN", "tok-123456")
    write_notebook(tmp_path, "make", "upstream = None\nproduct = 'out/data.txt'", "open(product, 'w').write('42')")
    write_notebook(
        tmp_path,
        "use",
        "upstream = ['make']\nproduct = 'out/use.txt'\nscale = 1\ntoken = ''",
        "value = int(open(upstream['make']).read()) * scale\nassert token == 'tok-123456'\n"
        "open(product, 'w').write(str(value))",
    )
    result = nbflow.Pipeline.from_dir(tmp_path).run(params={"scale": 3})
    assert result.states == {"make": "success", "use": "success"}
    (tmp_path / "out" / "use.txt").unlink()

    executed = _executed(tmp_path, "use")
    NotebookClient(executed, resources={"metadata": {"path": str(tmp_path)}}, kernel_name="python3").execute()

    assert (tmp_path / "out" / "use.txt").read_text() == "126"  # 42 x the override 3, from literals
