"""Benchmark a notebook that prints 120 MB in one cell: nbflow against papermill, memory and time.

    .venv/bin/python benchmarks/bench_output_flood.py               # 5 rounds, interleaved
    .venv/bin/python benchmarks/bench_output_flood.py --rounds 3 --lines 600

The notebook's cell is ``for i in range(1200): print('x' * 100_000)`` (``--lines``), then a
cell that prints one line. Each round runs, as whole processes, one after the other:

* ``nbflow run`` (``--force --workers 1 --warm-kernels 0``, default ``max_cell_output``);
* ``papermill`` (its command line, ``--no-progress-bar``).

Measured: wall time, and the peak resident memory of the orchestrator process itself, not
of the kernel it starts: its ``VmHWM`` (Linux's high-water mark of that process's own resident memory)
from ``/proc/<pid>/status``, sampled every 20 ms until it exits. (``ru_maxrss`` of
``RUSAGE_CHILDREN`` would count the kernel too: a reaped grandchild's peak goes to its
parent.) Also the size of the executed notebook each writes. Linux only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import nbformat
from bench_engine import measured as engine_measured
from nbformat.v4 import new_code_cell, new_notebook

HERE = Path(__file__).resolve().parent


def write_flood(folder: Path, lines: int) -> Path:
    """A one-notebook pipeline folder whose notebook prints ``lines`` lines of 100,000 characters."""
    folder.mkdir(parents=True)
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    params = new_code_cell("upstream = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        new_code_cell(f"for i in range({lines}):\n    print('x' * 100_000)"),
        new_code_cell("print('done')"),
    ]
    path = folder / "flood.ipynb"
    nbformat.write(nb, path)
    return path


def own_peak(pid: int) -> int:
    """The process's own peak resident memory so far (VmHWM), in bytes; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measured(cmd: list[str]) -> tuple[float, int]:
    """Run ``cmd``; (wall seconds, the peak memory of that process alone, in bytes)."""
    return engine_measured(cmd, memory=lambda proc: own_peak(proc.pid))


def summary(values: list[float], unit: str, fmt: str = "{:.0f}") -> str:
    med, low, high = statistics.median(values), min(values), max(values)
    return f"median {fmt.format(med)} {unit} (min {fmt.format(low)}, max {fmt.format(high)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lines", type=int, default=1200, help="lines of 100,000 characters (default 1200: 120 MB)")
    args = parser.parse_args()
    (HERE / ".work").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="nbflow-flood-", dir=HERE / ".work"))
    env_bin = Path(sys.executable).parent
    try:
        notebook = write_flood(work / "pipeline", args.lines)
        papermill_out = work / "papermill-out.ipynb"
        variants = {
            "nbflow": [
                sys.executable, "-m", "nbflow", "run", str(notebook.parent),
                "--force", "--no-progress", "--workers", "1", "--warm-kernels", "0",
            ],
            "papermill": [
                str(env_bin / "papermill"), str(notebook), str(papermill_out), "--no-progress-bar", "--cwd", str(work),
            ],
        }  # fmt: skip
        times: dict[str, list[float]] = {k: [] for k in variants}
        peaks: dict[str, list[float]] = {k: [] for k in variants}
        print(
            f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; {args.lines * 100_000 / 1e6:.0f} MB printed"
        )
        for n in range(args.rounds):
            for name, cmd in variants.items():  # interleaved, so drift hits both alike
                elapsed, peak = measured(cmd)
                times[name].append(elapsed)
                peaks[name].append(peak / 2**20)
                print(f"round {n + 1} {name}: {elapsed:.2f} s, {peak / 2**20:.0f} MiB", flush=True)
        ours = max((notebook.parent / "_nbflow" / "runs").rglob("attempt-1.ipynb"), key=lambda p: p.stat().st_mtime)
        print(f"\npeak memory of the orchestrator process alone (MiB), {args.rounds} rounds")
        for name in variants:
            print(f"  {name:<10} {summary(peaks[name], 'MiB')}")
        ratio = statistics.median(peaks["nbflow"]) / statistics.median(peaks["papermill"])
        print(f"  nbflow / papermill: {ratio:.2f}x")
        print("wall seconds")
        for name in variants:
            print(f"  {name:<10} {summary(times[name], 's', '{:.2f}')}")
        print(
            f"  nbflow / papermill: {statistics.median(times['nbflow']) / statistics.median(times['papermill']):.2f}x"
        )
        print("executed notebook")
        print(f"  nbflow     {ours.stat().st_size / 1e6:.1f} MB (the rest of the output counted, and the cut stated)")
        print(f"  papermill  {papermill_out.stat().st_size / 1e6:.1f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
