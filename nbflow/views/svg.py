"""The pipeline graph as SVG: laid out by Graphviz's ``dot``, or by a simple fallback.

The layout depends only on the DAG, so it is made once per structure and cached; live
states are painted over it in the browser (``graph.js``) without laying it out again.
Every node is an SVG ``<g class="node">`` whose ``data-task-key`` is the task's name,
percent-encoded (:func:`svg_task_key`), whose ``<title>`` and first ``<text>``
show the name, and whose second ``<text>`` is a blank line where the browser writes the
task's duration.

No task name reaches Graphviz: it reads escapes (``\\N``, ``\\l``) and entities (``&lt;``) in
labels and writes entity-like text into its SVG unescaped. It lays out nodes named ``n0``,
``n1``... labelled with a stand-in of each name's width; the names are then written into
its SVG as text, escaped by the XML serializer. The SVG is well-formed XML whatever the names.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import quote, unquote

from nbflow.core.dag import DAG
from nbflow.views.dot import digraph

#: figure spaces: a blank second label line as wide as "12.3s", kept for the duration
_NOTE_PLACEHOLDER = "\u2007" * 6
_FONT = "sans-serif"
_CACHE_SIZE = 16
#: a line's baseline below the middle of its letters, in font sizes; the note line's size and gap to the box's bottom
_BASELINE = 0.35
_NOTE_SIZE = 9
_NOTE_GAP = 3
#: nodes + edges above which dot's layout passes are bounded (see dag_dot_source)
BIG_GRAPH = 200
_cache: OrderedDict[str, GraphLayout] = OrderedDict()
_lock = threading.Lock()
SVG_NS = "http://www.w3.org/2000/svg"
_XLINK_NS = "http://www.w3.org/1999/xlink"
#: what Graphviz measures instead of the characters it reads as escapes or entities (of about their width)
_STAND_INS = str.maketrans({"\\": "/", "&": "A"})

NO_DOT_NOTE = (
    "Graphviz's dot program was not found, so this is a simple layout. Install Graphviz for a better one "
    "(Debian/Ubuntu: apt install graphviz; conda: conda install graphviz; macOS: brew install graphviz)."
)


#: the attribute of a drawn task's ``<g class="node">`` that names it (see :func:`svg_task_key`)
TASK_KEY_ATTR = "data-task-key"
#: what cannot be drawn as it is: control characters, and what is not Unicode text (an undecodable
#: file name's surrogates, the noncharacters XML forbids)
_UNDRAWABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def _drawable(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the control character's picture: a newline shows as U+240A
    return "\u2421" if code == 0x7F else "\ufffd"


def shown_name(name: str) -> str:
    """A task name as a drawing shows it: as it is, but with control characters as their visible
    symbols and non-text as U+FFFD, so it is one line of well-formed XML."""
    return _UNDRAWABLE.sub(_drawable, name)


def svg_task_key(name: str) -> str:
    """The task of a drawn node, percent-encoded: ASCII, so it survives any markup and parser unchanged,
    and read back exactly (``decodeURIComponent`` in the browser, :func:`task_of_svg_key` here)."""
    return quote(name, safe="", errors="surrogateescape")


def task_of_svg_key(key: str) -> str:
    """The task name :func:`svg_task_key` encoded."""
    return unquote(key, errors="surrogateescape")


@dataclass(frozen=True)
class GraphLayout:
    """An SVG drawing of a DAG, and how it was made."""

    svg: str
    #: ``dot``; ``fallback`` when Graphviz is missing or failed; ``pending`` while dot works
    engine: str
    #: why the fallback was used, for the user; empty with dot
    note: str = ""


def dag_dot_source(dag: DAG, rankdir: str = "LR") -> str:
    """Graphviz source of the layout (states are painted later, so every node starts white)."""
    settings = [
        f"rankdir={'TB' if rankdir == 'TB' else 'LR'}; nodesep=0.25; ranksep=0.45;",
        # dot's coordinate pass (network simplex) grows fast with size: 300 tasks and 860
        # edges take 34 s by default, 0.6 s with it bounded; small graphs keep the default.
        *(["nslimit=2; mclimit=0.5;"] if is_big(dag) else []),
        f'node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="{_FONT}", fontsize=11,'
        ' margin="0.12,0.04"];',
        'edge [color="#80868b", arrowsize=0.7];',
    ]
    labels = {name: [f'label="{_stand_in(name)}\\n{_NOTE_PLACEHOLDER}"'] for name in dag.order}
    return digraph(dag, settings, _node_ids(dag), labels)


def _node_ids(dag: DAG) -> dict[str, str]:
    """Graphviz's name of each task's node: ``n`` and its place in the order."""
    return {name: f"n{i}" for i, name in enumerate(dag.order)}


def _stand_in(name: str) -> str:
    """What Graphviz measures for ``name``'s line: its shown text, minus ``\\`` and ``&``; the
    result holds no backslash, so escaping the quotes is all a DOT string needs."""
    return shown_name(name).translate(_STAND_INS).replace('"', '\\"')


def cached(dag: DAG) -> GraphLayout | None:
    """The dot layout of this structure, if one was made already."""
    with _lock:
        return _cache.get(_key(dag, dag_dot_source(dag)))


def is_big(dag: DAG) -> bool:
    """Whether dot may take long enough on this graph (a second or more) to lay it out in the background."""
    return len(dag.order) + len(dag.edges) > BIG_GRAPH


def _key(dag: DAG, source: str) -> str:
    """The cache key: the source (the structure and the stand-ins' widths), and the names it stands for."""
    names = json.dumps(dag.order)  # ASCII: an undecodable file name's surrogates are escaped too
    return hashlib.sha256(f"{source}\0{names}".encode()).hexdigest()


def layout(dag: DAG, use_dot: bool = True, rankdir: str = "LR") -> GraphLayout:
    """Lay the DAG out as SVG (cached by structure); falls back to :func:`layered_svg` without dot.

    ``rankdir`` is ``LR`` (left to right, for a notebook's width) or ``TB`` (top to bottom,
    for a narrow sidebar).
    """
    if not use_dot:
        return GraphLayout(layered_svg(dag), "fallback")
    source = dag_dot_source(dag, rankdir)
    key = _key(dag, source)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    result = _dot_layout(source, dag)
    if not result.svg:  # not cached: once Graphviz is installed, dot is used
        return GraphLayout(layered_svg(dag), "fallback", result.note)
    with _lock:
        _cache[key] = result
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def _dot_layout(source: str, dag: DAG) -> GraphLayout:
    import graphviz

    try:
        svg = graphviz.Source(source).pipe(format="svg", engine="dot", encoding="utf-8")
    except graphviz.ExecutableNotFound:
        return GraphLayout("", "fallback", NO_DOT_NOTE)
    except graphviz.CalledProcessError as e:  # a dot that crashes on this graph: still show something
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else str(e.stderr or "")
        return GraphLayout("", "fallback", f"Graphviz's dot failed ({stderr.strip()[:200]}); showing a simple layout.")
    try:
        return GraphLayout(_named(svg, dag), "dot")
    except (ET.ParseError, KeyError, ValueError) as e:  # an unexpected dot output: still show something
        return GraphLayout("", "fallback", f"Graphviz's drawing could not be read ({e}); showing a simple layout.")


def _named(svg: str, dag: DAG) -> str:
    """dot's SVG with the tasks' names written in: each node's title, label and ``data-task-key``,
    each edge's title. Returns the ``<svg>`` element alone (no prologue): it goes inside HTML."""
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", _XLINK_NS)
    root = ET.fromstring(svg)
    names = {node_id: name for name, node_id in _node_ids(dag).items()}
    for g in root.iter(f"{{{SVG_NS}}}g"):
        kind = g.get("class")
        title = g.find(f"{{{SVG_NS}}}title")
        if kind not in ("node", "edge") or title is None or not title.text:
            continue
        if kind == "edge":
            a, b = title.text.split("->")
            title.text = f"{shown_name(names[a])} \u2192 {shown_name(names[b])}"
            continue
        name = names[title.text]
        title.text = shown_name(name)
        g.set(TASK_KEY_ATTR, svg_task_key(name))
        texts = g.findall(f"{{{SVG_NS}}}text")
        if texts:
            texts[0].text = shown_name(name)
            _centre_label(g, texts)
    return ET.tostring(root, encoding="unicode")


_POINT = re.compile(r"(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)")


def _centre_label(g: ET.Element, texts: list[ET.Element]) -> None:
    """Put the name's line in the middle of its box (dot centres the name and the note's line
    together, which leaves the name in the upper half), and the note, smaller, under it."""
    shape = next((el for el in g if el.tag in (f"{{{SVG_NS}}}path", f"{{{SVG_NS}}}polygon")), None)
    ys = [
        float(y) for _, y in _POINT.findall((shape.get("d") or shape.get("points") or "") if shape is not None else "")
    ]
    if not ys:
        return
    top, bottom = min(ys), max(ys)
    size = float(texts[0].get("font-size") or 11)
    texts[0].set("y", f"{(top + bottom) / 2 + size * _BASELINE:.2f}")
    if len(texts) > 1:
        texts[-1].set("y", f"{bottom - _NOTE_GAP:.2f}")
        texts[-1].set("font-size", f"{_NOTE_SIZE:.2f}")


def levels(dag: DAG) -> dict[str, int]:
    """Each task's column: the length of the longest path of upstreams leading to it."""
    level: dict[str, int] = {}
    for name in dag.order:  # topological: upstreams come first
        ups = dag.upstreams[name]
        level[name] = 1 + max(level[u] for u in ups) if ups else 0
    return level


def layered_svg(dag: DAG) -> str:
    """A plain left-to-right drawing, one column per level; needs nothing but Python."""
    col_w, row_h, box_w, box_h, pad = 190, 50, 160, 40, 12
    level = levels(dag)
    rows: dict[int, int] = {}
    pos: dict[str, tuple[int, int]] = {}
    for name in dag.order:
        col = level[name]
        row = rows.get(col, 0)
        rows[col] = row + 1
        pos[name] = (pad + col * col_w, pad + row * row_h)
    width = pad * 2 + (max(level.values(), default=0) + 1) * col_w
    height = pad * 2 + max(rows.values(), default=1) * row_h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}pt" height="{height}pt" '
        f'viewBox="0 0 {width} {height}">',
        '<defs><marker id="nbflow-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#80868b"/></marker></defs>',
    ]
    for a, b in dag.edges:
        (ax, ay), (bx, by) = pos[a], pos[b]
        x1, y1, x2, y2 = ax + box_w, ay + box_h / 2, bx, by + box_h / 2
        mid = (x1 + x2) / 2
        parts.append(
            f'<g class="edge"><path d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}" fill="none" '
            'stroke="#80868b" marker-end="url(#nbflow-arrow)"/></g>'
        )
    for name in dag.order:
        x, y = pos[name]
        shown = shown_name(name)
        label = html.escape(shown if len(shown) <= 24 else shown[:23] + "…")
        parts.append(
            f'<g class="node" {TASK_KEY_ATTR}="{svg_task_key(name)}"><title>{html.escape(shown)}</title>'
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" fill="#ffffff" stroke="#000000"/>'
            f'<text x="{x + box_w / 2}" y="{y + box_h / 2 + 11 * _BASELINE}" text-anchor="middle" '
            f'font-family="{_FONT}" font-size="11">{label}</text>'
            f'<text x="{x + box_w / 2}" y="{y + box_h - _NOTE_GAP}" text-anchor="middle" font-family="{_FONT}" '
            f'font-size="{_NOTE_SIZE}">{_NOTE_PLACEHOLDER}</text></g>'
        )
    parts.append("</svg>")
    return "\n".join(parts)
