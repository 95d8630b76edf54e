"""Benchmark the routes beyond one machine, on the example pipeline (9 tasks).

    .venv/bin/python benchmarks/bench_scale_out.py             # 5 runs of each, interleaved
    .venv/bin/python benchmarks/bench_scale_out.py --runs 3 --no-airflow

Dask: whole ``nbflow run --force`` processes, wall time, interleaved so that the
machine's noise falls on every variant alike:

* ``local``: the local executor (kernels on this machine, 2 warm);
* ``dask (own cluster)``: ``--executor dask --workers 2``: nbflow starts a LocalCluster of
  2 worker processes and stops it, inside the measured time;
* ``dask (running cluster)``: ``--scheduler`` of a 2-worker LocalCluster started before,
  as a team's cluster would be.

Airflow: ``nbflow export airflow``, ``airflow db migrate`` (a new SQLite database) and
``airflow dags test`` (the whole example, in-process), each timed; the venv with Airflow
is the tests' (built once, cached).
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))


def timed(cmd: list[str], **kwargs) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    return elapsed


def row(name: str, values: list[float], base: float | None = None) -> str:
    med = statistics.median(values)
    ratio = f"{med / base:.2f}x" if base else "1.00x"
    return f"| {name} | {med:.2f} | {min(values):.2f}-{max(values):.2f} | {ratio} |"


def bench_dask(runs: int, work: Path) -> None:
    import dask
    import distributed

    example = work / "example"
    shutil.copytree(REPO / "notebooks", example, ignore=shutil.ignore_patterns("_nbflow", "output"))
    nbflow = [sys.executable, "-m", "nbflow", "run", str(example), "--force", "--no-progress"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    timed(nbflow, env=env)  # warm the file cache and the discovery cache
    with (
        dask.config.set({"distributed.worker.daemon": False}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0"
        ) as cluster,
    ):
        variants = {
            "local": nbflow,
            "dask (own cluster, 2 workers)": [*nbflow, "--executor", "dask", "--workers", "2"],
            "dask (running cluster, 2 workers)": [*nbflow, "--scheduler", cluster.scheduler_address],
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(runs):
            for name, cmd in variants.items():
                times[name].append(timed(cmd, env=env))
    print(f"\n## Example pipeline, `nbflow run --force` wall time (s), {runs} runs each, interleaved\n")
    print("| executor | median | range | vs local |\n|---|---|---|---|")
    base = statistics.median(times["local"])
    for name, values in times.items():
        print(row(name, values, None if name == "local" else base))


def bench_airflow(runs: int, work: Path) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from airflowenv import AIRFLOW, airflow_env, airflow_venv

    t0 = time.perf_counter()
    python = airflow_venv()
    print(f"\n## Airflow ({AIRFLOW}): venv ready in {time.perf_counter() - t0:.1f} s (cached after the first build)\n")
    steps: dict[str, list[float]] = {"nbflow export airflow": [], "airflow db migrate": [], "airflow dags test": []}
    for i in range(runs):
        base = work / f"airflow-{i}"
        example, dags, home = base / "example", base / "dags", base / "home"
        shutil.copytree(REPO / "notebooks", example, ignore=shutil.ignore_patterns("_nbflow", "output"))
        env = airflow_env(home, dags)
        export = [sys.executable, "-m", "nbflow", "export", "airflow", str(example), "-o", str(dags)]
        steps["nbflow export airflow"].append(timed([*export, "--dag-id", "churn"]))
        steps["airflow db migrate"].append(timed([str(python), "-m", "airflow", "db", "migrate"], env=env))
        steps["airflow dags test"].append(timed([str(python), "-m", "airflow", "dags", "test", "churn"], env=env))
    print("| step | median (s) | range | runs |\n|---|---|---|---|")
    for name, values in steps.items():
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f}-{max(values):.2f} | {len(values)} |")
    total = [sum(v) for v in zip(*steps.values(), strict=True)]
    print(
        f"| export + migrate + dags test | {statistics.median(total):.2f} | {min(total):.2f}-{max(total):.2f} | {runs} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-airflow", action="store_true", help="Only the Dask comparison.")
    args = parser.parse_args()
    print(f"# nbflow beyond one machine ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="nbflow-bench-") as tmp:
        bench_dask(args.runs, Path(tmp))
        if not args.no_airflow:
            bench_airflow(max(1, min(args.runs, 3)), Path(tmp))


if __name__ == "__main__":
    main()
