"""An executed notebook as an HTML fragment for ``nbflow report``: inert, bounded, offline. Pure.

nbconvert's ``basic`` template renders the cells (no page, no require.js, MathJax or CDN
stylesheet); before that, only outputs of the kinds listed in :data:`SHOWN_MIME` are kept
(JavaScript, widget views and other active outputs go), and the largest outputs are left out
until the notebook fits its budget. After it, the HTML goes through bleach with an allowlist:
no ``<script>``, ``<style>``, ``<iframe>``, form or event-handler attribute survives, no ``id``
(the report's own ids stay unique), no ``href``, and an image's ``src`` only as a ``data:image/``
URI, so nothing in a notebook's output runs or fetches anything when the report is opened.
nbconvert and bleach are imported when a notebook is rendered.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass
from typing import Any

#: the outputs' kinds the report shows; anything else (JavaScript, widgets, PDFs...) is left out
SHOWN_MIME = (
    "text/html",
    "text/markdown",
    "text/latex",
    "image/svg+xml",
    "image/png",
    "image/jpeg",
    "image/gif",
    "application/json",
    "text/plain",
)
#: the largest embedded notebook (bytes of HTML), and the whole report's (``nbflow report``)
NOTEBOOK_BUDGET = 2 * 1024 * 1024
REPORT_BUDGET = 20 * 1024 * 1024
#: room the markup takes around a notebook's outputs and sources, as a share of the budget
_MARKUP_SHARE = 0.8

TAGS = frozenset(
    {"abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del", "details",
     "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
     "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub", "summary",
     "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul", "var"}
)  # fmt: skip
_ATTRIBUTES = frozenset({"class", "alt", "title", "colspan", "rowspan", "align", "width", "height"})
#: an image whose source was removed (a remote or script URL): nothing to show
_NO_SOURCE = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>")
_RAW_TEXT = re.compile(r"<(script|style|template)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class NotebookHtml:
    """A notebook rendered: its HTML (empty when it did not fit at all) and what was left out."""

    html: str
    omitted_outputs: int = 0
    omitted_bytes: int = 0
    #: the notebook could not be shown (too large even without its outputs, or unreadable): why
    not_shown: str | None = None


def _allowed(tag: str, name: str, value: str) -> bool:
    if name == "src":
        return tag == "img" and value.startswith("data:image/")
    return name in _ATTRIBUTES


def sanitize(fragment: str) -> str:
    """``fragment`` with only inert markup left (see the module's description)."""
    import bleach

    cleaner = bleach.Cleaner(tags=TAGS, attributes=_allowed, protocols={"data"}, strip=True, strip_comments=True)
    return _NO_SOURCE.sub("", cleaner.clean(_RAW_TEXT.sub("", fragment)))


def highlight_css(scope: str) -> str:
    """The code highlighting's stylesheet (pygments, as nbconvert highlights) under the selector
    ``scope``: pygments' default style, and monokai's for a dark system theme."""
    from pygments.formatters import HtmlFormatter

    light = HtmlFormatter(style="default").get_style_defs(f"{scope} .highlight")
    dark = HtmlFormatter(style="monokai").get_style_defs(f"{scope} .highlight")
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"


def _output_size(output: dict[str, Any]) -> int:
    if output.get("output_type") == "stream":
        return len(output.get("text", ""))
    if output.get("output_type") == "error":
        return sum(len(line) for line in output.get("traceback", []))
    return sum(len(v) if isinstance(v, str) else len(str(v)) for v in output.get("data", {}).values())


def _omitted_note(size: int) -> dict[str, Any]:
    text = f"[an output of {size / 1024:,.0f} KiB is left out of the report: open the executed notebook]"
    return {"output_type": "stream", "name": "stdout", "text": text}


def _keep_shown(nb: Any) -> None:
    """Drop every output kind the report does not show, and outputs left with nothing."""
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            if "data" in output:
                output["data"] = {k: v for k, v in output["data"].items() if k in SHOWN_MIME}
                if not output["data"]:
                    continue
            kept.append(output)
        cell["outputs"] = kept


def _fit_outputs(nb: Any, budget: int) -> tuple[int, int]:
    """Replace the largest outputs by a note until sources and outputs fit ``budget``: (count, bytes) left out."""
    outputs = [
        (cell, i, _output_size(out))
        for cell in nb.cells
        if cell.get("cell_type") == "code"
        for i, out in enumerate(cell.get("outputs", []))
    ]
    total = sum(len(cell.get("source", "")) for cell in nb.cells) + sum(size for *_, size in outputs)
    count = dropped = 0
    for cell, i, size in sorted(outputs, key=lambda o: o[2], reverse=True):
        if total <= budget:
            break
        cell["outputs"][i] = _omitted_note(size)
        total -= size
        count, dropped = count + 1, dropped + size
    return count, dropped


@functools.lru_cache(maxsize=1)
def _exporter() -> Any:
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="basic", exclude_anchor_links=True, embed_images=False)


def notebook_to_html(text: str, budget: int = NOTEBOOK_BUDGET) -> NotebookHtml:
    """The executed notebook ``text`` (its JSON, read as data: nothing runs) as inert HTML of at most ``budget`` bytes."""
    import nbformat

    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as e:  # the file is the user's data: any malformation is shown, not raised
        return NotebookHtml("", not_shown=f"it is not a notebook nbformat can read ({type(e).__name__})")
    nb = copy.deepcopy(nb)
    _keep_shown(nb)
    count, dropped = _fit_outputs(nb, int(budget * _MARKUP_SHARE))
    body, _ = _exporter().from_notebook_node(nb)
    html = sanitize(body)
    if len(html.encode("utf-8")) > budget:
        return NotebookHtml(
            "",
            count,
            dropped,
            not_shown=f"its HTML ({len(html) / 1024:,.0f} KiB) is over the {budget / 1024:,.0f} KiB budget",
        )
    return NotebookHtml(html, count, dropped)
