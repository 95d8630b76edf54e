"""Benchmark nbflow against a papermill loop and Ploomber on synthetic DAGs of trivial notebooks.

    .venv/bin/python benchmarks/bench_engine.py                  # chain and wide, 10 and 30, 3 repeats
    .venv/bin/python benchmarks/bench_engine.py --sizes 100 --repeats 1
    .venv/bin/python benchmarks/bench_engine.py --quick          # 10 notebooks, 1 repeat
    .venv/bin/python benchmarks/bench_engine.py --no-ploomber    # skip Ploomber (no install)

Every variant runs as a whole process, as a user would start it (interpreter start and
imports included), on the same DAG in the same run, interleaved so that drift hits all:

* papermill loop: one Python process calling ``papermill.execute_notebook`` per notebook,
  in topological order;
* Ploomber, serial and parallel executors (``ploomber build --force``), installed into
  its own virtual environment under ``benchmarks/.work/`` on first use;
* nbflow: ``nbflow run`` with ``--workers 1`` without and with kernels started ahead of
  time, and with its defaults (workers = CPU count, 2 warm kernels).

Prints medians and ratios, and the peak memory of each variant's whole process tree
(the sum of the resident memory of the process and all its descendants, sampled every
20 ms). Also: a no-op rerun (everything up to date) and discovery + validation of 1,000
notebooks, cold and with unchanged files.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import psutil
from nbformat.v4 import new_code_cell, new_notebook

HERE = Path(__file__).resolve().parent
PLOOMBER_VENV = HERE / ".work" / "ploomber-venv"
PLOOMBER_REQUIREMENTS = ["ploomber==0.23.3", "ipykernel"]
PLOOMBER_ENV = {"PLOOMBER_STATS_ENABLED": "false", "PLOOMBER_VERSION_CHECK_DISABLED": "true"}

PAPERMILL_LOOP = r"""
import sys, papermill
from pathlib import Path
for path in sys.argv[1:]:
    p = Path(path)
    papermill.execute_notebook(str(p), str(p.with_suffix(".out.ipynb")), kernel_name="python3",
                               progress_bar=False, cwd=str(p.parent))
"""


def dag_upstreams(shape: str, n: int) -> dict[str, list[str]]:
    """``chain``: n0 -> n1 -> ...; ``wide``: one root, n-2 tasks beside each other, one sink."""
    names = [f"n{i:03d}" for i in range(n)]
    ups: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        if shape == "chain":
            ups[name] = [names[i - 1]] if i else []
        else:
            ups[name] = [] if i == 0 else ([names[0]] if i < n - 1 else names[1:-1])
    return ups


def write_dag(root: Path, shape: str, n: int, for_ploomber: bool = False) -> list[Path]:
    """Write the DAG's notebooks (topological order); for Ploomber, with ``product`` and a pipeline.yaml."""
    root.mkdir(parents=True)
    paths = []
    for name, ups in dag_upstreams(shape, n).items():
        nb = new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
        declared = f"upstream = {ups or None!r}\nproduct = None" if for_ploomber else f"upstream = {ups!r}"
        params = new_code_cell(declared)
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, new_code_cell("x = 1 + 1")]
        path = root / f"{name}.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    if for_ploomber:
        tasks = "".join(f"  - source: {p.name}\n    product: out/{p.name}\n" for p in paths)
        for executor in ("serial", "parallel"):
            (root / f"pipeline.{executor}.yaml").write_text(f"executor: {executor}\ntasks:\n{tasks}")
    return paths


