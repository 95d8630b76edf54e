"""The JupyterLab pipeline panel: its TypeScript tests, its installation, and the panel in a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import pytest
from labserver import ARTIFACTS, REPO, browser_page, jupyter_lab

import nbflow
from nbflow import states

playwright = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
EXTENSION = REPO / "extension"
PANEL = "#nbflow-pipeline-panel"


def test_the_typescript_model_tests_pass() -> None:
    proc = subprocess.run(["npm", "test", "--silent"], cwd=EXTENSION, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"# pass [1-9]", proc.stdout) and "# fail 0" in proc.stdout


def test_front_end_and_server_versions_agree() -> None:
    package = json.loads((EXTENSION / "package.json").read_text())
    tokens = (EXTENSION / "src" / "tokens.ts").read_text()
    assert package["version"] == nbflow.__version__
    assert "export const VERSION: string = packageJson.version;" in tokens, "the frontend reads package.json's"


def test_both_extensions_are_installed_and_enabled() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    lab = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True, env=env
    )
    server = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"], capture_output=True, text=True, env=env
    )
    assert re.search(r"nbflow v\S+ .*enabled.*OK", lab.stdout + lab.stderr)
    assert re.search(r"nbflow .*enabled", server.stdout + server.stderr)
    assert (REPO / "nbflow" / "labextension" / "package.json").is_file(), "the prebuilt extension"


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    root = tmp_path / "example"
    shutil.copytree(REPO / "notebooks", root, ignore=shutil.ignore_patterns("_nbflow", "output", ".ipynb_checkpoints"))
    return root


def _states_are(page, state: str, count: int) -> None:
    page.wait_for_function(
        """([sel, state, count]) => {
          const nodes = [...document.querySelectorAll(sel + ' g.node')];
          return nodes.length === count && nodes.every(g => g.dataset.state === state);
        }""",
        arg=[PANEL, state, count],
        timeout=180_000,
    )


@contextmanager
def _panel(lab, failure_shot: str) -> Iterator[Any]:
    """JupyterLab in Chromium with the Pipeline panel open."""
    with browser_page(f"{lab.url}/lab?token={lab.token}", failure_shot, (1500, 1000)) as page:
        page.click(".jp-SideBar [data-id='nbflow-pipeline-panel']", timeout=90_000)
        yield page


def _upstream_line(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return next(line for line in cell.source.splitlines() if line.startswith("upstream"))


def test_the_panel_runs_the_example_shows_a_log_and_edits_an_upstream(example_copy: Path, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = example_copy / "report.ipynb"
    original = _upstream_line(report)
    with jupyter_lab(example_copy, tmp_path / "jupyter") as lab, _panel(lab, "panel-failure.png") as page:
        page.wait_for_selector(f"{PANEL} .nbflow-panel-graph g.node", timeout=60_000)
        tasks = page.locator(f"{PANEL} g.node").count()
        assert tasks == 9

        page.click(f"{PANEL} .nbflow-run")
        _states_are(page, "success", tasks)
        fills = page.evaluate(
            f"() => [...document.querySelectorAll('{PANEL} g.node')].map(g => "
            "g.querySelector('path, polygon, rect').getAttribute('fill'))"
        )
        assert set(fills) == {states.COLOURS["success"]}
        page.screenshot(path=str(ARTIFACTS / "panel-after-run.png"))

        page.locator(f"{PANEL} g.node", has_text="train").click()
        page.click(f"{PANEL} .nbflow-show-log")
        page.wait_for_function(
            f"() => document.querySelector('{PANEL} .nbflow-log').textContent.includes('final training log-loss')"
        )
        page.screenshot(path=str(ARTIFACTS / "panel-log.png"))

        page.locator(f"{PANEL} g.node", has_text="report").click()
        page.select_option(f"{PANEL} .nbflow-add-upstream-choice", "ingest")
        page.click(f"{PANEL} .nbflow-add-upstream-button")
        page.wait_for_selector(f"{PANEL} .nbflow-upstreams li:has-text('ingest')")
        assert '"ingest"' in _upstream_line(report), "the notebook's own declaration changed on disk"
        page.screenshot(path=str(ARTIFACTS / "panel-upstream-added.png"))
        page.locator(f"{PANEL} .nbflow-upstreams li", has_text="ingest").locator(".nbflow-remove-upstream").click()
        page.wait_for_function(
            f"() => ![...document.querySelectorAll('{PANEL} .nbflow-upstreams li')]"
            ".some(li => li.textContent.includes('ingest'))"
        )
        assert _upstream_line(report) == original

        # open a notebook from the panel, then run it with its upstreams from its toolbar
        before = page.inner_text(f"{PANEL} .nbflow-summary")
        page.locator(f"{PANEL} g.node", has_text="features").click()
        page.click(f"{PANEL} .nbflow-open")
        page.wait_for_selector(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current:has-text('features.ipynb')")
        page.click(".jp-NotebookPanel .nbflow-toolbar-run")
        page.wait_for_function(
            "([sel, before]) => { const s = document.querySelector(sel + ' .nbflow-summary').textContent;"
            " return s !== before && s.includes(': success'); }",
            arg=[PANEL, before],
            timeout=120_000,
        )
        shown = page.evaluate(
            f"() => Object.fromEntries([...document.querySelectorAll('{PANEL} g.node')]"
            ".map(g => [g.dataset.task, g.dataset.state]))"
        )
        assert shown["train"] == "" and shown["report"] == "", "features and what it needs, only"
        assert {shown[n] for n in ("ingest", "validate", "features")} <= {"success", "up_to_date"}
        page.screenshot(path=str(ARTIFACTS / "panel-run-notebook.png"))


def test_a_validation_error_is_shown_with_the_notebook_to_open(example_copy: Path, tmp_path: Path) -> None:
    from conftest import write_notebook

    write_notebook(example_copy, "broken", 'upstream = ["nowhere"]', "pass")
    with jupyter_lab(example_copy, tmp_path / "jupyter") as lab, _panel(lab, "panel-problem-failure.png") as page:
        problem = page.locator(f"{PANEL} .nbflow-problem", has_text="nowhere")
        problem.wait_for(timeout=60_000)
        assert "broken" in problem.inner_text()
        problem.locator(".nbflow-open-problem").click()
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook", timeout=60_000)
        page.wait_for_selector(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current:has-text('broken.ipynb')")
        page.screenshot(path=str(ARTIFACTS / "panel-problem.png"))


def test_the_log_follows_a_running_task_and_stop_interrupts_it(tmp_path: Path) -> None:
    from conftest import write_notebook

    root = tmp_path / "slowpipe"
    go = tmp_path / "go"
    # the notebook prints, then waits for the test's signal (a file), prints again and waits to be
    # stopped: what the panel shows depends on the order of events, never on how fast they come
    write_notebook(
        root,
        "slow",
        "upstream = None",
        "import pathlib, time\n"
        "print('tick 1', flush=True)\n"
        f"while not pathlib.Path({str(go)!r}).exists():\n"
        "    time.sleep(0.05)\n"
        "print('tick 2', flush=True)\n"
        "time.sleep(600)",
    )
    with jupyter_lab(root, tmp_path / "jupyter") as lab, _panel(lab, "panel-stop-failure.png") as page:
        page.wait_for_selector(f"{PANEL} .nbflow-panel-graph g.node", timeout=90_000)
        page.locator(f"{PANEL} g.node", has_text="slow").click()
        page.click(f"{PANEL} .nbflow-run-task")
        page.wait_for_selector(f"{PANEL} g.node[data-state='running']", timeout=120_000)
        page.click(f"{PANEL} .nbflow-show-log")
        _log_shows(page, "tick 1")
        go.touch()
        _log_shows(page, "tick 2")  # without another click
        page.click(f"{PANEL} .nbflow-stop")
        page.wait_for_selector(f"{PANEL} g.node[data-state='interrupted']", timeout=120_000)
        assert "interrupted" in page.inner_text(f"{PANEL} .nbflow-summary")
        page.screenshot(path=str(ARTIFACTS / "panel-stopped.png"))


def _log_shows(page: Any, text: str) -> None:
    """Wait until the shown log has ``text``; fail at once, with the state, if the task ended instead."""
    page.wait_for_function(
        """([sel, text]) => {
          const log = document.querySelector(sel + ' .nbflow-log');
          const node = document.querySelector(sel + ' g.node');
          const state = node ? node.dataset.state : '';
          return (log && log.textContent.includes(text)) || !['running', 'pending', 'up_for_retry', ''].includes(state);
        }""",
        arg=[PANEL, text],
        timeout=180_000,
    )
    shown = page.inner_text(f"{PANEL} .nbflow-log")
    state = page.get_attribute(f"{PANEL} g.node", "data-state")
    assert text in shown, f"the task ended ({state}) before its log showed {text!r}; the log shows:\n{shown[-2000:]}"
