"""Authoring in JupyterLab, in a real browser: a notebook's pipeline inputs loaded into its live
kernel, and a failed task reproduced in a debug notebook run up to the failing cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import nbflow_process, write_notebook
from labserver import ARTIFACTS, browser_page, jupyter_lab

pytestmark = pytest.mark.slow
playwright = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
PANEL = "#nbflow-pipeline-panel"
NOTEBOOK = ".jp-NotebookPanel:visible"


def _no_autosave(home: Path) -> None:
    """JupyterLab saves nothing by itself: what is on disk is what the test's actions wrote."""
    settings = home / "settings" / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"autosave": False}))


def _pipeline(root: Path) -> Path:
    pipe = root / "pipe"
    write_notebook(
        pipe,
        "load",
        'upstream = None\nproduct = {"data": "out/load.csv"}',
        "import pathlib\npathlib.Path(product['data']).parent.mkdir(exist_ok=True)\n"
        "pathlib.Path(product['data']).write_text('a\\n1\\n')",
    )
    write_notebook(
        pipe,
        "clean",
        'upstream = ["load"]\nproduct = {"data": "out/clean.csv"}',
        "print('<upstream>', upstream['load']['data'])",
        "import pathlib\npathlib.Path(product['data']).write_text(pathlib.Path(upstream['load']['data']).read_text())",
    )
    write_notebook(pipe, "summary", 'upstream = ["clean"]', "print(upstream)")
    return pipe


def _toast(page, text: str):
    """The notification saying ``text``, once it has slid fully into view."""
    toast = page.locator(".jp-toast-message", has_text=text).first
    toast.wait_for(timeout=120_000)
    playwright.expect(toast).to_be_in_viewport(ratio=1)
    return toast


def _run_cell(page, index: int, source: str | None = None) -> None:
    """Run cell ``index`` of the notebook shown as a person does: click into it, Shift+Enter."""
    editor = page.locator(f"{NOTEBOOK} .jp-Cell").nth(index).locator(".jp-InputArea-editor")
    editor.click()
    if source is not None:
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.type(source)
    page.keyboard.press("Shift+Enter")


