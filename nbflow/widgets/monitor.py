"""The dashboard's compact monitoring: the shown run's Gantt chart and a grid of recent runs x tasks."""

from __future__ import annotations

from pathlib import Path

import anywidget
import traitlets

_HERE = Path(__file__).parent


class MonitorView(anywidget.AnyWidget):
    """The timeline and the grid, drawn in the browser; click a grid cell to show that run and task.

    ``timeline_svg`` is :func:`nbflow.views.timeline.gantt_svg` of the run shown (sent only when it
    changes); ``grid`` is :func:`nbflow.views.grid.grid_json` of the recent runs; ``colours`` maps a
    state to its colour; ``shown`` is ``{"run": id, "task": name}``, what the dashboard shows.
    The front end sets ``clicked`` to ``{"run", "task", "attempt", "n"}`` (``n`` tells clicks apart).
    """

    _esm = _HERE / "monitor.js"
    _css = _HERE / "monitor.css"
    timeline_svg = traitlets.Unicode("").tag(sync=True)
    grid = traitlets.Dict().tag(sync=True)
    colours = traitlets.Dict().tag(sync=True)
    shown = traitlets.Dict().tag(sync=True)
    clicked = traitlets.Dict().tag(sync=True)
