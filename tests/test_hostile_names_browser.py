"""Markup, entities and escapes as names, in Chromium: the dashboard in a JupyterLab notebook, the
Pipeline panel, and the ``nbflow report`` page. Nothing runs, every task is coloured, a click selects.

The pipeline (tests/hostile.py) sits in a folder named like an ``<img onerror>``; its tasks are
named with markup, ``R&nbsp;D``, ``e&lt;x``, quotes and backslashes; one fails with markup as its
error, and the run shown has markup as its id. Every payload calls ``pwned()``.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
import pytest
from conftest import nbflow_process, write_notebook
from hostile import ERROR, FOLDER, LT_TASK, NBSP_TASK, RUN_ID, STATES, TASKS, make_pipeline, plant_run
from labserver import ARTIFACTS, browser_page, jupyter_lab
from test_browser import _run_all_cells

from nbflow import states

playwright = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")

DASHBOARD = ".nbflow-graph"
PANEL = "#nbflow-pipeline-panel"
PAINTED = """([scope, expected]) => {
  const nodes = [...document.querySelectorAll(scope + ' g.node')];
  const shown = Object.fromEntries(nodes.map(g => [g.dataset.task,
    [g.dataset.state, g.querySelector('path, polygon, rect').getAttribute('fill')]]));
  return nodes.length === Object.keys(expected).length && JSON.stringify(shown, Object.keys(expected).sort())
    === JSON.stringify(expected, Object.keys(expected).sort());
}"""
OUTLINED = """([scope, name]) => {
  const g = [...document.querySelectorAll(scope + ' g.node')].find(g => g.dataset.task === name);
  return !!g && g.querySelector('path, polygon, rect').getAttribute('stroke-width') === '3';
}"""
EXPECTED = {name: [state, states.COLOURS[state]] for name, state in STATES.items()}


def _node(page: Any, scope: str, name: str) -> Any:
    """The graph node of ``name`` (a CSS string: JSON's escapes are CSS's for these names)."""
    return page.locator(f"{scope} g.node[data-task={json.dumps(name, ensure_ascii=False)}]")


def _watch(page: Any, fired: list[str]) -> None:
    """Record any call of ``pwned``, any dialog the page opens, and any error of a payload calling ``pwned``."""
    page.expose_function("pwned", lambda where: fired.append(f"pwned({where})"))
    page.on("dialog", lambda d: (fired.append(f"dialog: {d.type} {d.message}"), d.dismiss()))
    page.on("pageerror", lambda e: fired.append(f"page error: {e}") if "pwned" in str(e) else None)


def _until(page: Any, fired: list[str], condition: str, arg: Any, timeout: float = 90_000) -> None:
    """Wait for a condition on the page; if it never holds, say so with what the payloads did."""
    try:
        page.wait_for_function(condition, arg=arg, timeout=timeout)
    except playwright.TimeoutError:
        raise AssertionError(f"not seen: {condition} {arg!r}; payloads fired: {fired}") from None


def _shows_text(page: Any, fired: list[str], selector: str, text: str) -> None:
    """Wait until an element of ``selector`` has ``text`` in its text (markup would not be text)."""
    has = "([sel, text]) => [...document.querySelectorAll(sel)].some(e => e.textContent.includes(text))"
    _until(page, fired, has, [selector, text])


def test_hostile_names_are_text_in_the_dashboard_the_panel_and_the_report(tmp_path: Path) -> None:
    lab_root = tmp_path / "lab"
    root = make_pipeline(lab_root)
    dashboard = write_notebook(root, "dashboard", None, "import nbflow\nnbflow.show('.')")
    nb = nbformat.read(dashboard, as_version=4)
    nb.metadata["nbflow"] = {"task": False}
    nbformat.write(nb, dashboard)
    ran = nbflow_process("run", str(root), "--no-progress")
    assert ran.returncode == 1, ran.stdout + ran.stderr  # the task with markup as its error fails
    plant_run(root)
    report = tmp_path / "report.html"
    made = nbflow_process("report", str(root), "-o", str(report))
    assert made.returncode == 0, made.stderr

    fired: list[str] = []
    url_path = urllib.parse.quote(f"{FOLDER}/dashboard.ipynb")
    with (
        jupyter_lab(lab_root, tmp_path / "jupyter") as lab,
        browser_page(lab.page_url(url_path), "hostile-names-failure.png", (1500, 1100)) as page,
    ):
        _watch(page, fired)

        # the dashboard, in the notebook beside the pipeline (labserver starts its kernel without asking)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
        _run_all_cells(page)
        _until(page, fired, PAINTED, [DASHBOARD, EXPECTED])
        _shows_text(page, fired, ".widget-html", f"{root}")  # the folder, as text
        _shows_text(page, fired, ".widget-html", f"Run {RUN_ID}: failed")
        _node(page, DASHBOARD, NBSP_TASK).click()
        _until(page, fired, OUTLINED, [DASHBOARD, NBSP_TASK])
        _shows_text(page, fired, ".widget-html b", NBSP_TASK)
        assert page.eval_on_selector(".widget-dropdown select", "s => s.value") == NBSP_TASK
        _node(page, DASHBOARD, LT_TASK).click()
        _shows_text(page, fired, ".widget-html", f"ValueError: {ERROR}")
        page.locator(DASHBOARD).scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "hostile-names-dashboard.png"), full_page=True)

        # the Pipeline panel, on the folder of the open notebook
        page.click(".jp-SideBar [data-id='nbflow-pipeline-panel']")
        _until(page, fired, PAINTED, [PANEL, EXPECTED])
        assert page.inner_text(f"{PANEL} .nbflow-title") == f"Pipeline: {FOLDER}"
        assert page.inner_text(f"{PANEL} .nbflow-summary").startswith(f"Run {RUN_ID}: failed")
        _node(page, PANEL, NBSP_TASK).click()
        _until(page, fired, OUTLINED, [PANEL, NBSP_TASK])
        assert page.inner_text(f"{PANEL} .nbflow-task-name") == NBSP_TASK
        _node(page, PANEL, LT_TASK).click()
        _shows_text(page, fired, f"{PANEL} .nbflow-error", f"ValueError: {ERROR}")
        page.click(f"{PANEL} .nbflow-show-log")
        _shows_text(page, fired, f"{PANEL} .nbflow-log", ERROR)  # the traceback, as text
        page.screenshot(path=str(ARTIFACTS / "hostile-names-panel.png"))
        answer = page.request.get(f"{lab.url}/nbflow/dag?path={urllib.parse.quote(FOLDER)}&token={lab.token}")
        assert answer.ok and answer.headers["content-type"].startswith("application/json")
        assert answer.headers.get("x-content-type-options") == "nosniff"

        # the report, a file of its own, in a page of its own
        page = page.context.browser.new_page()
        _watch(page, fired)
        page.goto(report.as_uri())
        _until(page, fired, PAINTED, [".graph", EXPECTED])
        headings = page.eval_on_selector_all(
            "section.task", "ss => ss.map(s => [s.dataset.task, s.querySelector('h3').textContent])"
        )
        assert sorted(headings) == sorted([name, name] for name in TASKS)
        assert page.title() == f"nbflow run {RUN_ID}: failed"
        assert f"error: ValueError: {ERROR}" in page.inner_text(f"section[data-task={json.dumps(LT_TASK)}]")
        links = page.eval_on_selector_all("section.task a", "as => as.map(a => a.href)")
        assert len(links) == 5, "every task that ran links its executed notebook"
        for link in links:  # '#', '%', '?', quotes and backslashes are part of the path
            assert Path(urllib.request.url2pathname(urllib.parse.urlsplit(link).path)).is_file(), link
        page.screenshot(path=str(ARTIFACTS / "hostile-names-report.png"), full_page=True)

        # every payload had its chance: the images' loads have failed by now
        page.wait_for_function("() => document.readyState === 'complete'")
        assert fired == []
