"""nbflow report embeds each task's executed notebook (collapsed, inert, offline, bounded) and the run's Gantt."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import nbflow_process, write_notebook
from labserver import ARTIFACTS, browser_page

pytestmark = pytest.mark.slow

SVG = "{http://www.w3.org/2000/svg}"
#: a task name that is markup, as a file system allows it
MARKUP_TASK = "<img src=x onerror=pwned('task')>"
#: a 40x20 PNG in Python's zlib and struct (no plotting library needed), shown with IPython's display
PLOT_CELL = """
import struct, zlib
from IPython.display import HTML, Image, Javascript, display

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

def png(width, height, rgb):
    rows = b"".join(b"\\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")

display(Image(data=png(40, 20, (200, 30, 30))))
"""
TABLE_CELL = """
try:
    import pandas as pd
    table = pd.DataFrame({"city": ["Lyon", "Oslo"], "rows": [7, 11]})
except ImportError:
    table = HTML("<table><tr><th>city</th><th>rows</th></tr><tr><td>Lyon</td><td>7</td></tr></table>")
display(table)
"""
HOSTILE_CELL = """
display(HTML("<b onclick=pwned('click')>bold</b><script>pwned('script')</script><img src=x onerror=pwned('img')>"
             "<img src='https://example.invalid/x.png'><a href='javascript:pwned(1)'>link</a>"))
display(Javascript("pwned('js')"))
print("<script>pwned('stdout')</script>")
"""
HUGE_CELL = 'from IPython.display import HTML, display\ndisplay(HTML("<p>" + "y" * 3_000_000 + "</p>"))\nprint("after the flood")'


def _pipeline(root: Path) -> None:
    write_notebook(root, "plot", "upstream = None", PLOT_CELL, TABLE_CELL, HOSTILE_CELL)
    write_notebook(root, MARKUP_TASK, 'upstream = ["plot"]', "print('ok')")
    write_notebook(root, "huge", 'upstream = ["plot"]', HUGE_CELL)


def _report(tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "pipe"
    _pipeline(root)
    assert nbflow_process("run", str(root)).returncode == 0
    out = tmp_path / "out" / "report.html"
    proc = nbflow_process("report", str(root), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, out.read_text(encoding="utf-8")


def _section(page: str, task: str) -> str:
    start = page.index(f"<section class='task' id='task-{html.escape(task)}'")
    return page[start : page.index("</section>", start)]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return _report(tmp_path_factory.mktemp("report"))


def test_each_notebook_is_embedded_collapsed_with_its_image_and_table(report: tuple[Path, str]) -> None:
    _, page = report
    plot = _section(page, "plot")
    notebook = plot[plot.index("<details class='notebook'>") :]
    assert "<details class='notebook'>" in plot and "<details class='notebook' open" not in page
    assert re.search(r'<img [^>]*src="data:image/png;base64,iVBORw0KGgo', notebook), "the plot is a data: URI"
    assert "Lyon" in notebook and "<table" in notebook, "the table is rendered"
    assert "display(Image(data=png(40, 20" in html.unescape(re.sub(r"<[^>]+>", "", notebook)), "the code is shown"


class _Tags(HTMLParser):
    """Every element of a page, with its attributes, as a browser's parser reads them."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def test_the_report_fetches_nothing_and_runs_nothing(report: tuple[Path, str]) -> None:
    _, page = report
    tags = _Tags(page).tags
    assert not [t for t, _ in tags if t in ("script", "iframe", "object", "embed", "link", "base", "form")]
    assert not [(t, a) for t, a in tags if any(k.startswith("on") for k in a)], "no event handler"
    urls = [v.strip() for _, a in tags for k, v in a.items() if k in ("src", "href", "xlink:href", "action")]
    assert urls and not [u for u in urls if not u.startswith(("data:image/", "#", "../"))], "nothing fetched or run"
    assert "url(http" not in page and "@import" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    plot = _section(page, "plot")
    assert "bold" in plot and "&lt;script&gt;pwned(&#x27;stdout&#x27;)&lt;/script&gt;" in plot, (
        "printed text stays text"
    )
    assert f"<h3>{html.escape(MARKUP_TASK)}</h3>" in page, "a name that is markup is text"


