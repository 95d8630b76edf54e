"""Benchmark the JupyterLab pipeline panel in a real JupyterLab and Debian's Chromium.

    .venv/bin/python benchmarks/bench_panel.py              # 5 runs of the example pipeline
    .venv/bin/python benchmarks/bench_panel.py --runs 3

* **Click to running** — from the click on Run to the first node of the graph showing
  ``running`` (the panel asks the server, which starts ``nbflow run`` in its own process).
* **Update latency** — from each task's recorded state change (its start, or the end of its
  attempt, as the run process records them) to the panel's node changing state in the page
  (a MutationObserver stamps each change with the page's clock; same machine, same clock).
* **Bundle size** — the prebuilt extension's JavaScript (what the browser downloads).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from datetime import timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

PANEL = "#nbflow-pipeline-panel"
OBSERVE = """(sel) => {
  // each node's transitions from now on, stamped with the page's clock
  window.nbflowChanges = [];
  const last = new Map([...document.querySelectorAll(sel + ' g.node')].map(g => [g.dataset.task, g.dataset.state]));
  new MutationObserver(records => {
    for (const r of records) {
      const g = r.target;
      if (g.dataset.state !== last.get(g.dataset.task)) {
        last.set(g.dataset.task, g.dataset.state);
        window.nbflowChanges.push([g.dataset.task, g.dataset.state, Date.now()]);
      }
    }
  }).observe(document.querySelector(sel), {subtree: true, attributes: true, attributeFilter: ['data-state']});
}"""
CLICK_RUN = "(sel) => { document.querySelector(sel + ' .nbflow-run').click(); return Date.now(); }"


def main() -> None:
    from labserver import CHROMIUM_ARGS, chromium_path, jupyter_lab
    from playwright.sync_api import sync_playwright

    from nbflow.store.duckdb import DuckDBRunStore

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    static = REPO / "nbflow" / "labextension" / "static"
    js = sorted(static.glob("*.js"))
    print("# nbflow JupyterLab panel benchmark")
    print(f"\nbundle: {sum(p.stat().st_size for p in js) / 1024:.1f} KiB of JavaScript in {len(js)} files")

    click_to_running: list[float] = []
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "example"
        shutil.copytree(REPO / "notebooks", root, ignore=shutil.ignore_patterns("_nbflow", "output"))
        with jupyter_lab(root, Path(tmp) / "jupyter") as lab, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{lab.url}/lab?token={lab.token}")
            page.click(".jp-SideBar [data-id='nbflow-pipeline-panel']", timeout=90_000)
            page.wait_for_selector(f"{PANEL} g.node", timeout=60_000)
            page.check(f"{PANEL} .nbflow-force input")
            for _ in range(args.runs):
                before = page.inner_text(f"{PANEL} .nbflow-summary")
                page.evaluate(OBSERVE, PANEL)
                clicked = page.evaluate(CLICK_RUN, PANEL)
                page.wait_for_function(
                    "(sel) => [...document.querySelectorAll(sel + ' g.node')].some(g => g.dataset.state === 'running')",
                    arg=PANEL,
                    timeout=60_000,
                )
                page.wait_for_function(
                    "([sel, before]) => { const s = document.querySelector(sel + ' .nbflow-summary').textContent;"
                    " return s !== before && s.includes(': success'); }",
                    arg=[PANEL, before],
                    timeout=180_000,
                )
                changes = page.evaluate("() => window.nbflowChanges")
                first_running = min(t for _task, state, t in changes if state == "running")
                click_to_running.append((first_running - clicked) / 1000)
                with DuckDBRunStore(root / "_nbflow" / "state.duckdb") as store:
                    tasks = store.get_tasks(store.latest_run().run_id)
                for task, state, t in changes:
                    record = tasks.get(task)
                    when = None if record is None else record.started_at if state == "running" else record.ended_at
                    if when is not None and state in ("running", "success"):
                        latencies.append(t / 1000 - when.replace(tzinfo=timezone.utc).timestamp())
            browser.close()
    latencies.sort()
    print(
        f"\nclick Run -> first node running: median {statistics.median(click_to_running):.2f} s "
        f"(min {min(click_to_running):.2f}, max {max(click_to_running):.2f}; {len(click_to_running)} runs)"
    )
    print(
        f"task state change -> panel shows it: median {statistics.median(latencies) * 1000:.0f} ms, "
        f"p90 {latencies[int(0.9 * (len(latencies) - 1))] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms "
        f"({len(latencies)} changes; the panel polls 4 times a second during a run)"
    )


if __name__ == "__main__":
    main()
