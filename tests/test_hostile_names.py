"""Any name a file system allows, in every view, as text: never markup, never an entity, never an escape.

The views' strings are checked here without a browser; tests/test_hostile_names_browser.py
shows the same pipeline in Chromium (the dashboard in JupyterLab, the Pipeline panel, the report).
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import ipywidgets
import pytest
from conftest import nbflow_process
from hostile import ERROR, FOLDER, LT_TASK, MORE_NAMES, RUN_ID, STATES, TASKS, make_pipeline, plant_run

from nbflow import states
from nbflow.core.dag import build_dag
from nbflow.pipeline import Pipeline
from nbflow.project.specs import ParametersDecl, TaskSpec
from nbflow.views import live as widget_model
from nbflow.views.dot import dag_to_dot
from nbflow.views.svg import TASK_KEY_ATTR, dag_dot_source, layout, shown_name, svg_task_key, task_of_svg_key
from nbflow.widgets import Dashboard

SVG = "{http://www.w3.org/2000/svg}"
#: every element a drawing may hold: a name that became markup would add another
SVG_ELEMENTS = {"svg", "g", "title", "path", "polygon", "polyline", "ellipse", "rect", "text", "defs", "marker"}
#: markup of the payloads, as it would appear if any of it were not escaped
RAW_MARKUP = re.compile(r"<img|<svg onload|onerror=pwned\('[a-z]+'\)>", re.IGNORECASE)
NAMES = [*TASKS, *MORE_NAMES]


def _dag(names: list[str]):
    specs = [
        TaskSpec(n, None, f"{n}.ipynb", "python3", "python", ParametersDecl(upstream=ups), 0, "")
        for n, ups in zip(names, [(), *((n,) for n in names[:-1])], strict=True)
    ]
    return build_dag(specs)


def _nodes(svg: str) -> dict[str, ET.Element]:
    """The drawing's nodes by the task their key names (the SVG must be well-formed XML)."""
    root = ET.fromstring(svg)
    tags = {el.tag.removeprefix(SVG) for el in root.iter()}
    assert tags <= SVG_ELEMENTS, f"unexpected elements: {tags - SVG_ELEMENTS}"
    return {task_of_svg_key(g.get(TASK_KEY_ATTR)): g for g in root.iter(f"{SVG}g") if g.get("class") == "node"}


@pytest.mark.parametrize("use_dot", [True, False], ids=["dot", "fallback"])
def test_every_name_is_drawn_as_text_and_keyed_exactly(use_dot: bool) -> None:
    dag = _dag(NAMES)
    drawing = layout(dag, use_dot=use_dot)
    assert drawing.engine == ("dot" if use_dot else "fallback"), drawing.note
    assert not RAW_MARKUP.search(drawing.svg)
    nodes = _nodes(drawing.svg)
    assert sorted(nodes) == sorted(dag.order), "each node's key reads back as its task's exact name"
    for name, g in nodes.items():
        assert re.fullmatch(r"[A-Za-z0-9%._~-]+", g.get(TASK_KEY_ATTR)), "the key is plain ASCII"
        assert g.find(f"{SVG}title").text == shown_name(name)
        if use_dot:
            assert g.find(f"{SVG}text").text == shown_name(name)
    assert shown_name("new\nline") == "new\u240aline" and shown_name("bell\x07") == "bell\u2407"


def test_graphviz_reads_no_task_name() -> None:
    dag = _dag(NAMES)
    source = dag_dot_source(dag)
    assert "&" not in source, "Graphviz would read an entity"
    assert "\\" not in re.sub(r'\\[n"]', "", source), "Graphviz would read an escape"
    assert "nbsp" in source, "a stand-in of each name's width is what it measures"


