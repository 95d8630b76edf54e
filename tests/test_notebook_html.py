"""An executed notebook in the report: sanitized to inert markup, and bounded per notebook and per report."""

from __future__ import annotations

from datetime import datetime, timedelta

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from nbflow.store.base import AttemptRecord, RunRecord, TaskRecord
from nbflow.views.html_report import iter_report
from nbflow.views.notebook_html import NotebookHtml, notebook_to_html, sanitize

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
EMPTY_SVG = '<svg xmlns="http://www.w3.org/2000/svg"></svg>'


def _notebook(*outputs: dict, markdown: str = "# Results") -> str:
    return nbformat.writes(
        new_notebook(
            cells=[new_markdown_cell(markdown), new_code_cell("show()", execution_count=1, outputs=list(outputs))]
        )
    )


def test_sanitize_keeps_tables_headings_and_data_images_and_drops_everything_active() -> None:
    dirty = (
        "<h2 id='x' onclick='pwned()'>Title</h2><table><thead><tr><th>a</th></tr></thead><tbody><tr><td>1</td>"
        "</tr></tbody></table><img src='data:image/png;base64,AAAA'><img src='https://example.invalid/t.png'>"
        "<a href='javascript:pwned()'>x</a><b style='background:url(https://example.invalid/)'>b</b>"
        "<script>pwned()</script><style>body{display:none}</style><iframe src='https://example.invalid'></iframe>"
        "<svg onload='pwned()'><circle/></svg><form action='https://example.invalid'><input></form>"
    )
    clean = sanitize(dirty)
    assert clean.strip() == (
        "<h2>Title</h2><table><thead><tr><th>a</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table>"
        '<img src="data:image/png;base64,AAAA">x<b>b</b>'  # a link loses its tag: a report links only its notebooks
    )


def test_active_outputs_are_left_out_and_images_stay_inline() -> None:
    text = _notebook(
        new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"}),
        new_output("display_data", data={"application/javascript": "pwned()"}),
        new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "m"}}),
    )
    rendered = notebook_to_html(text)
    assert f'src="data:image/png;base64,{PNG}"' in rendered.html
    assert "pwned" not in rendered.html and "model_id" not in rendered.html
    assert "<h1>Results</h1>" in rendered.html


def test_the_largest_outputs_go_first_until_the_notebook_fits() -> None:
    text = _notebook(
        new_output("stream", name="stdout", text="small output\n"),
        new_output("stream", name="stdout", text="a" * 400_000),
        new_output("stream", name="stdout", text="b" * 300_000),
    )
    rendered = notebook_to_html(text, budget=500_000)
    assert (rendered.omitted_outputs, rendered.omitted_bytes) == (1, 400_000)
    assert "small output" in rendered.html and "b" * 300_000 in rendered.html and "a" * 1000 not in rendered.html
    assert len(rendered.html.encode()) <= 500_000
    assert notebook_to_html(text, budget=100_000).omitted_outputs == 2


def test_a_notebook_too_large_without_its_outputs_or_unreadable_is_not_shown() -> None:
    huge_markdown = notebook_to_html(_notebook(markdown="word " * 50_000), budget=100_000)
    assert huge_markdown.html == "" and "over the 98 KiB budget" in (huge_markdown.not_shown or "")
    broken = notebook_to_html("{not json")
    assert broken.html == "" and "not a notebook" in (broken.not_shown or "")


def test_the_report_stops_embedding_notebooks_at_its_budget() -> None:
    start = datetime(2026, 1, 1, 12)
    run = RunRecord("r1", "/p", "success", start, start + timedelta(seconds=3))
    names = ["a", "b", "c"]
    tasks = {n: TaskRecord("r1", n, "success", 1, start, start + timedelta(seconds=1)) for n in names}
    attempts = {
        n: [AttemptRecord("r1", n, 1, "success", start, start + timedelta(seconds=1), output_notebook=f"{n}.ipynb")]
        for n in names
    }
    text = _notebook(new_output("stream", name="stdout", text="x" * 60_000))
    asked: list[tuple[str, int]] = []

    def render(task: str, attempt: AttemptRecord, budget: int) -> NotebookHtml:
        asked.append((task, budget))
        return notebook_to_html(text, budget)

    pieces = list(iter_report(run, tasks, EMPTY_SVG, attempts, notebooks=render, budget=140_000))
    page = "".join(pieces)
    assert len(pieces) == len(names) + 2, "the head, one piece per task, the end"
    assert len(page.encode()) < 140_000
    assert [t for t, _ in asked] == names and asked[0][1] > asked[1][1] > asked[2][1], "each gets what is left"
    assert "x" * 60_000 in pieces[1] and "left out" in pieces[3], "the first in full, the last without its output"

    asked.clear()
    pieces = list(iter_report(run, tasks, EMPTY_SVG, attempts, notebooks=render, budget=20_000))
    assert asked == [], "past the budget, no notebook is even read"
    assert all("the report reached its" in p and f"{n}.ipynb" in p for n, p in zip(names, pieces[1:4], strict=True))
