"""A bare page that runs the graph widget's front end (``graph.js``) without Jupyter.

The page gives ``graph.js`` a model object with anywidget's interface (get, set, on, off,
save_changes); the code under test is graph.js itself, loaded from the package.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbflow.widgets

GRAPH_JS = Path(nbflow.widgets.__file__).with_name("graph.js")
GRAPH_CSS = Path(nbflow.widgets.__file__).with_name("graph.css")

PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>%s</style></head>
<body><div id="host" style="width:900px"></div></body></html>"""

MOUNT = """async ([source, state]) => {
  const listeners = {};
  window.saved = 0;
  const data = {...state};
  const model = {
    get: (k) => data[k],
    set: (k, v) => { data[k] = v; (listeners['change:' + k] || []).forEach(f => f()); },
    on: (ev, f) => { (listeners[ev] = listeners[ev] || []).push(f); },
    off: (ev, f) => { listeners[ev] = (listeners[ev] || []).filter(g => g !== f); },
    save_changes: () => { window.saved = (window.saved || 0) + 1; },
  };
  const url = URL.createObjectURL(new Blob([source], {type: 'text/javascript'}));
  const mod = await import(url);
  window.model = model;
  const t0 = performance.now();
  mod.default.render({model, el: document.getElementById('host')});
  return performance.now() - t0;
}"""


def mount(page, svg: str, paint: dict, selected: str = "") -> float:
    """Open the bare page, render the graph; returns the first render's time in ms."""
    page.set_content(PAGE % GRAPH_CSS.read_text())
    return page.evaluate(MOUNT, [GRAPH_JS.read_text(), {"svg": svg, "paint": paint, "selected": selected}])


def repaint(page, paint: dict) -> float:
    """Send new states as the kernel would; returns the time the front end took, in ms."""
    return page.evaluate(
        "(p) => { const t0 = performance.now(); window.model.set('paint', p); return performance.now() - t0; }",
        json.loads(json.dumps(paint)),
    )