def test_layouts_of_names_alike_in_their_stand_ins_are_not_mixed_up() -> None:
    first, second = layout(_dag(["a&b"])), layout(_dag(["aAb"]))
    assert list(_nodes(first.svg)) == ["a&b"] and list(_nodes(second.svg)) == ["aAb"]


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_nbflow_dag_dot_labels_every_name_as_it_is() -> None:
    names = [n for n in NAMES if not re.search(r"[\x00-\x1f]", n)]  # a control character is a line break there
    dag = _dag(names)
    svg = subprocess.run(["dot", "-Tsvg"], input=dag_to_dot(dag), capture_output=True, text=True, check=True).stdout
    # Graphviz writes a node's identifier into its <title> unescaped if it looks like an entity: read labels only
    labels = [html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", svg)]
    assert sorted(labels) == sorted(names)


def test_the_dashboard_shows_folder_run_id_names_and_error_as_text(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path)
    plant_run(root)
    dash = Dashboard(Pipeline.from_dir(root))
    try:
        assert html.escape(str(root)) in dash.header.value and RUN_ID not in dash.header.value
        assert html.escape(f"Run {RUN_ID}: failed") in dash.header.value
        assert {n: p[0] for n, p in dash.graph.paint.items()} == STATES
        assert sorted(_nodes(dash.graph.svg)) == sorted(TASKS)
        assert RUN_ID in dict((v, k) for k, v in dash.history.options), "options are text, shown as they are"
        shown = []
        for name in TASKS:
            dash.select_task(name)
            assert html.escape(name) in dash.task_detail.value
            shown += _html_values(dash)
        assert html.escape(ERROR) in "".join(shown)
        for value in shown:
            assert not RAW_MARKUP.search(value), value
    finally:
        dash.close()


def _html_values(widget: ipywidgets.Widget) -> list[str]:
    """The markup of every HTML widget in the dashboard, as the browser gets it."""
    values = [widget.value] if isinstance(widget, ipywidgets.HTML) else []
    for child in getattr(widget, "children", ()):
        values += _html_values(child)
    return values


def test_the_dashboards_note_is_text() -> None:
    assert widget_model.note_html("dot failed: <img src=x onerror=pwned('note')>").count("<") == 2


def test_the_panels_answers_carry_every_name_exactly(tmp_path: Path) -> None:
    from nbflow.server.service import NbflowService

    root = make_pipeline(tmp_path)
    plant_run(root)
    service = NbflowService(tmp_path)
    dag = service.dag(FOLDER, "TB")
    assert dag["ok"] and [t["name"] for t in dag["tasks"]] == list(Pipeline.from_dir(root).dag.order)
    assert not RAW_MARKUP.search(dag["svg"])
    assert sorted(_nodes(dag["svg"])) == sorted(TASKS)
    status = service.status(FOLDER)
    assert status["run"]["run_id"] == RUN_ID
    assert {name: task["state"] for name, task in status["tasks"].items()} == STATES
    assert status["tasks"][LT_TASK]["error"] == f"ValueError: {ERROR}"


def test_nbflow_report_draws_every_name_and_state_as_text(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path)
    plant_run(root)
    out = tmp_path / "report.html"
    proc = nbflow_process("report", str(root), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert not RAW_MARKUP.search(page)
    assert html.escape(ERROR) in page and html.escape(RUN_ID) in page
    graph = ET.fromstring(page[page.index("<svg") : page.index("</svg>") + len("</svg>")])
    painted = {
        g.get("data-task"): (g.get("data-state"), g.find(f"{SVG}path").get("fill"))
        for g in graph.iter(f"{SVG}g")
        if g.get("class") == "node"
    }
    assert painted == {name: (state, states.COLOURS[state]) for name, state in STATES.items()}
    for name in TASKS:
        assert f"data-task='{html.escape(name)}'" in page, "every task has its section"


def test_svg_task_keys_read_back_whatever_the_name() -> None:
    for name in [*NAMES, "x\udcff", "%41", "a+b"]:
        assert task_of_svg_key(svg_task_key(name)) == name
    assert svg_task_key("%41") != svg_task_key("A")
