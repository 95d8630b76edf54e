"""Benchmark nbflow against a papermill loop and Ploomber on synthetic DAGs of trivial notebooks.

    .venv/bin/python benchmarks/bench_engine.py                  # chain and wide, 10 and 30, 3 repeats
    .venv/bin/python benchmarks/bench_engine.py --sizes 100 --repeats 1
    .venv/bin/python benchmarks/bench_engine.py --quick          # 10 notebooks, 1 repeat
    .venv/bin/python benchmarks/bench_engine.py --no-ploomber    # skip Ploomber (no install)
    .venv/bin/python benchmarks/bench_engine.py --fork-only      # the kernel-start figures alone

Every variant runs as a whole process, as a user would start it (interpreter start and
imports included), on the same DAG in the same run, interleaved so that drift hits all:

* papermill loop: one Python process calling ``papermill.execute_notebook`` per notebook,
  in topological order;
* Ploomber, serial and parallel executors (``ploomber build --force``), installed into
  its own virtual environment under ``benchmarks/.work/`` on first use;
* nbflow: ``nbflow run`` with ``--workers 1``, kernels forked from the warm template
  (``--kernel-start fork``) or each a new interpreter (``fresh``), without and with kernels
  started ahead of time (``--warm-kernels 0`` / the default); and with all its defaults
  (fork, workers = CPU count, 2 warm kernels), also with ``--kernel-start fresh``.

Prints medians and ratios, and the peak memory of each variant's whole process tree (the
process and all its descendants), two ways: RSS, the resident memory summed, sampled every
20 ms (counts a page shared by several processes once per process), and PSS, the
proportional set size summed (``memory_full_info().pss``: a page shared by k processes
counts 1/k in each, so kernels forked from the template are charged only for the pages they
changed), sampled every 50 ms because reading it costs more.

For every nbflow run it also reads the run back from its store (``nbflow.history.
run_timeline``) and measures, per notebook, *ready -> first cell*: from when the task could
start (the end of its upstreams, or when a root was submitted) to when its executed
notebook's first code cell began (papermill's cell ``start_time``). That includes any wait
for a free worker, so *submitted -> first cell* (the kernel's start alone) is shown too.
With forking, a run's first notebook also waits for the template itself to start (an
interpreter importing ipykernel), so on small DAGs the p90 is mostly that notebook's.

``--fork-only`` runs just the kernel-start comparisons (chain-10, chain-30 and wide-30,
3 repeats, nbflow fork and fresh with the papermill loop and Ploomber's parallel executor)
and prints the targets beside the measured ratios; ``--sizes`` and ``--repeats`` override.
A run that fails (Ploomber's parallel executor sometimes loses a kernel on a loaded 2-core
machine) is tried once more and said. At the end, a summary gives the targets and what
was measured. Also (not with
``--fork-only`` or ``--skip-extras``): a no-op rerun (everything up to date) and discovery +
validation of 1,000 notebooks, cold and with unchanged files.
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
from dataclasses import dataclass, field
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


#: how often the process tree's RSS and PSS are sampled (PSS reads smaps: slower)
RSS_EVERY = 0.02
PSS_EVERY = 0.05
#: what forked kernels and their template are called (psutil ``name()``)
FORKED_KERNEL, TEMPLATE = "nbflow-kernel", "nbflow-template"


def _family(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def tree_rss(proc: psutil.Process) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    total = 0
    for p in _family(proc):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def tree_pss(proc: psutil.Process, forked: set[int] | None = None) -> int:
    """Proportional set size of a process and all its descendants, in bytes; adds the pids of
    forked kernels seen (named :data:`FORKED_KERNEL`) to ``forked``."""
    total = 0
    for p in _family(proc):
        with contextlib.suppress(psutil.Error):
            total += p.memory_full_info().pss
            if forked is not None and p.name() == FORKED_KERNEL:
                forked.add(p.pid)
    return total


def sampled(
    cmd: list[str],
    cwd: Path | None,
    env: dict[str, str] | None,
    samplers: list[tuple[Callable[[psutil.Process], int], float]],
) -> tuple[float, list[int]]:
    """Run ``cmd``; (wall seconds, the peak of each sampler ``(memory, every seconds)``)."""
    peaks = [0] * len(samplers)
    start = time.perf_counter()
    proc = psutil.Popen(
        cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    done = threading.Event()

    def sample(i: int, memory: Callable[[psutil.Process], int], every: float) -> None:
        while not done.is_set():
            peaks[i] = max(peaks[i], memory(proc))
            done.wait(every)

    threads = [
        threading.Thread(target=sample, args=(i, memory, every), daemon=True)
        for i, (memory, every) in enumerate(samplers)
    ]
    for thread in threads:
        thread.start()
    _, err = proc.communicate()
    elapsed = time.perf_counter() - start
    done.set()
    for thread in threads:
        thread.join()
    if proc.returncode != 0:
        raise VariantFailed(f"{' '.join(cmd[:4])} failed:\n{err[-3000:]}")
    return elapsed, peaks


class VariantFailed(RuntimeError):
    """A variant's command exited with an error."""


