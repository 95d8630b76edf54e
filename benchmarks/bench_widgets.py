"""Benchmark the dashboard: how soon a task's state change reaches the widget, and 300-task graphs.

    .venv/bin/python benchmarks/bench_widgets.py               # 3 runs of a 12-task chain per mode
    .venv/bin/python benchmarks/bench_widgets.py --repeats 1 --tasks 6

* **Latency** — time from a task's state change (the time the run recorded for it: a
  task's start, or the end of its attempt) to the change of the widget's model (the
  ``paint`` trait the browser follows), for a run started from the dashboard (it hears
  the run as a listener) and for ``nbflow run`` in another process (the dashboard
  notices the state store changing). Medians and 90th percentiles over every change.
* **Rendering 300 tasks** — Graphviz layout (cold), the fallback layout, the dashboard's
  construction, computing the states to send, the idle cost of watching the store, and,
  in Debian's Chromium (Playwright), the first render of the SVG and each repaint.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the bare page that runs graph.js


def write_chain(root: Path, n: int, sleep: float) -> None:
    for i in range(n):
        nb = new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "python3"}
        ups = [f"t{i - 1:02d}"] if i else []
        cell = new_code_cell(f"upstream = {ups!r}")
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [cell, new_code_cell(f"import time\ntime.sleep({sleep})")]
        nbformat.write(nb, root / f"t{i:02d}.ipynb")


def _epoch(ts: datetime) -> float:
    return ts.replace(tzinfo=timezone.utc).timestamp()


def latencies(root: Path, how: str, poll: float = 0.2) -> list[float]:
    """Seconds from each recorded state change (running, success) to the widget's model change."""
    from nbflow.pipeline import Pipeline
    from nbflow.store.duckdb import DuckDBRunStore
    from nbflow.widgets import Dashboard

    pipeline = Pipeline.from_dir(root)
    dash = Dashboard(pipeline, poll_interval=poll)
    first_seen: dict[tuple[str, str], float] = {}

    def seen(change: dict) -> None:
        now = time.time()
        for name, (state, _colour, _note) in change["new"].items():
            first_seen.setdefault((name, state), now)

    dash.graph.observe(seen, names="paint")
    try:
        if how == "listener":
            dash.run(force=True)
            result = dash.wait(300)
            run_id = result.run_id
        else:
            proc = subprocess.run(
                [sys.executable, "-m", "nbflow", "run", str(root), "--force", "--json"],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
            import json

            run_id = json.loads(proc.stdout)["run_id"]
            deadline = time.monotonic() + 10
            while ((f"t{len(pipeline.specs) - 1:02d}", "success") not in first_seen) and time.monotonic() < deadline:
                time.sleep(0.05)
        with DuckDBRunStore(pipeline.state_path) as store:
            tasks = store.get_tasks(run_id)
    finally:
        dash.close()
    out = []
    for name, task in tasks.items():
        for state, when in (("running", task.started_at), ("success", task.ended_at)):
            if when is not None and (name, state) in first_seen:
                out.append(first_seen[(name, state)] - _epoch(when))
    return out


def median_of(f: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def render_figures(n: int = 300) -> None:
    from graphpage import mount, repaint
    from labserver import CHROMIUM_ARGS, chromium_path

    from nbflow import states
    from nbflow.core.dag import build_dag
    from nbflow.pipeline import Pipeline
    from nbflow.project.specs import ParametersDecl, TaskSpec
    from nbflow.store.base import TaskRecord
    from nbflow.store.watch import store_stamp
    from nbflow.views import live as model
    from nbflow.views import svg as layout
    from nbflow.widgets import Dashboard

    specs = []
    for i in range(n):
        ups = tuple(f"t{j:03d}" for j in (i - 1, i - 7, i - 31) if j >= 0)
        specs.append(
            TaskSpec(f"t{i:03d}", None, f"t{i:03d}.ipynb", "python3", "python", ParametersDecl(upstream=ups), 0, "")
        )
    dag = build_dag(specs)

    def cold_dot() -> object:
        layout._cache.clear()
        return layout.layout(dag)

    print(f"\n## Rendering a {n}-task graph ({len(dag.edges)} edges)")
    print(f"  Graphviz layout, cold:          {median_of(cold_dot, 5) * 1000:8.1f} ms (median of 5)")
    print(f"  fallback layout (no Graphviz):  {median_of(lambda: layout.layout(dag, use_dot=False), 5) * 1000:8.1f} ms")
    svg = layout.layout(dag).svg
    print(f"  SVG size:                       {len(svg) / 1024:8.1f} KiB (sent once per structure)")
    tasks = {name: TaskRecord("r", name, "success", 1) for name in dag.order}
    paint = model.graph_paint(dag, tasks)
    print(
        f"  states to send (all tasks):     {median_of(lambda: model.graph_paint(dag, tasks), 21) * 1000:8.2f} ms, "
        f"{len(str(paint).encode()) / 1024:.1f} KiB"
    )

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for spec in specs:
            nb = new_notebook()
            nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "python3"}
            cell = new_code_cell(f"upstream = {list(spec.upstream)!r}")
            cell.metadata["tags"] = ["parameters"]
            nb.cells = [cell]
            nbformat.write(nb, root / f"{spec.name}.ipynb")
        pipeline = Pipeline.from_dir(root)

        def build() -> None:
            Dashboard(pipeline).close()

        layout._cache.clear()
        print(
            f"  dashboard for it, new layout:   {median_of(build, 1) * 1000:8.1f} ms (a plain drawing; dot's follows)"
        )
        print(f"  dashboard for it, layout known: {median_of(build, 5) * 1000:8.1f} ms (discovery not included)")
        state = pipeline.state_path
        state.parent.mkdir(exist_ok=True)
        tick = median_of(lambda: store_stamp(state), 201)
        print(
            f"  watching the store, idle:       {tick * 1e6:8.1f} µs a tick = {tick / 0.2 * 100:.3f} % of a core at 5 ticks/s"
        )

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        firsts = [mount(page, svg, model.graph_paint(dag, {})) for _ in range(5)]
        repaints = []
        for i in range(20):
            state = ("running", "success")[i % 2]
            repaints.append(repaint(page, {n: [state, states.COLOURS[state], "1.0s"] for n in dag.order}))
        browser.close()
    print(f"  Chromium, first render:         {statistics.median(firsts):8.1f} ms (median of 5)")
    print(
        f"  Chromium, repaint all states:   {statistics.median(repaints):8.1f} ms (median of 20; max {max(repaints):.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=12)
    parser.add_argument("--skip-render", action="store_true")
    parser.add_argument("--poll", type=float, default=0.2, help="the dashboard's poll interval (its default: 0.2 s)")
    args = parser.parse_args()
    print(f"# nbflow dashboard benchmark ({os.cpu_count()} cores)")
    print(f"\n## Latency: task state change -> widget model change ({args.tasks}-task chain, {args.repeats} runs each)")
    for how, label in (("listener", "run started from the dashboard"), ("process", "nbflow run in another process")):
        values: list[float] = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                write_chain(Path(tmp), args.tasks, 0.3)
                values += latencies(Path(tmp), how, args.poll)
        values.sort()
        p90 = values[int(0.9 * (len(values) - 1))]
        print(
            f"  {label:34s} median {statistics.median(values) * 1000:6.1f} ms   p90 {p90 * 1000:6.1f} ms   "
            f"max {values[-1] * 1000:6.1f} ms   ({len(values)} changes)"
        )
    if not args.skip_render:
        render_figures()


if __name__ == "__main__":
    main()
