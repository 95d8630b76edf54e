"""Compare this checkout of nbflow with another one, command by command, interleaved.

    .venv/bin/python benchmarks/bench_versions.py ../nbflow-main          # another checkout
    git worktree add /tmp/before HEAD~10 && .venv/bin/python benchmarks/bench_versions.py /tmp/before

Each variant runs as a whole process with this environment's Python, the other checkout's
package first on ``PYTHONPATH``; the two alternate, repeat after repeat, so that a noisy
machine slows both alike. Prints each measure's median and minimum for both and the ratio
of the medians (this checkout / the other; below 1 is faster):

* ``nbflow dag`` of 1,000 trivial notebooks, discovery cache present (start-up + discovery);
* discovery + validation of the same 1,000 notebooks in-process, cold (no cache);
* a no-op ``nbflow run`` of a 100-notebook chain that is up to date (start-up, discovery,
  the store, the planner).

The chain is run once per checkout first (kernels; about a minute).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_engine import timed, write_dag

HERE = Path(__file__).resolve().parent
THIS = HERE.parent

COLD_DISCOVERY = r"""
import shutil, sys, time
from pathlib import Path
root = Path(sys.argv[1])
shutil.rmtree(root / "_nbflow", ignore_errors=True)
from nbflow.pipeline import Pipeline
start = time.perf_counter()
Pipeline.from_dir(root, save_cache=False)
print(time.perf_counter() - start)
"""


def in_process_seconds(checkout: Path, root: Path) -> float:
    """Seconds of a cold discovery + validation of ``root`` by ``checkout``'s nbflow, in a process of its own."""
    out = subprocess.run(
        [sys.executable, "-c", COLD_DISCOVERY, str(root)],
        env={**os.environ, "PYTHONPATH": str(checkout)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("other", type=Path, help="the other checkout (the folder holding its nbflow/)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    other = args.other.resolve()
    if not (other / "nbflow" / "__init__.py").is_file():
        raise SystemExit(f"{other} holds no nbflow/ package")
    checkouts = {"this": THIS, "other": other}
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="nbflow-versions-") as tmp:
        work = Path(tmp)
        wide, chain = {}, {}
        for label in checkouts:
            wide[label] = work / f"wide-{label}"
            write_dag(wide[label], "wide", 1000)
            chain[label] = work / f"chain-{label}"
            write_dag(chain[label], "chain", 100)
        time.sleep(2.1)  # files this fresh are never cached by discovery
        for label, checkout in checkouts.items():
            env = {"PYTHONPATH": str(checkout)}
            timed([sys.executable, "-m", "nbflow", "dag", str(wide[label]), "--format", "json"], env=env)
            print(f"running the 100-notebook chain once with {label} ({checkout})", flush=True)
            timed([sys.executable, "-m", "nbflow", "run", str(chain[label]), "--no-progress"], env=env)
        for _ in range(args.repeats):
            for label, checkout in checkouts.items():
                env = {"PYTHONPATH": str(checkout)}
                row = results.setdefault(label, {})
                dag = [sys.executable, "-m", "nbflow", "dag", str(wide[label]), "--format", "json"]
                row.setdefault("nbflow dag, 1,000 notebooks, cached", []).append(timed(dag, env=env))
                row.setdefault("discovery, 1,000 notebooks, cold, in-process", []).append(
                    in_process_seconds(checkout, work / f"wide-{label}")
                )
                noop = [sys.executable, "-m", "nbflow", "run", str(chain[label]), "--no-progress"]
                row.setdefault("no-op nbflow run, 100-notebook chain", []).append(timed(noop, env=env))
            # the cold discovery removed the cache: make it again for the next `nbflow dag`
            for label, checkout in checkouts.items():
                timed(
                    [sys.executable, "-m", "nbflow", "dag", str(wide[label]), "--format", "json"],
                    env={"PYTHONPATH": str(checkout)},
                )
    print(f"\nthis: {THIS}\nother: {other}\n{args.repeats} interleaved repeats; seconds, median (min)\n")
    print(f"{'measure':48} {'this':>16} {'other':>16} {'ratio':>7}")
    for measure in results["this"]:
        a, b = results["this"][measure], results["other"][measure]
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{measure:48} {ma:8.3f} ({min(a):.3f}) {mb:8.3f} ({min(b):.3f}) {ma / mb:6.2f}x")


if __name__ == "__main__":
    main()