def measured(
    cmd: list[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    memory: Callable[[psutil.Process], int] = tree_rss,
) -> tuple[float, int]:
    """Run ``cmd``; (wall seconds, peak of ``memory`` sampled every 20 ms: by default its process tree's, in bytes)."""
    elapsed, (peak,) = sampled(cmd, cwd, env, [(memory, RSS_EVERY)])
    return elapsed, peak


@dataclass
class Measure:
    """One run of one variant: wall seconds, peak RSS and PSS of its process tree (bytes),
    forked kernels seen, and per notebook (seconds) ready -> first cell and submitted -> first cell."""

    seconds: float
    rss: int
    pss: int
    forked: int
    ready_to_cell: list[float] = field(default_factory=list)
    submit_to_cell: list[float] = field(default_factory=list)


def measure_tree(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> Measure:
    """Run ``cmd``; its wall time, its process tree's peak RSS (every 20 ms) and PSS (every 50 ms)."""
    forked: set[int] = set()
    elapsed, (rss, pss) = sampled(cmd, cwd, env, [(tree_rss, RSS_EVERY), (lambda p: tree_pss(p, forked), PSS_EVERY)])
    return Measure(elapsed, rss, pss, len(forked))


def kernel_starts(root: Path) -> tuple[list[float], list[float], int]:
    """From the latest run of the pipeline in ``root``, as its store and executed notebooks
    record it: each successful notebook's (ready -> first cell) and (submitted -> first
    cell) in seconds, and how many notebooks had no first-cell time."""
    from nbflow.history import declared_upstreams, open_store, run_timeline

    upstreams = declared_upstreams(root)
    store = open_store(root, read_only=True)
    try:
        timeline = run_timeline(store, root, dag_upstreams=upstreams)
    finally:
        store.close()
    ready, submitted, missing = [], [], 0
    for bar in timeline.bars:
        if bar.attempt != 1 or bar.state != "success":
            continue
        if bar.kernel_ready_s is None:
            missing += 1
            continue
        was_ready = bar.ready_s if upstreams.get(bar.task) else bar.start_s  # a root: when it was submitted
        ready.append(bar.kernel_ready_s - was_ready)
        submitted.append(bar.kernel_ready_s - bar.start_s)
    return ready, submitted, missing


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


PAPERMILL, PLOOMBER_SERIAL, PLOOMBER_PARALLEL = "papermill loop", "ploomber serial", "ploomber parallel"
W1_FRESH, W1_FRESH_WARM = "nbflow -w1 fresh", "nbflow -w1 fresh, warm"
W1_FORK_COLD, W1_FORK = "nbflow -w1 fork, no warm", "nbflow -w1 fork"
DEFAULTS, DEFAULTS_FRESH = "nbflow defaults", "nbflow defaults fresh"
#: the nbflow variants: ``nbflow run`` options
NBFLOW_VARIANTS = {
    W1_FRESH: ["--workers", "1", "--kernel-start", "fresh", "--warm-kernels", "0"],
    W1_FRESH_WARM: ["--workers", "1", "--kernel-start", "fresh"],
    W1_FORK_COLD: ["--workers", "1", "--kernel-start", "fork", "--warm-kernels", "0"],
    W1_FORK: ["--workers", "1", "--kernel-start", "fork"],
    DEFAULTS: [],  # fork, workers = CPU count, 2 warm kernels
    DEFAULTS_FRESH: ["--kernel-start", "fresh"],
}
FRESH_VARIANTS = {W1_FRESH, W1_FRESH_WARM, DEFAULTS_FRESH}
#: (DAG, label, variant, baseline, what: seconds or pss, target) of the fork start
TARGETS = [
    ("chain-30", "-w1 fork / -w1 fresh, wall time", W1_FORK, W1_FRESH, "seconds", 0.3),
    ("chain-30", "-w1 fork / -w1 fresh, warm, wall time", W1_FORK, W1_FRESH_WARM, "seconds", 0.3),
    ("chain-10", "defaults (fork) / papermill loop, wall time", DEFAULTS, PAPERMILL, "seconds", 0.15),
    ("wide-30", "defaults (fork) / ploomber parallel, wall time", DEFAULTS, PLOOMBER_PARALLEL, "seconds", 0.3),
    ("wide-30", "defaults (fork) / defaults fresh, peak PSS", DEFAULTS, DEFAULTS_FRESH, "pss", 0.6),
]
#: further ratios, without a target: (label, variant, baseline, what)
RATIOS = [
    ("-w1 fork / papermill loop, wall time", W1_FORK, PAPERMILL, "seconds"),
    ("-w1 fork / ploomber serial, wall time", W1_FORK, PLOOMBER_SERIAL, "seconds"),
    ("-w1 fork, no warm / -w1 fresh, wall time", W1_FORK_COLD, W1_FRESH, "seconds"),
    ("-w1 fresh, warm / -w1 fresh, wall time", W1_FRESH_WARM, W1_FRESH, "seconds"),
    ("defaults (fork) / defaults fresh, wall time", DEFAULTS, DEFAULTS_FRESH, "seconds"),
    ("defaults (fork) / ploomber parallel, peak RSS", DEFAULTS, PLOOMBER_PARALLEL, "rss"),
    ("defaults (fork) / defaults fresh, peak RSS", DEFAULTS, DEFAULTS_FRESH, "rss"),
]
#: the start latency's target with forking (ready -> first cell), seconds
START_TARGET = 0.1


@dataclass
class Figures:
    """One variant on one DAG: medians over the repeats (seconds, MiB), the fewest forked
    kernels seen in a repeat, and per-notebook start latencies of every repeat pooled (seconds)."""

    seconds: float
    rss: float
    pss: float
    forked: int
    ready_to_cell: list[float]
    submit_to_cell: list[float]
    missing: int = 0

    def get(self, what: str) -> float:
        return float(getattr(self, what))


def bench_dag(
    work: Path, shape: str, n: int, repeats: int, ploomber: Path | None, fork_only: bool = False
) -> dict[str, Figures]:
    """Each variant on one DAG (``fork_only``: without Ploomber serial). A run that fails
    is tried once more; a variant that fails twice in a repeat has no figure for it (said)."""
    root = work / f"{shape}-{n}"
    paths = write_dag(root, shape, n)
    nbflow = [sys.executable, "-m", "nbflow", "run", str(root), "--no-progress"]
    variants: dict[str, tuple[list[str], Path | None, dict[str, str] | None]] = {
        PAPERMILL: ([sys.executable, "-c", PAPERMILL_LOOP, *map(str, paths)], None, None),
    }
    if ploomber is not None:
        proot = work / f"{shape}-{n}-ploomber"
        write_dag(proot, shape, n, for_ploomber=True)
        for executor in ("parallel",) if fork_only else ("serial", "parallel"):
            cmd = [str(ploomber), "build", "--force", "--entry-point", f"pipeline.{executor}.yaml"]
            variants[f"ploomber {executor}"] = (cmd, proot, PLOOMBER_ENV)
    for name, options in NBFLOW_VARIANTS.items():
        variants[name] = ([*nbflow, *options], None, None)
    runs: dict[str, list[Measure]] = {k: [] for k in variants}
    missing = dict.fromkeys(variants, 0)
    for _ in range(repeats):
        for name, (cmd, cwd, env) in variants.items():  # interleaved, so drift hits every variant alike
            for attempt in (1, 2):
                clean(root)
                if cwd is not None:
                    clean(cwd)
                try:
                    m = measure_tree(cmd, cwd, env)
                    break
                except VariantFailed as e:
                    print(f"{shape}-{n}: {name} failed (try {attempt} of 2): {str(e).splitlines()[-1]}", flush=True)
            else:
                continue
            if name in NBFLOW_VARIANTS:  # read from the store, between runs (not timed)
                m.ready_to_cell, m.submit_to_cell, lost = kernel_starts(root)
                missing[name] += lost
            runs[name].append(m)
    return {
        k: Figures(
            statistics.median(m.seconds for m in ms),
            statistics.median(m.rss for m in ms) / 2**20,
            statistics.median(m.pss for m in ms) / 2**20,
            min(m.forked for m in ms),
            [s for m in ms for s in m.ready_to_cell],
            [s for m in ms for s in m.submit_to_cell],
            missing[k],
        )
        for k, ms in runs.items()
        if ms
    }


def median_p90(values: list[float]) -> tuple[float, float] | None:
    """Median and 90th percentile (None for no values)."""
    if not values:
        return None
    p90 = statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]
    return statistics.median(values), p90


def ms_pair(values: list[float]) -> str:
    """``median/p90`` in milliseconds."""
    figures = median_p90(values)
    return "-" if figures is None else f"{figures[0] * 1000:.0f}/{figures[1] * 1000:.0f}"


def ratio(m: dict[str, Figures], variant: str, baseline: str, what: str) -> float | None:
    if variant not in m or baseline not in m or not m[baseline].get(what):
        return None
    return m[variant].get(what) / m[baseline].get(what)


def target_dag(results: dict[str, dict[str, Figures]], dag: str) -> str | None:
    """``dag`` if it was run, else the largest of its shape that was (None: no such shape)."""
    if dag in results:
        return dag
    shape = dag.split("-")[0]
    same = [d for d in results if d.split("-")[0] == shape]
    return max(same, key=lambda d: int(d.split("-")[1]), default=None)


def report(results: dict[str, dict[str, Figures]], repeats: int) -> None:
    """Print the tables, ratios, start latencies and the summary of the targets."""
    dags = list(results)
    names = list(dict.fromkeys(k for m in results.values() for k in m))
    width = max(len(n) for n in names) + 2
    header = f"{'variant':<{width}}" + "".join(f"{d:>14}" for d in dags)
    tables = [
        ("wall seconds (median)", "seconds", ".2f"),
        (f"peak RSS of the process tree, MiB (median; sampled every {RSS_EVERY * 1000:.0f} ms)", "rss", ".0f"),
        (f"peak PSS of the process tree, MiB (median; sampled every {PSS_EVERY * 1000:.0f} ms)", "pss", ".0f"),
    ]
    for title, what, fmt in tables:
        print(f"\n{title}\n{header}")
        for name in names:
            cells = [format(results[d][name].get(what), fmt) if name in results[d] else "-" for d in dags]
            print(f"{name:<{width}}" + "".join(f"{c:>14}" for c in cells))

    print("\nratios (lower is better for the first variant)")
    for dag, m in results.items():
        print(f"{dag}")
        for tdag, label, variant, baseline, what, target in TARGETS:
            r = ratio(m, variant, baseline, what)
            if r is not None:
                print(f"  {label:<48} {r:>6.2f}x   target ≤ {target} on {tdag}")
        for label, variant, baseline, what in RATIOS:
            r = ratio(m, variant, baseline, what)
            if r is not None:
                print(f"  {label:<48} {r:>6.2f}x")

    starts = [n for n in names if n in NBFLOW_VARIANTS]
    for title, attr in (
        ("ready -> first cell, per notebook, ms (median/p90 over all repeats)", "ready_to_cell"),
        ("submitted -> first cell (the kernel's start alone), ms (median/p90)", "submit_to_cell"),
    ):
        print(f"\n{title}\n{header}")
        for name in starts:
            cells = [ms_pair(getattr(results[d][name], attr)) if name in results[d] else "-" for d in dags]
            print(f"{name:<{width}}" + "".join(f"{c:>14}" for c in cells))
    for dag, m in results.items():
        for name, f in m.items():
            if f.missing:
                print(f"note: {dag} {name}: {f.missing} notebook(s) without a first-cell time, left out")
            if name in NBFLOW_VARIANTS and (name in FRESH_VARIANTS) == (f.forked > 0):
                seen = f"{f.forked} process(es) named {FORKED_KERNEL}"
                print(f"warning: {dag} {name}: {seen} in a run; kernels were not started as asked")

    print(f"\nsummary: the fork start's targets (medians of {repeats} run(s))")
    for tdag, label, variant, baseline, what, target in TARGETS:
        found = target_dag(results, tdag)
        r = None if found is None else ratio(results[found], variant, baseline, what)
        where = f"{found or tdag}" + ("" if found == tdag else f" (target set for {tdag})")
        shown = "not measured" if r is None else f"{r:.2f}x"
        print(f"  {where:<36} {label:<48} {shown:>12}   target ≤ {target}")
    for variant in (W1_FORK_COLD, DEFAULTS):
        parts = []
        for dag in dags:
            pair = median_p90(results[dag][variant].ready_to_cell) if variant in results[dag] else None
            if pair is not None:
                parts.append(f"{dag} {pair[0] * 1000:.0f}/{pair[1] * 1000:.0f}")
        label = f"ready -> first cell, {variant.removeprefix('nbflow ')}"
        print(
            f"  {label:<40} median/p90 ms: {', '.join(parts) or 'not measured'}   target ≤ {START_TARGET * 1000:.0f} ms"
        )


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
    parser.add_argument("--sizes", type=int, nargs="+", help="notebooks per DAG (default 10 and 30)")
    parser.add_argument("--no-ploomber", action="store_true", help="leave Ploomber out (no install)")
    parser.add_argument("--skip-extras", action="store_true", help="only the DAG runs (no no-op rerun, no discovery)")
    parser.add_argument("--discovery-only", action="store_true", help="only discovery + validation of 1,000 notebooks")
    parser.add_argument(
        "--fork-only",
        action="store_true",
        help="only the kernel-start figures: chain-10, chain-30, wide-30; nbflow fork and fresh, "
        "papermill loop, Ploomber parallel",
    )
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
    repeats = 1 if args.quick else args.repeats
    sizes = [10] if args.quick else args.sizes
    if args.fork_only and sizes is None:
        dags = [("chain", 10), ("chain", 30), ("wide", 30)]
    else:
        dags = [(shape, n) for shape in ("chain", "wide") for n in sizes or [10, 30]]
    ploomber = None if args.no_ploomber else ploomber_bin()

    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; medians of {repeats} run(s)")
    (HERE / ".work").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="nbflow-bench-", dir=HERE / ".work"))
    try:
        results = {}
        for shape, n in dags:
            results[f"{shape}-{n}"] = m = bench_dag(work, shape, n, repeats, ploomber, args.fork_only)
            print(f"{shape}-{n}:")
            for k, f in m.items():
                print(f"  {k:<26} {f.seconds:6.2f} s   RSS {f.rss:5.0f} MiB   PSS {f.pss:5.0f} MiB", flush=True)
        report(results, repeats)
        if args.skip_extras or args.fork_only:
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
