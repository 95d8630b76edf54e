"""The pipeline view in JupyterLab's main area, in a real browser: the grid of runs x tasks,
an attempt and its log, the Gantt timeline, the duration trend, light and dark themes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from conftest import nbflow_process, write_notebook
from labserver import ARTIFACTS, browser_page, jupyter_lab

from nbflow import states
from nbflow.history import open_store

playwright = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
pytestmark = pytest.mark.slow

VIEW = ".nbflow-view"
FLAKY = (
    "import pathlib\n"
    "flag = pathlib.Path({flag!r})\n"
    "if not flag.exists():\n"
    "    flag.touch()\n"
    "    raise ValueError('the first try fails')\n"
    "print('flaky ran')"
)
#: a task named as markup: shown as text everywhere, never run as HTML
SIDE = "<img src=x onerror=window.pwned=1>"
TASKS = ["load", "flaky", "report", SIDE]


def _pipeline(folder: Path, flags: Path) -> None:
    """load -> flaky (fails its first try, retried once) -> report; SIDE alone."""
    write_notebook(folder, "load", "upstream = None", "print('loaded')")
    write_notebook(folder, "flaky", 'upstream = ["load"]', FLAKY.format(flag=str(flags / "flaky-failed-once")))
    write_notebook(folder, "report", 'upstream = ["flaky"]', "print('reported')")
    write_notebook(folder, SIDE, "upstream = None", "print('side')")
    (folder / "nbflow.toml").write_text("[tasks.flaky]\nretries = 1\nretry_delay = 0\n")


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def _palette(page: Any, text: str, item: str) -> None:
    """Run a command from JupyterLab's command palette, found by typing ``text``."""
    page.keyboard.press("Control+Shift+C")
    page.fill(".lm-CommandPalette-input", text)
    page.locator(".lm-CommandPalette-item", has_text=item).first.click()


