"""Benchmark nbflow against a sequential papermill loop on synthetic DAGs of trivial notebooks.

    .venv/bin/python benchmarks/bench_engine.py            # chain and wide DAGs of 10 and 30, 3 repeats
    .venv/bin/python benchmarks/bench_engine.py --quick    # 10 notebooks, 1 repeat

Each variant runs as a whole process, as a user would start it (interpreter start and
imports included): the papermill loop is one Python process calling
``papermill.execute_notebook`` for each notebook in topological order; nbflow is
``nbflow run`` with ``--workers 1`` and with its default (the CPU count). Medians of the
repeats, and ratios to the papermill loop. Also: a no-op rerun (everything up to date)
and validation of a 1,000-notebook folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

PAPERMILL_LOOP = r"""
import sys, papermill
from pathlib import Path
for path in sys.argv[1:]:
    p = Path(path)
    papermill.execute_notebook(str(p), str(p.with_suffix(".out.ipynb")), kernel_name="python3",
                               progress_bar=False, cwd=str(p.parent))
"""


def write_dag(root: Path, shape: str, n: int) -> list[Path]:
    """``chain``: n0 -> n1 -> ...; ``wide``: one root, n-2 tasks beside each other, one sink."""
    root.mkdir(parents=True)
    names = [f"n{i:03d}" for i in range(n)]
    ups: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        if shape == "chain":
            ups[name] = [names[i - 1]] if i else []
        else:
            ups[name] = [] if i == 0 else ([names[0]] if i < n - 1 else names[1:-1])
    paths = []
    for name in names:
        nb = new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
        params = new_code_cell(f"upstream = {ups[name]!r}")
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, new_code_cell("x = 1 + 1")]
        path = root / f"{name}.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    return paths  # already in a topological order


def timed(cmd: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{proc.stderr[-3000:]}")
    return elapsed


def clean(root: Path) -> None:
    shutil.rmtree(root / "_nbflow", ignore_errors=True)
    for out in root.glob("*.out.ipynb"):
        out.unlink()


def bench_dag(work: Path, shape: str, n: int, repeats: int) -> dict[str, float]:
    root = work / f"{shape}-{n}"
    paths = write_dag(root, shape, n)
    nbflow = [sys.executable, "-m", "nbflow", "run", str(root), "--no-progress"]
    variants = {
        "papermill loop": [sys.executable, "-c", PAPERMILL_LOOP, *map(str, paths)],
        "nbflow -w 1": [*nbflow, "--workers", "1"],
        "nbflow default": nbflow,
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for name, cmd in variants.items():  # interleaved, so drift hits every variant alike
            clean(root)
            times[name].append(timed(cmd))
    return {k: statistics.median(v) for k, v in times.items()}


def bench_noop(work: Path, n: int = 30, repeats: int = 5) -> float:
    """Median seconds for `nbflow run` when every task is up to date (nothing to do)."""
    root = work / f"noop-{n}"
    write_dag(root, "chain", n)
    timed([sys.executable, "-m", "nbflow", "run", str(root), "--no-progress"])
    return statistics.median(timed([sys.executable, "-m", "nbflow", "run", str(root), "--no-progress"])
                             for _ in range(repeats))


def bench_discovery(work: Path, n: int = 1000, repeats: int = 5) -> tuple[float, float]:
    """Median seconds to discover and validate ``n`` notebooks: in-process, and ``nbflow dag`` end to end."""
    from nbflow.pipeline import Pipeline

    root = work / f"discovery-{n}"
    write_dag(root, "wide", n)
    in_process = []
    for _ in range(repeats):
        start = time.perf_counter()
        Pipeline.from_dir(root)
        in_process.append(time.perf_counter() - start)
    cli = [timed([sys.executable, "-m", "nbflow", "dag", str(root), "--format", "json"]) for _ in range(repeats)]
    return statistics.median(in_process), statistics.median(cli)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10-notebook DAGs, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 30])
    args = parser.parse_args()
    sizes, repeats = ([10], 1) if args.quick else (args.sizes, args.repeats)

    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; medians of {repeats} run(s), seconds")
    work = Path(tempfile.mkdtemp(prefix="nbflow-bench-"))
    try:
        header = f"{'dag':<10} {'papermill loop':>15} {'nbflow -w 1':>12} {'ratio':>7} {'nbflow default':>15} {'speed-up':>9}"
        print(header)
        print("-" * len(header))
        for shape in ("chain", "wide"):
            for n in sizes:
                m = bench_dag(work, shape, n, repeats)
                base = m["papermill loop"]
                print(
                    f"{shape + '-' + str(n):<10} {base:>15.2f} {m['nbflow -w 1']:>12.2f} {m['nbflow -w 1'] / base:>6.2f}x "
                    f"{m['nbflow default']:>15.2f} {base / m['nbflow default']:>8.2f}x",
                    flush=True,
                )
        print(
            "\nratio: nbflow --workers 1 / papermill loop (lower is better); "
            "speed-up: papermill loop / nbflow default workers (higher is better)"
        )
        noop = bench_noop(work, max(sizes))
        print(f"\nno-op rerun (every task up to date), chain-{max(sizes)}: {noop:.2f} s for `nbflow run` end to end")
        in_process, cli = bench_discovery(work)
        print(
            f"\nvalidate 1,000 notebooks: {in_process * 1000:.0f} ms in-process (discover + build the DAG), "
            f"{cli * 1000:.0f} ms for `nbflow dag` end to end"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
