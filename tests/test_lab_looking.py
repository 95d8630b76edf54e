"""Browsing folders in JupyterLab (real server, real Chromium): with the Pipeline panel closed,
nbflow is asked nothing; open or closed, no code of a folder runs and nothing is written into it."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import write_notebook
from hostile_folders import code_folder, markers_made, pickle_folder, snapshot
from labserver import browser_page, jupyter_lab

playwright = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
PANEL = "#nbflow-pipeline-panel"
TAB = "[data-id='nbflow-pipeline-panel']"


def _open_folder(page: Any, name: str, shows: str) -> None:
    """Go to the root in the file browser, then double-click folder ``name``; wait until it lists ``shows``."""
    page.click(".jp-FileBrowser .jp-BreadCrumbs-home")
    page.locator(".jp-DirListing-item", has_text=name).first.wait_for()
    page.locator(".jp-DirListing-item", has_text=name).first.dblclick()
    page.wait_for_selector(f".jp-FileBrowser .jp-BreadCrumbs:has-text('{name}')")
    page.locator(".jp-DirListing-item", has_text=shows).first.wait_for()


def _settled(page: Any, lab: Any, n: int) -> None:
    """Every request the page made before this one has been seen (the browser reports them in order)."""
    with page.expect_request(lambda r: f"nbflow-test-barrier={n}" in r.url):
        page.evaluate("url => fetch(url).catch(() => undefined)", f"{lab.url}/api/status?nbflow-test-barrier={n}")


def test_browsing_with_the_panel_closed_asks_nbflow_nothing_and_nothing_runs(tmp_path: Path) -> None:
    root, markers = tmp_path / "served", tmp_path / "markers"
    markers.mkdir()
    pickle_folder(root / "pickled", markers / "unpickled")
    code_folder(root / "coded", markers / "imported")
    write_notebook(root / "plain", "only", "upstream = None", "pass")
    for path in root.rglob("*.*"):  # old enough to be cached, were anything cached
        os.utime(path, (time.time() - 60, time.time() - 60))
    before = snapshot(root)

    with jupyter_lab(root, tmp_path / "jupyter") as lab, browser_page("about:blank", "lab-looking-failure.png") as page:
        asked: list[str] = []
        page.on(
            "request", lambda r: asked.append(r.url) if "/nbflow/" in r.url and "/extensions/" not in r.url else None
        )
        page.goto(f"{lab.url}/lab?token={lab.token}")
        page.wait_for_selector(f".jp-SideBar {TAB}", timeout=90_000)  # the extension is active

        for name, shows in (("coded", "nbflow_tasks.py"), ("pickled", "_nbflow"), ("plain", "only.ipynb")):
            _open_folder(page, name, shows)
        _open_folder(page, "coded", "nbflow_tasks.py")
        _settled(page, lab, 1)
        assert asked == [], "the panel is closed: nbflow was asked nothing"
        assert markers_made(markers) == []

        # the panel open beside the file browser (its tab moved to the right side bar)
        page.click(f".jp-SideBar {TAB}", button="right")
        page.locator(".lm-Menu-item", has_text="Switch Sidebar Side").click()
        if not page.locator(PANEL).is_visible():
            page.click(f".jp-SideBar.jp-mod-right {TAB}")
        page.wait_for_selector(f"{PANEL} .nbflow-code-note:has-text('not loaded: double')")
        assert page.locator(f"{PANEL} g.node").count() == 2, "the code task is listed, read from the file"
        _open_folder(page, "pickled", "_nbflow")  # a hostile folder opened with the panel open
        page.wait_for_selector(f"{PANEL} .nbflow-title:has-text('pickled')")
        page.wait_for_function(f"() => document.querySelectorAll('{PANEL} g.node').length === 1")
        assert any("/nbflow/dag?path=coded" in u for u in asked) and any("/nbflow/dag?path=pickled" in u for u in asked)

        page.click(f".jp-SideBar.jp-mod-right {TAB}")  # closed again
        page.wait_for_selector(PANEL, state="hidden")
        _settled(page, lab, 2)
        seen = len(asked)
        _open_folder(page, "plain", "only.ipynb")
        _open_folder(page, "coded", "nbflow_tasks.py")
        _settled(page, lab, 3)
        assert asked[seen:] == [], "closed again: no request, no polling"

    assert markers_made(markers) == [], "no code of a folder ran, panel open or closed"
    assert snapshot(root) == before, "nothing was written into the folders"