def test_the_view_shows_runs_an_attempt_its_timeline_and_trend_in_both_themes(tmp_path: Path) -> None:
    root, flags = tmp_path / "lab", tmp_path / "flags"
    folder = root / "pipe"
    flags.mkdir()
    _pipeline(folder, flags)
    first = nbflow_process("run", str(folder), "--no-progress")
    assert first.returncode == 0, first.stderr  # flaky failed once, then succeeded on its retry
    second = nbflow_process("run", str(folder), "--no-progress", "--force")
    assert second.returncode == 0, second.stderr
    with open_store(folder, read_only=True) as store:
        newest, retried = (r.run_id for r in store.list_runs())

    with (
        jupyter_lab(root, tmp_path / "jupyter") as lab,
        browser_page(lab.page_url("pipe"), "monitor-view-failure.png", (1600, 1100)) as page,
    ):
        page.wait_for_selector(".jp-DirListing-item[title*='flaky']", timeout=90_000)
        _palette(page, "Open Pipeline View", "nbflow: Open Pipeline View")

        # the grid: both runs x every task, coloured by state, the retried cell saying 2 attempts
        page.wait_for_function(
            "(n) => document.querySelectorAll('.nbflow-view .nbflow-grid-cell').length === n", arg=2 * len(TASKS)
        )
        cells = page.evaluate(
            "() => [...document.querySelectorAll('.nbflow-view .nbflow-grid-cell')].map(b => "
            "[b.dataset.run, b.dataset.task, b.dataset.state, b.textContent, getComputedStyle(b).backgroundColor])"
        )
        assert {(run, task) for run, task, *_ in cells} == {(r, t) for r in (newest, retried) for t in TASKS}
        assert all(state == "success" for _, _, state, _, _ in cells)
        assert all(colour == _rgb(states.COLOURS["success"]) for *_, colour in cells)
        assert [c[3] for c in cells if c[0] == retried and c[1] == "flaky"] == ["2"]
        order = page.evaluate(
            "() => [...document.querySelectorAll('.nbflow-view .nbflow-grid-task')].map(th => th.textContent)"
        )
        assert order.index("load") < order.index("flaky") < order.index("report")
        runs = page.evaluate(
            "() => [...document.querySelectorAll('.nbflow-view .nbflow-grid-run')].map(th => th.dataset.run)"
        )
        assert runs == [retried, newest], "runs oldest left"
        # the graph, full size, coloured from the latest run's status
        page.wait_for_function(
            "() => { const g = [...document.querySelectorAll('.nbflow-view .nbflow-view-graph g.node')];"
            " return g.length === 4 && g.every(n => n.dataset.state === 'success'); }"
        )

        # a cell: that attempt, its state and its log; the timeline and the trend follow it
        page.click(f"{VIEW} .nbflow-grid-cell[data-run='{retried}'][data-task='flaky']")
        attempt = f"{VIEW} .nbflow-view-attempt[data-run='{retried}'][data-task='flaky'][data-attempt='2']"
        page.wait_for_selector(f"{attempt}[data-state='success']")
        page.wait_for_function(
            "() => document.querySelector('.nbflow-view .nbflow-view-log').textContent.includes('flaky ran')"
        )
        assert page.locator(f"{VIEW} .nbflow-view-open-executed").is_visible()
        page.wait_for_function(
            "(run) => document.querySelector('.nbflow-view .nbflow-view-subtitle').textContent.includes(run)",
            arg=retried,
        )
        labels = page.evaluate(
            "() => [...document.querySelectorAll('.nbflow-view .nbflow-gantt-label title')].map(t => t.textContent)"
        )
        assert sorted(labels) == sorted(TASKS), "every task of the run has a row"
        bars = page.evaluate(
            "() => [...document.querySelectorAll('.nbflow-view .nbflow-gantt-bar')].map(b => "
            "[b.dataset.task, b.dataset.attempt, b.dataset.kind, b.dataset.state])"
        )
        running = sorted((t, a, s) for t, a, kind, s in bars if kind == "running")
        assert running == sorted(
            [(t, "1", "success") for t in TASKS if t != "flaky"] + [("flaky", "1", "failed"), ("flaky", "2", "success")]
        )
        assert {kind for *_, kind, _ in bars} >= {"queued", "kernel", "running"}, (
            "waiting and the kernel start shown apart"
        )
        page.wait_for_function("() => document.querySelectorAll('.nbflow-view .nbflow-trend-bar').length === 3")
        trend = page.evaluate(
            "() => [...document.querySelectorAll('.nbflow-view .nbflow-trend-bar')].map(b => [b.dataset.run, b.dataset.state])"
        )
        assert trend == [[retried, "failed"], [retried, "success"], [newest, "success"]]

        # the failed first try, from its bar in the timeline: its state and its error
        page.click(f"{VIEW} .nbflow-gantt-running[data-task='flaky'][data-attempt='1']")
        page.wait_for_selector(f"{VIEW} .nbflow-view-attempt[data-attempt='1'][data-state='failed']")
        page.wait_for_function(
            "() => (document.querySelector('.nbflow-view .nbflow-view-attempt').textContent + "
            "document.querySelector('.nbflow-view .nbflow-view-log').textContent).includes('the first try fails')"
        )
        page.screenshot(path=str(ARTIFACTS / "monitor-view-light.png"))
        # the sidebar panel's button shows the same view (one tab per pipeline)
        page.click(".jp-SideBar [data-id='nbflow-pipeline-panel']")
        page.click("#nbflow-pipeline-panel .nbflow-open-view")
        assert page.locator(".lm-TabBar-tab:has-text('Pipeline: pipe')").count() == 1
        page.click(".jp-SideBar [data-id='nbflow-pipeline-panel']")  # the panel closed again
        light = page.evaluate("() => getComputedStyle(document.querySelector('.nbflow-view-graph')).backgroundColor")

        # JupyterLab's dark theme: the view follows it, the graph's box too
        page.click(".lm-MenuBar-itemLabel:text-is('Settings')")
        page.hover(".lm-Menu-item:has-text('Theme')")
        page.click(".lm-Menu-item:has-text('JupyterLab Dark')")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
        page.wait_for_function(
            "(light) => getComputedStyle(document.querySelector('.nbflow-view-graph')).backgroundColor !== light",
            arg=light,
        )
        colours = page.evaluate(
            """() => {
              const bg = e => getComputedStyle(e).backgroundColor;
              const page = document.querySelector('.nbflow-view-graph g.graph > polygon');
              return {graph: bg(document.querySelector('.nbflow-view-graph')),
                      view: bg(document.querySelector('.nbflow-view')),
                      page: page ? getComputedStyle(page).fill : 'none',
                      label: getComputedStyle(document.querySelector('.nbflow-gantt-label')).fill};
            }"""
        )
        white = {"rgb(255, 255, 255)", "#ffffff", "white"}
        assert colours["graph"] not in white and colours["view"] not in white, colours
        assert colours["page"] not in white, colours
        assert _luminance(colours["graph"]) < 0.3 and _luminance(colours["label"]) > 0.6, colours
        assert page.evaluate("() => window.pwned") is None, "a name ran as markup"
        page.wait_for_selector("#jupyterlab-splash", state="detached")  # the theme's splash has gone
        page.screenshot(path=str(ARTIFACTS / "monitor-view-dark.png"))