def test_a_huge_output_is_left_out_with_a_note_and_the_link(report: tuple[Path, str]) -> None:
    out, page = report
    huge = _section(page, "huge")
    assert "after the flood" in huge, "the rest of the notebook is shown"
    assert "y" * 10_000 not in huge
    assert "left out of the report" in huge and "its largest output is" in huge
    href = re.search(r"<p class='note'>[^<]*largest output[^<]*<a href='([^']+)'>", huge)
    assert href and (out.parent / html.unescape(href[1])).resolve().is_file(), "the note links the executed notebook"
    assert out.stat().st_size < 3 * 1024 * 1024


def test_the_gantt_names_every_task_of_the_run(report: tuple[Path, str]) -> None:
    _, page = report
    start = page.index("<svg", page.index("<h2>Timeline</h2>"))
    gantt = ET.fromstring(page[start : page.index("</svg>", start) + len("</svg>")])
    assert gantt.get("class") == "nbflow-gantt"
    labels = [el.find(f"{SVG}title") for el in gantt.iter(f"{SVG}text") if el.get("class") == "nbflow-gantt-label"]
    named = {t.text.rsplit(": ", 1)[0] for t in labels if t is not None and t.text}
    assert named == {"plot", MARKUP_TASK, "huge"}
    bars = [g for g in gantt.iter(f"{SVG}g") if g.get("class") == "nbflow-gantt-attempt"]
    assert len(bars) == 3
    kernels = [r for r in gantt.iter(f"{SVG}rect") if r.get("class") == "nbflow-gantt-kernel"]
    assert len(kernels) == 3, "each notebook's kernel start is drawn apart from its own time"
    assert page.index("<h2>Tasks</h2>") > start, "the timeline is above the tasks"


def test_headings_and_columns_are_steady(report: tuple[Path, str]) -> None:
    _, page = report
    sizes = dict(re.findall(r"\b(h[123]) \{ font-size: (\d+)px", page))
    assert int(sizes["h2"]) > int(sizes["h3"]), "the Tasks heading is larger than a task's name"
    assert page.count("<table class='fields'>") == 3 and "table.fields { table-layout: fixed" in page


def test_in_chromium_the_plot_shows_and_no_request_leaves_the_page(report: tuple[Path, str]) -> None:
    out, _ = report
    with browser_page(out.as_uri(), "report-notebooks-failure.png", (1200, 1400)) as page:
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.add_init_script("window.pwned = (where) => { (window.__pwned = window.__pwned || []).push(where); };")
        page.reload()
        details = page.locator("section#task-plot details.notebook")
        assert not details.evaluate("d => d.open"), "collapsed by default"
        image = details.locator(".output_png img")
        assert not image.is_visible()
        details.locator("summary").click()
        image.wait_for(state="visible")
        assert image.evaluate("img => img.complete && img.naturalWidth") == 40
        assert details.locator("table").first.is_visible()
        page.locator("section#task-huge details.notebook summary").click()
        page.locator("section#task-huge .nbflow-notebook").wait_for(state="visible")
        assert page.evaluate("() => window.__pwned || []") == []
        page.screenshot(path=str(ARTIFACTS / "report-notebooks.png"), full_page=True)
        page.emulate_media(color_scheme="dark")
        background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(32, 33, 36)", "a dark system theme gets a dark page"
        page.screenshot(path=str(ARTIFACTS / "report-notebooks-dark.png"), full_page=True)
    leaving = [u for u in requests if not u.startswith(("file:", "data:"))]
    assert requests and not leaving, leaving
