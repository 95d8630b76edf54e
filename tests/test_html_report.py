"""nbflow report: one self-contained HTML page of a run, opened in the machine's Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import nbflow_process
from labserver import ARTIFACTS, browser_page

from nbflow import states

pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")


def test_a_report_shows_the_graph_every_task_its_error_and_links(make_notebook, tmp_path: Path) -> None:
    make_notebook("load", "upstream = None\nrows = 2", "print(f'loaded {rows} rows')")
    make_notebook("boom", 'upstream = ["load"]', "raise ValueError('bad row 7')")
    make_notebook("report", 'upstream = ["boom"]', "print('never')")
    make_notebook("side", 'upstream = ["load"]', "print('side ok')")
    assert nbflow_process("run", str(tmp_path), "-p", "rows=5").returncode == 1
    out = tmp_path / "out" / "report.html"
    proc = nbflow_process("report", str(tmp_path), "-o", str(out))
    assert proc.returncode == 0 and "report of run" in proc.stdout, proc.stderr
    page_text = out.read_text()
    assert not re.search(r"""(src|href)=["']https?://""", page_text), "nothing is fetched to view it"
    with browser_page(out.as_uri(), "report-failure.png", (1200, 1400)) as page:
        nodes = page.evaluate(
            "() => Object.fromEntries([...document.querySelectorAll('.graph g.node')].map(g => "
            "[g.dataset.task, g.querySelector('path, polygon, rect').getAttribute('fill')]))"
        )
        assert nodes == {
            "load": states.COLOURS["success"],
            "boom": states.COLOURS["failed"],
            "report": states.COLOURS["upstream_failed"],
            "side": states.COLOURS["success"],
        }
        for name in ("load", "boom", "report", "side"):
            assert page.locator(f"section#task-{name}").count() == 1
        boom = page.inner_text("section#task-boom")
        assert "ValueError: bad row 7" in boom and "traceback" in boom
        assert '"rows": 5' in page.inner_text("section#task-load")
        href = page.get_attribute("section#task-load a", "href")
        assert (out.parent / href).resolve().is_file(), "the link reaches the executed notebook"
        page.screenshot(path=str(ARTIFACTS / "html-report.png"), full_page=True)


def test_report_of_an_unknown_run_exits_2(make_notebook, tmp_path: Path) -> None:
    make_notebook("a", "upstream = None", "pass")
    proc = nbflow_process("report", str(tmp_path), "--run", "nope", "-o", str(tmp_path / "r.html"))
    assert proc.returncode == 2 and "nope" in proc.stderr
    assert not (tmp_path / "r.html").exists()