def _luminance(css: str) -> float:
    r, g, b = (int(x) for x in re.findall(r"\d+", css)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_a_running_attempts_log_follows_from_the_view_by_offsets(tmp_path: Path) -> None:
    root, go = tmp_path / "lab", tmp_path / "go"
    folder = root / "live"
    # prints, waits for the test's signal (a file), prints again, then waits to be stopped: what
    # the view shows depends on the order of events, never on how fast they come
    write_notebook(
        folder,
        "slow",
        "upstream = None",
        "import pathlib, time\n"
        "print('tick 1', flush=True)\n"
        f"while not pathlib.Path({str(go)!r}).exists():\n"
        "    time.sleep(0.05)\n"
        "print('tick 2', flush=True)\n"
        "time.sleep(600)",
    )
    with (
        jupyter_lab(root, tmp_path / "jupyter") as lab,
        browser_page(f"{lab.url}/lab?token={lab.token}", "monitor-view-live-failure.png", (1600, 1100)) as page,
    ):
        logs: list[str] = []
        page.on("request", lambda r: logs.append(r.url) if "/nbflow/log?" in r.url else None)
        # opened from the file browser's context menu on the folder
        page.click(".jp-DirListing-item[data-isdir='true']:has-text('live')", button="right", timeout=90_000)
        page.click(".lm-Menu-item:has-text('Open as nbflow pipeline')")
        page.wait_for_selector(".lm-TabBar-tab:has-text('Pipeline: live')")
        page.wait_for_selector(f"{VIEW} .nbflow-view-graph g.node")
        page.click(".nbflow-view-run")  # the view's toolbar
        page.click(f"{VIEW} .nbflow-grid-cell[data-task='slow'][data-state='running']", timeout=180_000)
        _log_shows(page, "tick 1")
        go.touch()
        _log_shows(page, "tick 2")  # without another click
        offsets = [int(re.search(r"[?&]offset=(\d+)", url).group(1)) for url in logs if "offset=" in url]  # type: ignore[union-attr]
        assert offsets and offsets[0] == 0 and max(offsets) > 0, "asked from the start, then only what follows"
        assert page.inner_text(f"{VIEW} .nbflow-view-log").count("tick 1") == 1, "appended, never repeated"
        page.screenshot(path=str(ARTIFACTS / "monitor-view-live-log.png"))
        page.click(".nbflow-view-stop")
        page.wait_for_selector(f"{VIEW} .nbflow-view-attempt[data-state='interrupted']", timeout=120_000)


def _log_shows(page: Any, text: str) -> None:
    """Wait until the view's log has ``text``; fail at once, with the state, if the attempt ended."""
    page.wait_for_function(
        """(text) => {
          const log = document.querySelector('.nbflow-view .nbflow-view-log');
          const state = document.querySelector('.nbflow-view .nbflow-view-attempt').dataset.state || '';
          return (log && log.textContent.includes(text)) || !['running', 'pending', 'up_for_retry', ''].includes(state);
        }""",
        arg=text,
        timeout=180_000,
    )
    shown = page.inner_text(f"{VIEW} .nbflow-view-log")
    assert text in shown, f"the attempt ended before its log showed {text!r}; the log shows:\n{shown[-2000:]}"
