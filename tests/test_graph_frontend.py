"""graph.js in the machine's Chromium: painting states, selecting by click, a 300-task graph."""

from __future__ import annotations

import pytest
from graphpage import mount, repaint
from labserver import CHROMIUM_ARGS, chromium_path

from nbflow import states
from nbflow.core.dag import build_dag
from nbflow.project.specs import ParametersDecl, TaskSpec
from nbflow.views.live import TaskPaint
from nbflow.views.svg import layout

playwright = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")


def _dag(n: int):
    specs = []
    for i in range(n):
        ups = tuple(f"t{j:03d}" for j in (i - 1, i - 7) if j >= 0)
        specs.append(
            TaskSpec(f"t{i:03d}", None, f"t{i:03d}.ipynb", "python3", "python", ParametersDecl(upstream=ups), 0, "")
        )
    return build_dag(specs)


def _paint(dag, state: str) -> dict[str, TaskPaint]:
    return {name: [state, states.COLOURS[state], "1.0s" if state == "success" else ""] for name in dag.order}


@pytest.fixture(scope="module")
def page():
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        yield browser.new_page()
        browser.close()


STATES_OF = "() => Object.fromEntries([...document.querySelectorAll('g.node')].map(g => [g.dataset.task, "
STATES_OF += "[g.dataset.state, g.querySelector('path, polygon, rect').getAttribute('fill')]]))"


@pytest.mark.parametrize("use_dot", [True, False], ids=["dot", "fallback"])
def test_states_paint_the_nodes_and_a_click_selects_a_task(page, use_dot: bool) -> None:
    dag = _dag(12)
    drawing = layout(dag, use_dot=use_dot)
    mount(page, drawing.svg, _paint(dag, "pending"))
    shown = page.evaluate(STATES_OF)
    assert shown == {n: ["pending", states.COLOURS["pending"]] for n in dag.order}
    paint = _paint(dag, "success")
    paint["t005"] = ["failed", states.COLOURS["failed"], "0.3s"]
    repaint(page, paint)
    shown = page.evaluate(STATES_OF)
    assert shown["t005"] == ["failed", states.COLOURS["failed"]]
    assert shown["t000"] == ["success", states.COLOURS["success"]]
    note = "(t) => [...document.querySelectorAll('g.node')].find(g => g.dataset.task === t).querySelectorAll('text')"
    assert page.evaluate(note + "[1].textContent", "t005") == "0.3s", "a finished task shows its duration"
    page.locator("g.node[data-task='t003']").click()
    assert page.evaluate("() => window.model.get('selected')") == "t003"
    assert page.evaluate("() => window.saved") == 1
    width = page.evaluate(
        "() => document.querySelector(\"g.node[data-task='t003'] path, g.node[data-task='t003'] rect\")"
        ".getAttribute('stroke-width')"
    )
    assert width == "3", "the selected task is outlined"
    legend = page.locator(".nbflow-graph-legend").inner_text()
    assert "failed" in legend and "success" in legend


def test_a_300_task_graph_renders_and_repaints(page) -> None:
    dag = _dag(300)
    mount(page, layout(dag).svg, _paint(dag, "pending"))
    assert page.locator("g.node").count() == 300
    for state in ("running", "success"):
        repaint(page, _paint(dag, state))
        shown = page.evaluate(STATES_OF)
        assert {s for s, _c in shown.values()} == {state}
    assert page.locator(".nbflow-graph-fit").inner_text() == "Fit to width", "big graphs start at full size"
