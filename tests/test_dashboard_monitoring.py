"""The dashboard's compact timeline and grid, its parameter form and its layout, after real runs
in real kernels (a real DuckDB file), and in a real JupyterLab in the machine's Chromium."""

from __future__ import annotations

import re
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from nbflow import states
from nbflow.core.dag import DAG
from nbflow.pipeline import Pipeline
from nbflow.views.svg import SVG_NS, layered_svg, layout
from nbflow.widgets import Dashboard
from tests.conftest import write_notebook

pytestmark = pytest.mark.slow


def _until(check: Callable[[], object], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


def _flaky(root: Path, load: str = "upstream = None") -> None:
    """load -> flaky (fails its first try, then succeeds) -> report; retried once."""
    marker = root / "tries"
    write_notebook(root, "load", load, "print('loaded')")
    write_notebook(
        root,
        "flaky",
        'upstream = ["load"]',
        f"from pathlib import Path\np = Path({str(marker)!r})\nn = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\nprint('try', n)\nassert n >= 2, f'try {n} fails'",
    )
    write_notebook(root, "report", 'upstream = ["flaky"]', "print('reported')")
    (root / "nbflow.toml").write_text('retries = 1\nretry_delay = "0s"\n')


def _gantt_rows(svg: str) -> dict[str, list[str]]:
    """Each task's label in the Gantt chart -> the classes of its attempts' work bars."""
    root = ET.fromstring(svg)
    labels = [t for t in root.iter(f"{{{SVG_NS}}}text") if t.get("class") == "nbflow-gantt-label"]
    names = [(t.find(f"{{{SVG_NS}}}title").text or "").rsplit(": ", 1)[0] for t in labels]
    rows: dict[str, list[str]] = {n: [] for n in names}
    for g in root.iter(f"{{{SVG_NS}}}g"):
        if g.get("class") == "nbflow-gantt-attempt":
            tip = g.find(f"{{{SVG_NS}}}title").text or ""
            task = tip.split(" attempt ")[0]
            run = [r for r in g if (r.get("class") or "").startswith("nbflow-gantt-run")]
            rows[task].append(run[0].get("class") or "")
    return rows


def test_after_a_run_the_widget_holds_its_timeline_and_the_grid(tmp_path: Path) -> None:
    _flaky(tmp_path)
    dash = Dashboard(Pipeline.from_dir(tmp_path))
    try:
        assert dash.monitor.grid["runs"] == [] and dash.monitor.timeline_svg == ""
        assert dash.run() is not None
        result = dash.wait(180)
        assert result is not None and result.ok
        _until(lambda: dash.monitor.grid["runs"] and dash.monitor.grid["runs"][0]["state"] == "success", 30, "grid")
        grid = dash.monitor.grid
        assert [r["run_id"] for r in grid["runs"]] == [result.run_id]
        assert grid["tasks"] == ["load", "flaky", "report"]
        cells = grid["cells"][result.run_id]
        assert {n: c["state"] for n, c in cells.items()} == result.states
        assert cells["flaky"]["attempts"] == 2 and cells["load"]["attempts"] == 1
        assert dash.monitor.colours == states.COLOURS
        assert dash.monitor.shown == {"run": result.run_id, "task": ""}

        rows = _gantt_rows(dash.monitor.timeline_svg)
        assert set(rows) == {"load", "flaky", "report"}, "every task has its row"
        assert rows["flaky"] == ["nbflow-gantt-run nbflow-gantt-failed", "nbflow-gantt-run nbflow-gantt-success"]
        assert rows["load"] == rows["report"] == ["nbflow-gantt-run nbflow-gantt-success"]
        assert 'class="nbflow-gantt-kernel"' in dash.monitor.timeline_svg, "the kernels' start is shown apart"

        # nothing changed: the next tick sends nothing again, and reads no notebook
        sent: list[str] = []
        dash.monitor.observe(lambda change: sent.append(change["name"]), names=["timeline_svg", "grid"])
        timeline = dash._timeline
        dash.refresh(reread=True)
        assert sent == [] and dash._timeline is timeline
    finally:
        dash.close()


def test_clicking_a_grid_cell_shows_that_run_and_attempt(tmp_path: Path) -> None:
    _flaky(tmp_path)
    pipeline = Pipeline.from_dir(tmp_path)
    first = pipeline.run()
    second = pipeline.run(force=True)
    assert first.ok and second.ok and first.run_id != second.run_id
    dash = Dashboard(Pipeline.from_dir(tmp_path))
    try:
        grid = dash.monitor.grid
        assert [r["run_id"] for r in grid["runs"]] == [second.run_id, first.run_id]
        assert grid["cells"][first.run_id]["flaky"]["attempts"] == 2
        assert grid["cells"][second.run_id]["flaky"]["attempts"] == 1
        assert dash.run_record is not None and dash.run_record.run_id == second.run_id

        # the front end sets `clicked` on a click in the grid: the first run's flaky, its first attempt
        dash.monitor.clicked = {"run": first.run_id, "task": "flaky", "attempt": 1, "n": 1}
        assert dash.run_record is not None and dash.run_record.run_id == first.run_id
        assert dash.graph.selected == "flaky" and dash.task_picker.value == "flaky"
        assert dash.history.value == first.run_id
        assert dash.monitor.shown == {"run": first.run_id, "task": "flaky"}
        assert "try 1" in dash.task_log.value and "try 2" not in dash.task_log.value
        assert "attempt-1.ipynb" in dash.task_detail.value
        assert {n: p[0] for n, p in dash.graph.paint.items()} == first.states
        assert set(_gantt_rows(dash.monitor.timeline_svg)["flaky"]) and first.run_id in dash.monitor.timeline_svg

        dash.monitor.clicked = {"run": first.run_id, "task": "flaky", "attempt": 2, "n": 2}
        assert "try 2" in dash.task_log.value and "attempt-2.ipynb" in dash.task_detail.value

        dash.monitor.clicked = {"run": second.run_id, "task": "report", "attempt": 1, "n": 3}
        assert dash.run_record is not None and dash.run_record.run_id == second.run_id
        assert dash.graph.selected == "report" and "reported" in dash.task_log.value
        assert second.run_id in dash.monitor.timeline_svg

        dash.monitor.clicked = {"run": "no-such-run", "task": "<b>x</b>", "n": 4}  # nothing the DAG knows
        assert dash.graph.selected == "report"
    finally:
        dash.close()


def test_string_defaults_show_without_quotes_and_are_sent_as_strings(make_notebook, tmp_path: Path) -> None:
    make_notebook(
        "a", "upstream = None\nname = 'raw'\nlabel = \"it's\"\nrows = 1", "print(repr(name), repr(label), repr(rows))"
    )
    dash = Dashboard(Pipeline.from_dir(tmp_path))
    try:
        fields = dash.param_fields
        assert {n: f.value for n, f in fields.items()} == {"label": "it's", "name": "raw", "rows": "1"}
        assert dash.form_params() == {}, "unchanged fields are not overrides"
        fields["name"].value = "5"
        fields["label"].value = "a 'quoted' word"
        fields["rows"].value = "7"
        assert dash.form_params() == {"name": "5", "label": "a 'quoted' word", "rows": 7}
        assert dash.run(params=dash.form_params()) is not None
        result = dash.wait(120)
        assert result is not None and result.ok
        assert dash.run_record is not None
        assert dash.run_record.params == {"name": "5", "label": "a 'quoted' word", "rows": 7}
        dash.select_task("a")
        assert "&#x27;5&#x27;" in dash.task_log.value and "7" in dash.task_log.value
    finally:
        dash.close()


def _box_and_label(g: ET.Element) -> tuple[float, float, float]:
    """A drawn node's box top and bottom, and its name's baseline."""
    shape = next(el for el in g if el.tag.split("}")[1] in ("path", "polygon", "rect"))
    if shape.tag.endswith("rect"):
        top = float(shape.get("y") or 0)
        bottom = top + float(shape.get("height") or 0)
    else:
        ys = [float(y) for y in re.findall(r"-?[\d.]+,(-?[\d.]+)", shape.get("d") or shape.get("points") or "")]
        top, bottom = min(ys), max(ys)
    name = g.findall(f"{{{SVG_NS}}}text")[0]
    return top, bottom, float(name.get("y") or 0)


@pytest.mark.parametrize("use_dot", [True, False])
def test_a_node_name_sits_in_the_middle_of_its_box(use_dot: bool) -> None:
    if use_dot and shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    names = ("load", "clean", "a much longer task name")
    dag = DAG({"load": (), "clean": ("load",), names[2]: ("clean",)}, names)
    svg = layout(dag).svg if use_dot else layered_svg(dag)
    nodes = [g for g in ET.fromstring(svg).iter(f"{{{SVG_NS}}}g") if g.get("class") == "node"]
    assert len(nodes) == 3
    for g in nodes:
        top, bottom, baseline = _box_and_label(g)
        size = float(g.findall(f"{{{SVG_NS}}}text")[0].get("font-size") or 0)
        middle_of_letters = baseline - 0.35 * size
        assert abs(middle_of_letters - (top + bottom) / 2) < 0.5, (top, bottom, baseline)
        note = g.findall(f"{{{SVG_NS}}}text")[-1]
        assert baseline < float(note.get("y") or 0) < bottom, "the duration's line is under the name, in the box"


# -- in a real JupyterLab -------------------------------------------------------------------

HISTORY_INSIDE = """() => {
  const history = document.querySelector('.jp-OutputArea .widget-select.nbflow-history');
  const dashboard = history.parentElement;
  const output = dashboard.closest('.jp-OutputArea');
  const [h, d, o] = [history, dashboard, output].map(e => e.getBoundingClientRect());
  return {history: h.right, dashboard: d.right, output: o.right, scrolls: history.scrollWidth > history.clientWidth};
}"""
LABEL_OFFSETS = """() => [...document.querySelectorAll('.nbflow-graph g.node')].map(g => {
  const box = g.querySelector('path, polygon, rect').getBBox();
  const name = g.querySelectorAll('text')[0].getBBox();
  return [g.dataset.task, (name.y + name.height / 2) - (box.y + box.height / 2), box.height];
})"""


def test_the_dashboard_shows_the_timeline_and_grid_in_jupyterlab(tmp_path: Path) -> None:
    import nbformat
    from labserver import ARTIFACTS, browser_page, jupyter_lab

    pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
    root = tmp_path / "pipeline"
    root.mkdir()
    note = "a fairly long comment on this run, so that its row in the history is wider than the widget"
    _flaky(root, load=f"upstream = None\ncomment = {note!r}")
    dashboard = write_notebook(root, "dashboard", None, "import nbflow\nnbflow.show('.')")
    nb = nbformat.read(dashboard, as_version=4)
    nb.metadata["nbflow"] = {"task": False}
    nbformat.write(nb, dashboard)
    pipeline = Pipeline.from_dir(root)
    assert sorted(pipeline.specs) == ["flaky", "load", "report"]
    first = pipeline.run(params={"comment": note})
    second = pipeline.run(params={"comment": note + " (again)"}, force=True)
    assert first.ok and second.ok

    with (
        jupyter_lab(root, tmp_path / "jupyter") as lab,
        browser_page(lab.page_url("dashboard.ipynb"), "dashboard-monitoring-failure.png", (1000, 1400)) as page,
    ):
        _show_dashboard(page)
        page.wait_for_function("() => document.querySelectorAll('.nbflow-grid-cell:not([disabled])').length === 6")
        gantt_rows = page.evaluate(
            "() => [...document.querySelectorAll('.nbflow-monitor .nbflow-gantt-label')].map(t => t.lastChild.data)"
        )
        assert sorted(gantt_rows) == ["flaky", "load", "report"]
        assert page.locator(".nbflow-monitor .nbflow-gantt-attempt").count() == 3, "the latest run: one try each"

        edges = page.evaluate(HISTORY_INSIDE)
        assert edges["history"] <= edges["dashboard"] + 0.5 <= edges["output"] + 1, edges
        assert edges["scrolls"], "the long rows scroll inside the history list"

        offsets = page.evaluate(LABEL_OFFSETS)
        assert len(offsets) == 3
        for task, offset, height in offsets:
            assert abs(offset) < 0.08 * height, f"{task}'s name is {offset:.1f} off its box's middle"

        # a click on the first run's flaky cell: that run, that task, its last attempt, in the panel
        page.locator(f".nbflow-grid-cell[data-run='{first.run_id}'][data-task='flaky']").click()
        page.wait_for_function(
            "(run) => document.querySelectorAll(`.nbflow-grid-cell.nbflow-grid-shown[data-run='${run}']`).length === 3",
            arg=first.run_id,
        )
        page.wait_for_function("() => document.body.innerText.includes('try 2')")
        assert page.locator(".nbflow-monitor .nbflow-gantt-attempt").count() == 4, "flaky's two tries"
        assert page.locator(".nbflow-graph g.node[data-task='flaky']").get_attribute("data-state") == "success"
        page.locator(".nbflow-monitor").scroll_into_view_if_needed()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-monitoring.png"), full_page=True)


KERNEL_IDLE = """() => [...document.querySelectorAll('.jp-StatusBar-Widget')]
  .some(e => e.innerText.includes('| Idle'))"""
SHOWN_OR_LOST = """() => document.querySelector('.nbflow-monitor svg.nbflow-gantt') !== null
  || document.body.innerText.includes('Error displaying widget')"""


def _show_dashboard(page, tries: int = 4) -> None:
    """Run the dashboard's cell until its timeline shows. A request sent while the new kernel is
    still connecting can be dropped (it is sent again), and a kernel connection made again while the
    page starts can leave the front end without the widgets' models ("Error displaying widget: model
    not found"): the kernel is then restarted and the cell run again."""
    from playwright.sync_api import Error as PlaywrightError

    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached", timeout=90_000)
    for attempt in range(tries):
        page.wait_for_function(KERNEL_IDLE, timeout=90_000)
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells").first.click()
        try:
            page.wait_for_function(SHOWN_OR_LOST, timeout=30_000 * (attempt + 1))
        except PlaywrightError:
            continue  # the request was dropped: send it again
        if page.locator(".nbflow-monitor svg.nbflow-gantt").count():
            return
        page.get_by_role("menuitem", name="Kernel", exact=True).click()  # a new connection: the models again
        page.get_by_role("menuitem", name="Restart Kernel…").first.click()
        page.locator(".jp-Dialog .jp-mod-accept").click()
    raise AssertionError("the dashboard did not show: " + page.locator(".jp-OutputArea").first.inner_text())
