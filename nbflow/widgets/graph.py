"""The graph widget: Graphviz's layout in the browser, painted with live task states."""

from __future__ import annotations

from pathlib import Path

import anywidget
import traitlets

_HERE = Path(__file__).parent


class GraphView(anywidget.AnyWidget):
    """An SVG of the DAG; click a task to select it.

    ``svg`` is the layout (see :mod:`nbflow.views.svg`), sent when the structure
    changes; ``paint`` maps each task to ``[state, colour, note]`` and is all that is sent
    while a run progresses; ``selected`` is the chosen task, set from either side.
    """

    _esm = _HERE / "graph.js"
    _css = _HERE / "graph.css"
    svg = traitlets.Unicode("").tag(sync=True)
    paint = traitlets.Dict().tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
