"""The dashboard in a real JupyterLab, in the machine's Chromium: open it, click Run, watch it go green."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from labserver import ARTIFACTS, REPO, browser_page, jupyter_lab

from nbflow import states

playwright = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")

ALL_NODES_IN = """([state, count]) => {
  const nodes = [...document.querySelectorAll('.nbflow-graph g.node')];
  return nodes.length === count && nodes.every(g => g.dataset.state === state);
}"""
NODE_FILLS = """() => [...document.querySelectorAll('.nbflow-graph g.node')].map(g => [
  g.dataset.task, g.querySelector('path, polygon, rect').getAttribute('fill')])"""


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    root = tmp_path / "example"
    shutil.copytree(REPO / "notebooks", root, ignore=shutil.ignore_patterns("_nbflow", "output", ".ipynb_checkpoints"))
    return root


def test_the_dashboard_runs_the_example_pipeline_in_jupyterlab(example_copy: Path, tmp_path: Path) -> None:
    from nbflow.pipeline import Pipeline

    tasks = len(Pipeline.from_dir(example_copy).specs)
    assert tasks == 9 and (example_copy / "dashboard.ipynb").exists(), "the dashboard notebook is not a task"
    with (
        jupyter_lab(example_copy, tmp_path / "jupyter") as lab,
        browser_page(lab.page_url("dashboard.ipynb"), "dashboard-failure.png", (1400, 1100)) as page,
    ):
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
        _run_all_cells(page)
        assert page.locator(".nbflow-graph g.node").count() == tasks
        page.screenshot(path=str(ARTIFACTS / "dashboard-before-run.png"))

        page.locator(".jupyter-widgets.widget-button", has_text="Run").first.click()
        page.wait_for_function(ALL_NODES_IN, arg=["success", tasks], timeout=180_000)
        fills = dict(page.evaluate(NODE_FILLS))
        assert fills == {name: states.COLOURS["success"] for name in fills} and len(fills) == tasks
        page.wait_for_function(
            "() => document.body.innerText.includes('success in')", timeout=30_000
        )  # the summary line, once the run is recorded as finished

        page.locator(".nbflow-graph g.node", has_text="train").click()  # a task, from the graph
        page.wait_for_function("() => document.body.innerText.includes('final training log-loss')")
        link = page.locator("a.nbflow-notebook-link")
        href = link.get_attribute("href")
        assert href.startswith("/lab/tree/_nbflow/runs/") and href.endswith("/train/attempt-1.ipynb")
        assert (example_copy / href.removeprefix("/lab/tree/")).is_file()
        page.locator(".nbflow-graph").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)


def _run_all_cells(page, tries: int = 3) -> None:
    """Run > Run All Cells, until the dashboard shows: a request sent while the new kernel
    is still connecting can be dropped by the front end, and is then simply made again."""
    for attempt in range(tries):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells").first.click()
        try:
            page.wait_for_selector(".nbflow-graph g.node", timeout=30_000 * (attempt + 1))
            return
        except playwright.Error:
            if attempt == tries - 1:
                raise