def tree_rss(proc: psutil.Process) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    total = 0
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in family:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def measured(
    cmd: list[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    memory: Callable[[psutil.Process], int] = tree_rss,
) -> tuple[float, int]:
    """Run ``cmd``; (wall seconds, peak of ``memory`` sampled every 20 ms: by default its process tree's, in bytes)."""
    peak = 0
    start = time.perf_counter()
    proc = psutil.Popen(
        cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, memory(proc))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{err[-3000:]}")
    return elapsed, peak


def timed(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    return measured(cmd, cwd, env)[0]


def ploomber_bin() -> Path | None:
    """The ``ploomber`` command of the benchmark's own environment, installed if missing; None if it cannot be."""
    exe = PLOOMBER_VENV / "bin" / "ploomber"
    if exe.exists():
        return exe
    print(f"installing {', '.join(PLOOMBER_REQUIREMENTS)} into {PLOOMBER_VENV} ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(PLOOMBER_VENV)], check=True)
        pip = [str(PLOOMBER_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *PLOOMBER_REQUIREMENTS], check=True, stdout=subprocess.DEVNULL)
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"Ploomber could not be installed ({e}); its columns are left out.")
        shutil.rmtree(PLOOMBER_VENV, ignore_errors=True)
        return None
    return exe


def clean(root: Path) -> None:
    shutil.rmtree(root / "_nbflow", ignore_errors=True)
    shutil.rmtree(root / "out", ignore_errors=True)
    for out in root.glob("*.out.ipynb"):
        out.unlink()


def bench_dag(work: Path, shape: str, n: int, repeats: int, ploomber: Path | None) -> dict[str, tuple[float, float]]:
    """Median (seconds, peak MiB) of each variant on one DAG."""
    root = work / f"{shape}-{n}"
    paths = write_dag(root, shape, n)
    nbflow = [sys.executable, "-m", "nbflow", "run", str(root), "--no-progress"]
    variants: dict[str, tuple[list[str], Path | None, dict[str, str] | None]] = {
        "papermill loop": ([sys.executable, "-c", PAPERMILL_LOOP, *map(str, paths)], None, None),
    }
    if ploomber is not None:
        proot = work / f"{shape}-{n}-ploomber"
        write_dag(proot, shape, n, for_ploomber=True)
        for executor in ("serial", "parallel"):
            cmd = [str(ploomber), "build", "--force", "--entry-point", f"pipeline.{executor}.yaml"]
            variants[f"ploomber {executor}"] = (cmd, proot, PLOOMBER_ENV)
    variants["nbflow -w1 no warm"] = ([*nbflow, "--workers", "1", "--warm-kernels", "0"], None, None)
    variants["nbflow -w1"] = ([*nbflow, "--workers", "1"], None, None)
    variants["nbflow default"] = (nbflow, None, None)
    times: dict[str, list[float]] = {k: [] for k in variants}
    peaks: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for name, (cmd, cwd, env) in variants.items():  # interleaved, so drift hits every variant alike
            clean(root)
            if cwd is not None:
                clean(cwd)
            elapsed, peak = measured(cmd, cwd, env)
            times[name].append(elapsed)
            peaks[name].append(peak / 2**20)
    return {k: (statistics.median(times[k]), statistics.median(peaks[k])) for k in variants}


def bench_noop(work: Path, n: int, repeats: int = 5, ploomber: Path | None = None) -> tuple[float, float | None]:
    """Median seconds for a rerun with everything up to date: nbflow, and Ploomber (serial)."""
    root = work / f"noop-{n}"
    write_dag(root, "chain", n)
    nbflow = [sys.executable, "-m", "nbflow", "run", str(root), "--no-progress"]
    timed(nbflow)
    ours = statistics.median(timed(nbflow) for _ in range(repeats))
    theirs = None
    if ploomber is not None:
        proot = work / f"noop-{n}-ploomber"
        write_dag(proot, "chain", n, for_ploomber=True)
        cmd = [str(ploomber), "build", "--entry-point", "pipeline.serial.yaml"]
        timed(cmd, proot, PLOOMBER_ENV)
        theirs = statistics.median(timed(cmd, proot, PLOOMBER_ENV) for _ in range(repeats))
    return ours, theirs


def bench_discovery(work: Path, n: int = 1000, repeats: int = 5) -> dict[str, float]:
    """Median seconds to discover and validate ``n`` notebooks, cold (no cache) and with unchanged files.

    Measured in-process (``Pipeline.from_dir``) and end to end (``nbflow dag``), on trivial
    notebooks and on notebooks that each carry 100 KB of outputs.
    """
    from nbflow.paths import CACHE_FILE_NAME
    from nbflow.pipeline import Pipeline

    figures = {}
    for label, payload in (("trivial", 0), ("100 KB outputs", 100_000)):
        root = work / f"discovery-{n}-{payload}"
        write_dag(root, "wide", n)
        if payload:
            for path in root.glob("*.ipynb"):
                nb = nbformat.read(path, as_version=4)
                nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * payload)]
                nbformat.write(nb, path)
        cache = root / "_nbflow" / CACHE_FILE_NAME
        time.sleep(2.1)  # files this fresh are never cached (see nbflow.kinds.discovery)
        for mode in ("cold", "unchanged"):
            in_process, cli = [], []
            for _ in range(repeats):
                if mode == "cold":
                    cache.unlink(missing_ok=True)
                start = time.perf_counter()
                Pipeline.from_dir(root)
                in_process.append(time.perf_counter() - start)
                if mode == "cold":
                    cache.unlink(missing_ok=True)
                cli.append(timed([sys.executable, "-m", "nbflow", "dag", str(root), "--format", "json"]))
            figures[f"{label}, {mode}, in-process"] = statistics.median(in_process)
            figures[f"{label}, {mode}, nbflow dag"] = statistics.median(cli)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10-notebook DAGs, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--no-ploomber", action="store_true", help="leave Ploomber out (no install)")
    parser.add_argument("--skip-extras", action="store_true", help="only the DAG runs (no no-op rerun, no discovery)")
    parser.add_argument("--discovery-only", action="store_true", help="only discovery + validation of 1,000 notebooks")
    args = parser.parse_args()
    if args.discovery_only:
        (HERE / ".work").mkdir(exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="nbflow-bench-", dir=HERE / ".work"))
        try:
            print("discover + validate 1,000 notebooks (median seconds)")
            for label, seconds in bench_discovery(work).items():
                print(f"  {label:<40} {seconds * 1000:>6.0f} ms")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    sizes, repeats = ([10], 1) if args.quick else (args.sizes, args.repeats)
    ploomber = None if args.no_ploomber else ploomber_bin()

    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; medians of {repeats} run(s)")
    (HERE / ".work").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="nbflow-bench-", dir=HERE / ".work"))
    try:
        results = {}
        for shape in ("chain", "wide"):
            for n in sizes:
                results[f"{shape}-{n}"] = m = bench_dag(work, shape, n, repeats, ploomber)
                print(
                    f"{shape}-{n}: " + ", ".join(f"{k} {t:.2f} s / {mb:.0f} MiB" for k, (t, mb) in m.items()),
                    flush=True,
                )
        names = list(next(iter(results.values())))
        print("\nwall seconds (median)")
        print(f"{'dag':<10}" + "".join(f"{n:>20}" for n in names))
        for dag, m in results.items():
            print(f"{dag:<10}" + "".join(f"{m[n][0]:>20.2f}" for n in names))
        print("\npeak memory of the process tree, MiB (median)")
        print(f"{'dag':<10}" + "".join(f"{n:>20}" for n in names))
        for dag, m in results.items():
            print(f"{dag:<10}" + "".join(f"{m[n][1]:>20.0f}" for n in names))
        print("\nratios (lower is better for nbflow)")
        ratios = [("nbflow -w1", "papermill loop"), ("nbflow -w1", "nbflow -w1 no warm")]
        if ploomber is not None:
            ratios += [("nbflow -w1", "ploomber serial"), ("nbflow default", "ploomber parallel")]
        for dag, m in results.items():
            parts = [f"{a} / {b} = {m[a][0] / m[b][0]:.2f}x" for a, b in ratios]
            if ploomber is not None:
                parts.append(
                    f"memory nbflow default / ploomber parallel = {m['nbflow default'][1] / m['ploomber parallel'][1]:.2f}x"
                )
            print(f"{dag:<10} " + "; ".join(parts))
        if args.skip_extras:
            return
        for n in (10, 100):
            ours, theirs = bench_noop(work, n, ploomber=ploomber if n == 10 else None)
            extra = f" (Ploomber build: {theirs:.2f} s)" if theirs is not None else ""
            print(f"\nno-op rerun, chain-{n}: {ours:.2f} s for `nbflow run` end to end{extra}")
        print("\ndiscover + validate 1,000 notebooks (median seconds)")
        for label, seconds in bench_discovery(work).items():
            print(f"  {label:<40} {seconds * 1000:>6.0f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