def test_the_toolbar_button_loads_the_inputs_into_the_live_kernel(tmp_path: Path) -> None:
    root = tmp_path / "root"
    pipe = _pipeline(root)
    done = nbflow_process("run", str(pipe), "--only", "load", "--no-progress")
    assert done.returncode == 0, done.stdout + done.stderr
    product = str((pipe / "out" / "load.csv").resolve())
    on_disk = (pipe / "clean.ipynb").read_bytes()
    home = tmp_path / "jupyter"
    _no_autosave(home)
    with (
        jupyter_lab(root, home) as lab,
        browser_page(lab.page_url("pipe/clean.ipynb"), "authoring-inputs-failure.png") as page,
    ):
        page.wait_for_selector(f"{NOTEBOOK} .jp-Cell", timeout=90_000)
        page.click(f"{NOTEBOOK} .nbflow-toolbar-inputs")
        toast = _toast(page, "inputs loaded")
        assert "upstream" in toast.inner_text() and "product" in toast.inner_text()
        assert (pipe / "clean.ipynb").read_bytes() == on_disk, "nothing written"

        # the kernel's start marks a notebook changed (its language_info): saved, then loaded again
        dirty = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current.jp-mod-dirty")
        page.keyboard.press("ControlOrMeta+s")
        dirty.wait_for(state="detached")
        on_disk = (pipe / "clean.ipynb").read_bytes()
        toast.wait_for(state="detached")
        page.click(f"{NOTEBOOK} .nbflow-toolbar-inputs")
        _toast(page, "inputs loaded")
        assert dirty.count() == 0, "loading the inputs does not change the notebook"

        _run_cell(page, 1)  # print('<upstream>', upstream['load']['data']): the parameters cell is not run
        output = page.locator(f"{NOTEBOOK} .jp-Cell").nth(1).locator(".jp-OutputArea-output")
        output.filter(has_text=product).wait_for(timeout=120_000)
        assert output.inner_text().strip() == f"<upstream> {product}", "the live kernel has what a run would inject"
        page.screenshot(path=str(ARTIFACTS / "authoring-inputs-loaded.png"))
        assert (pipe / "clean.ipynb").read_bytes() == on_disk, "the file on disk is unchanged"

        # a notebook whose upstream has not run: its inputs load, and the notification says which is missing
        page.locator(".jp-DirListing-item", has_text="summary.ipynb").dblclick()
        page.wait_for_selector(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current:has-text('summary.ipynb')")
        page.wait_for_selector(f"{NOTEBOOK} .jp-Cell")
        page.click(f"{NOTEBOOK} .nbflow-toolbar-inputs")
        warning = _toast(page, "missing upstream clean")
        assert "it has not run successfully" in warning.inner_text()
        page.screenshot(path=str(ARTIFACTS / "authoring-missing-upstream.png"))

        # the palette's command runs the stale upstream (clean), then loads: nothing is missing any more
        page.keyboard.press("ControlOrMeta+Shift+c")
        page.keyboard.type("Run Stale Upstreams")
        page.locator(".lm-CommandPalette-item", has_text="nbflow: Run Stale Upstreams, then Load Inputs").click()
        _toast(page, "summary: inputs loaded")
        assert (pipe / "out" / "clean.csv").read_text() == "a\n1\n", "clean ran, with what load made"


def test_debug_opens_the_failed_task_run_up_to_its_failing_cell(tmp_path: Path) -> None:
    root = tmp_path / "root"
    pipe = _pipeline(root)
    write_notebook(
        pipe,
        "clean",
        'upstream = ["load"]\nproduct = {"data": "out/clean.csv"}',
        "seen = 41 + 1",
        "print('seen', seen)",
        "raise ValueError('bad <row> & more')",
        "after = 'never run'",
    )
    done = nbflow_process("run", str(pipe), "--no-progress")
    assert done.returncode == 1, done.stdout + done.stderr
    with (
        jupyter_lab(root, tmp_path / "jupyter") as lab,
        browser_page(lab.page_url("pipe"), "authoring-debug-failure.png", (1500, 1000)) as page,
    ):
        page.click(".jp-SideBar [data-id='nbflow-pipeline-panel']", timeout=90_000)
        page.wait_for_selector(f"{PANEL} g.node[data-state='failed']", timeout=90_000)
        page.locator(f"{PANEL} g.node", has_text="load").click()
        assert page.locator(f"{PANEL} .nbflow-debug").count() == 0, "a task that succeeded has nothing to debug"
        page.locator(f"{PANEL} g.node", has_text="clean").click()
        page.click(f"{PANEL} .nbflow-debug")

        page.wait_for_selector(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current:has-text('clean.ipynb')")
        _toast(page, "ran the cells before the failing one")
        cells = page.locator(f"{NOTEBOOK} .jp-Cell")
        printed = cells.filter(has_text="print('seen', seen)")
        assert printed.locator(".jp-OutputArea-output").inner_text().strip() == "seen 42", "a fresh output"
        assert printed.locator(".jp-InputPrompt").inner_text().strip() not in ("[ ]:", ""), "run in this kernel"
        active = page.locator(f"{NOTEBOOK} .jp-Cell.jp-mod-active")
        assert active.count() == 1 and "raise ValueError" in active.inner_text(), "the failing cell is the active one"
        assert active.is_visible()
        after = cells.filter(has_text="after = 'never run'")
        assert after.locator(".jp-InputPrompt").inner_text().strip() in ("[ ]:", ""), "nothing after the failure ran"
        page.screenshot(path=str(ARTIFACTS / "authoring-debug.png"))

        last = cells.count() - 1
        _run_cell(page, last, "print('still', seen * 2)")  # a cell of the person's, after the failure
        cells.nth(last).locator(".jp-OutputArea-output", has_text="still 84").wait_for(timeout=60_000)
        assert (pipe / "clean.ipynb").read_text().count("after = 'never run'") == 1, "the task's notebook is untouched"
