"""The Dask executor, on real ``distributed.LocalCluster`` worker processes bound to 127.0.0.1.

Every notebook runs in a real kernel started by a Dask worker; the runner in this process
records everything in the pipeline's real DuckDB file.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

distributed = pytest.importorskip("distributed")
import dask  # noqa: E402

from nbflow.engine.runner import pid_alive  # noqa: E402
from nbflow.executors.dask import DaskExecutor, ExecutorUnavailableError  # noqa: E402
from nbflow.pipeline import Pipeline  # noqa: E402
from nbflow.store import DuckDBRunStore  # noqa: E402
from tests.conftest import live_kernels, nbflow_process, rendezvous, write_notebook  # noqa: E402

#: the throwaway servers' fixtures (s3_server)
pytest_plugins = ["servers_plugin"]

pytestmark = pytest.mark.timeout(240)

#: a notebook cell that records which process ran it, and which process started that kernel
#: what a task's kernel records of itself: its parent is the worker's kernel template (forked,
#: the default) or the worker itself (started fresh); ``starter`` is the worker either way
WHO = (
    "import json, os, pathlib, psutil\n"
    "parent = psutil.Process(os.getppid())\n"
    "forked = parent.name() == 'nbflow-template'\n"
    "pathlib.Path(product).write_text(json.dumps({'pid': os.getpid(), 'ppid': os.getppid(), 'forked': forked,\n"
    "    'starter': parent.ppid() if forked else parent.pid, 'cwd': os.getcwd(), 'product': product}))"
)


@pytest.fixture(scope="module")
def cluster():
    """A scheduler and two worker processes that nbflow did not start (as a team's cluster would be).

    Its scheduler keeps Dask's default ``allowed-failures``, so a lost worker's task would be
    started again: nbflow must notice and report a failed attempt instead.
    """
    with (
        dask.config.set({"distributed.worker.daemon": False, "distributed.scheduler.worker-saturation": 1.0}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
        ) as c,
        distributed.Client(c) as client,
    ):
        yield client


def worker_pids(client) -> set[int]:
    return set(client.run(os.getpid).values())


def attempts(root: Path, run_id: str) -> list:
    store = DuckDBRunStore(root / "_nbflow" / "state.duckdb")
    try:
        return store.get_attempts(run_id)
    finally:
        store.close()


def test_tasks_run_on_the_workers_in_dependency_order(tmp_path, cluster, nbflow_cli):
    write_notebook(tmp_path, "a", 'upstream = None\nproduct = "out/a.json"', WHO)
    meet = tmp_path / "meet"
    meet.mkdir()
    for name, other in (("b", "c"), ("c", "b")):  # both ready at once: one on each worker
        write_notebook(
            tmp_path, name, f'upstream = ["a"]\nproduct = "out/{name}.json"', rendezvous(meet, name, other), WHO
        )
    write_notebook(
        tmp_path,
        "d",
        'upstream = ["b", "c"]\nproduct = "out/d.json"',
        "import json\nseen = {k: json.load(open(v)) for k, v in upstream.items()}\nprint('read', sorted(seen))",
        WHO,
    )
    result = nbflow_cli("run", str(tmp_path), "--scheduler", cluster.scheduler.address, "--json", "--no-progress")
    assert result.exit_code == 0, result
    report = result.json()
    assert {name: t["state"] for name, t in report["tasks"].items()} == dict.fromkeys("abcd", "success")

    ran = {n: json.loads((tmp_path / "out" / f"{n}.json").read_text()) for n in "abcd"}
    workers = worker_pids(cluster)
    assert {r["starter"] for r in ran.values()} <= workers, "every kernel was started by a Dask worker"
    assert all(r["forked"] for r in ran.values()), "workers fork kernels from their own template"
    assert ran["b"]["starter"] != ran["c"]["starter"], "the two ready tasks ran on the two workers at once"
    assert os.getpid() not in {r["starter"] for r in ran.values()}
    assert {r["cwd"] for r in ran.values()} == {str(tmp_path)}

    # the same records as a local run: the store, executed notebooks and logs
    run_id = report["run_id"]
    rows = attempts(tmp_path, run_id)
    assert sorted(a.task for a in rows) == list("abcd") and all(a.state == "success" for a in rows)
    assert {a.worker for a in rows} == set(cluster.scheduler_info()["workers"]), "each attempt names its worker"
    assert (tmp_path / "_nbflow" / "runs" / run_id / "d" / "attempt-1.ipynb").is_file()
    logs = nbflow_cli("logs", str(tmp_path), "d")
    assert "read ['b', 'c']" in logs.stdout and "(on Dask worker tcp://127.0.0.1:" in logs.stdout
    status = nbflow_cli("status", str(tmp_path), "--json").json()
    assert status["run_id"] == run_id and status["state"] == "success"
    # kernels the workers started ahead of time for this run are gone with it
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and worker_kernels(cluster):
        time.sleep(0.2)
    assert worker_kernels(cluster) == []


def worker_kernels(client) -> list[int]:
    return [p.pid for pid in worker_pids(client) for p in live_kernels(pid)]


def test_failed_and_retried_tasks_keep_nbflows_rules(tmp_path, cluster, nbflow_cli):
    (tmp_path / "nbflow.toml").write_text('[tasks.flaky]\nretries = 2\nretry_delay = "1s"\n')
    write_notebook(tmp_path, "root", 'upstream = None\nproduct = "out/root.txt"', "open(product, 'w').write('r')")
    write_notebook(
        tmp_path,
        "flaky",
        'upstream = ["root"]\nproduct = "out/flaky.txt"',
        "import pathlib\nmark = pathlib.Path('flaky.mark')\n"
        "if not mark.exists():\n    mark.write_text('1')\n    raise ConnectionError('first attempt fails')\n"
        "open(product, 'w').write('ok')",
    )
    write_notebook(
        tmp_path, "bad", 'upstream = ["root"]\nproduct = "out/bad.txt"', "raise ValueError('bad input row 7')"
    )
    write_notebook(tmp_path, "after_bad", 'upstream = ["bad"]\nproduct = "out/x.txt"', "open(product, 'w')")
    result = nbflow_cli("run", str(tmp_path), "--scheduler", cluster.scheduler.address, "--json", "--no-progress")
    assert result.exit_code == 1, result
    report = result.json()
    states = {name: t["state"] for name, t in report["tasks"].items()}
    assert states == {"root": "success", "flaky": "success", "bad": "failed", "after_bad": "upstream_failed"}

    rows = {(a.task, a.attempt): a for a in attempts(tmp_path, report["run_id"])}
    assert rows[("flaky", 1)].state == "failed" and "ConnectionError" in rows[("flaky", 1)].error
    assert rows[("flaky", 2)].state == "success"
    gap = (rows[("flaky", 2)].started_at - rows[("flaky", 1)].ended_at).total_seconds()
    assert gap >= 0.9, "nbflow's retry delay, not Dask's immediate resubmission"
    assert ("bad", 2) not in rows, "no retries configured for bad: Dask must not retry it either"
    bad = rows[("bad", 1)]
    assert "ValueError: bad input row 7" in bad.error and "ValueError" in (bad.traceback or "")
    executed = tmp_path / "_nbflow" / "runs" / report["run_id"] / "bad" / "attempt-1.ipynb"
    assert "bad input row 7" in executed.read_text(), "the failed task keeps its executed notebook"

    # what the JupyterLab panel and the dashboard read (the same StoreReader) shows it all
    from nbflow.server.service import NbflowService

    shown = NbflowService(tmp_path).status(".")
    assert shown["run"]["run_id"] == report["run_id"] and shown["run"]["state"] == "failed"
    assert shown["tasks"]["flaky"]["attempts"] == 2 and shown["tasks"]["flaky"]["state"] == "success"
    assert "bad input row 7" in shown["tasks"]["bad"]["error"]
    assert shown["tasks"]["bad"]["output_notebook"] == f"_nbflow/runs/{report['run_id']}/bad/attempt-1.ipynb"


def _wait_for(path: Path, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            return json.loads(path.read_text())
        time.sleep(0.1)
    raise AssertionError(f"{path} never appeared")


SLOW_ONCE = (
    "import json, os, pathlib, psutil, time\n"
    "mark = pathlib.Path('started.json')\n"
    "if not mark.exists():\n"
    "    parent = psutil.Process(os.getppid())\n"
    "    starter = parent.ppid() if parent.name() == 'nbflow-template' else parent.pid\n"
    "    mark.write_text(json.dumps({'pid': os.getpid(), 'starter': starter}))\n"
    "    time.sleep(120)\n"
    "open(product, 'w').write('done')"
)


@pytest.mark.parametrize("own_cluster", [False, True], ids=["team-scheduler", "nbflow-localcluster"])
def test_a_worker_killed_mid_task_is_a_failed_attempt_that_retries(tmp_path, cluster, own_cluster):
    """Killed under the first attempt: WorkerLost (retryable), then the retry succeeds; no hang."""
    (tmp_path / "nbflow.toml").write_text('retries = 1\nretry_delay = "0s"\n')
    write_notebook(tmp_path, "slow", 'upstream = None\nproduct = "out/slow.txt"', SLOW_ONCE)
    executor = DaskExecutor(workers=2) if own_cluster else DaskExecutor(cluster.scheduler.address)
    box: dict = {}
    runner = threading.Thread(target=lambda: box.update(result=Pipeline.from_dir(tmp_path).run(executor=executor)))
    try:
        runner.start()
        started = _wait_for(tmp_path / "started.json")
        workers = worker_pids(executor.client)
        assert started["starter"] in workers
        if own_cluster:  # nbflow's cluster listens on the loopback interface only
            listening = [
                c.laddr.ip
                for pid in (os.getpid(), *workers)
                for c in psutil.Process(pid).net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN
            ]
            assert listening and set(listening) == {"127.0.0.1"}
        os.kill(started["starter"], signal.SIGKILL)  # the worker process, with the kernel it started
        runner.join(120)
        assert not runner.is_alive(), "the run must not hang on a lost worker"
    finally:
        executor.close()
    result = box["result"]
    assert result.states == {"slow": "success"}
    rows = attempts(tmp_path, result.run_id)
    assert [(a.attempt, a.state) for a in rows] == [(1, "failed"), (2, "success")]
    assert rows[0].error.startswith("WorkerLost:")
    deadline = time.monotonic() + 60
    while pid_alive(started["pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pid_alive(started["pid"]), "the lost worker's kernel does not outlive it"


def test_stop_kills_the_kernels_on_the_workers_and_timeouts_apply(tmp_path, cluster):
    (tmp_path / "nbflow.toml").write_text('[tasks.capped]\ntimeout = "2s"\nretries = 0\n')
    write_notebook(tmp_path, "long", 'upstream = None\nproduct = "out/long.txt"', SLOW_ONCE)
    write_notebook(tmp_path, "capped", 'upstream = None\nproduct = "out/capped.txt"', "import time; time.sleep(60)")
    executor = DaskExecutor(cluster.scheduler.address)
    stop = threading.Event()
    box: dict = {}
    seen: dict[str, str] = {}

    class States:
        def on_task(self, *, task, **_):
            seen[task.task] = task.state

    pipeline = Pipeline.from_dir(tmp_path)
    runner = threading.Thread(
        target=lambda: box.update(result=pipeline.run(executor=executor, stop=stop, listeners=[States()]))
    )
    try:
        runner.start()
        started = _wait_for(tmp_path / "started.json")
        deadline = time.monotonic() + 60
        while seen.get("capped") != "failed" and time.monotonic() < deadline:  # its timeout, on its worker
            time.sleep(0.1)
        t0 = time.monotonic()
        stop.set()
        runner.join(60)
        assert not runner.is_alive()
        stopped_in = time.monotonic() - t0
    finally:
        executor.close()
    result = box["result"]
    assert result.state == "interrupted" and result.states["long"] == "interrupted"
    assert result.states["capped"] == "failed"
    assert "TaskTimeout" in result.tasks["capped"].error
    assert stopped_in < 15
    assert not pid_alive(started["pid"]), "the worker killed the task's kernel"


def test_python_and_sql_tasks_run_on_workers_too(tmp_path, cluster, nbflow_cli):
    write_notebook(
        tmp_path, "make", 'upstream = None\nproduct = "out/rows.csv"', "open(product, 'w').write('x\\n1\\n2\\n')"
    )
    (tmp_path / "total.sql").write_text('-- upstream = ["make"]\nSELECT sum(x) AS total FROM make\n')
    (tmp_path / "nbflow_tasks.py").write_text(
        "import json, os\n"
        "def setup(pipeline):\n"
        "    @pipeline.task(upstream=['make'], product='out/who.json')\n"
        "    def who(product):\n"
        "        json.dump({'ppid': os.getppid()}, open(product, 'w'))\n"
    )
    result = nbflow_cli("run", str(tmp_path), "--scheduler", cluster.scheduler.address, "--json", "--no-progress")
    assert result.exit_code == 0, result
    states = {name: t["state"] for name, t in result.json()["tasks"].items()}
    assert set(states.values()) == {"success"} and {"make", "total", "who"} <= set(states)
    who = json.loads((tmp_path / "out" / "who.json").read_text())
    assert who["ppid"] in worker_pids(cluster), "the function ran in a child of a worker"


def test_workers_that_see_the_folder_elsewhere_get_their_paths(tmp_path, cluster, nbflow_cli):
    root = tmp_path / "here"
    mount = tmp_path / "mnt" / "pipeline"
    mount.parent.mkdir()
    mount.symlink_to(root, target_is_directory=True)  # how the workers "mount" the shared folder
    write_notebook(root, "a", 'upstream = None\nproduct = "out/a.json"', WHO)
    write_notebook(root, "b", 'upstream = ["a"]\nproduct = "out/b.json"', "print(upstream['a'])", WHO)
    result = nbflow_cli(
        "run", str(root), "--scheduler", cluster.scheduler.address, "--worker-root", str(mount), "--no-progress"
    )
    assert result.exit_code == 0, result
    assert json.loads((root / "out" / "a.json").read_text())["product"] == str(mount / "out" / "a.json")
    assert str(mount / "out" / "a.json") in nbflow_cli("logs", str(root), "b").stdout


def test_workers_that_cannot_see_the_folder_are_named_before_anything_runs(tmp_path, cluster, nbflow_cli):
    write_notebook(tmp_path, "a", 'upstream = None\nproduct = "out/a.txt"', "open(product, 'w')")
    missing = tmp_path / "not-mounted"
    result = nbflow_cli("run", str(tmp_path), "--scheduler", cluster.scheduler.address, "--worker-root", str(missing))
    assert result.exit_code == 2, result
    assert "cannot see the pipeline folder" in result.stderr and str(missing) in result.stderr
    for address in cluster.scheduler_info()["workers"]:
        assert address in result.stderr
    assert not (tmp_path / "out").exists()


def test_bad_executor_options_exit_2(tmp_path, nbflow_cli):
    write_notebook(tmp_path, "a", "upstream = None", "1")
    result = nbflow_cli("run", str(tmp_path), "--executor", "local", "--scheduler", "tcp://127.0.0.1:1")
    assert result.exit_code == 2 and "--scheduler is for the Dask executor" in result.stderr
    result = nbflow_cli("run", str(tmp_path), "--worker-root", "/mnt/x")
    assert result.exit_code == 2 and "--worker-root is for the Dask executor" in result.stderr
    with pytest.raises(ExecutorUnavailableError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        DaskExecutor("tcp://127.0.0.1:9", connect_timeout=1).check(tmp_path)
    result = nbflow_cli("run", str(tmp_path), "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 2 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.stderr


def test_an_up_to_date_run_starts_no_cluster(tmp_path, nbflow_cli):
    write_notebook(tmp_path, "a", 'upstream = None\nproduct = "out/a.txt"', "open(product, 'w')")
    assert nbflow_cli("run", str(tmp_path), "--no-progress").exit_code == 0
    executor = DaskExecutor(workers=2)
    result = Pipeline.from_dir(tmp_path).run(executor=executor)
    assert result.states == {"a": "up_to_date"}
    assert executor._client is None and executor._cluster is None, "nothing to execute: no cluster started"
    executor.close()


def test_the_example_pipeline_on_a_local_cluster_from_the_command_line(tmp_path):
    """``nbflow run --executor dask`` alone: nbflow starts (and stops) a LocalCluster itself."""
    import shutil

    from tests.conftest import REPO

    shutil.copytree(REPO / "notebooks", tmp_path / "example", ignore=shutil.ignore_patterns("_nbflow", "output"))
    done = nbflow_process("run", str(tmp_path / "example"), "--executor", "dask", "--workers", "2", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    tasks = json.loads(done.stdout)["tasks"]
    assert len(tasks) == 9 and {t["state"] for t in tasks.values()} == {"success"}


def test_the_projects_executor_setting_sends_every_run_to_dask(tmp_path, cluster, nbflow_cli):
    """``executor = "dask"``: runs from the CLI, the dashboard and the panel (all ``Pipeline.run``) go to Dask."""
    (tmp_path / "nbflow.toml").write_text(f'executor = "dask"\n[dask]\nscheduler = "{cluster.scheduler.address}"\n')
    write_notebook(tmp_path, "a", 'upstream = None\nproduct = "out/a.json"', WHO)
    who = tmp_path / "out" / "a.json"
    assert nbflow_cli("run", str(tmp_path), "--no-progress").exit_code == 0
    assert json.loads(who.read_text())["starter"] in worker_pids(cluster)
    assert Pipeline.from_dir(tmp_path).run(force=True).ok  # as the dashboard's Run does
    assert json.loads(who.read_text())["starter"] in worker_pids(cluster)
    result = nbflow_cli("run", str(tmp_path), "--force", "--executor", "local", "--no-progress")
    assert result.exit_code == 0, result
    assert json.loads(who.read_text())["starter"] == os.getpid(), "--executor local overrides the project"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('executor = "spark"\n', "setting 'executor' must be \"local\" or \"dask\" (got 'spark')"),
        (
            'executor = "dask"\n[dask]\nworkers = 3\n',
            "setting 'dask.workers' is not a setting (scheduler, worker_root, shared_folder)",
        ),
        ('[dask]\nscheduler = ""\n', "setting 'dask.scheduler' must be a non-empty string"),
        ('[dask]\nshared_folder = "no"\n', "setting 'dask.shared_folder' must be true or false (got 'no')"),
        (
            '[dask]\nshared_folder = false\nworker_root = "/mnt/p"\n',
            "setting 'dask.shared_folder' is false but worker_root says where the workers see the folder",
        ),
    ],
)
def test_bad_executor_settings_exit_2_naming_the_file(tmp_path, nbflow_cli, toml, message):
    (tmp_path / "nbflow.toml").write_text(toml)
    write_notebook(tmp_path, "a", "upstream = None", "1")
    result = nbflow_cli("run", str(tmp_path))
    assert result.exit_code == 2 and "nbflow.toml" in result.stderr and message in result.stderr, result


def test_the_settings_a_shipped_attempt_runs_with_name_its_connections_and_nothing_else(tmp_path):
    """The ``nbflow.toml`` beside a shipped task: its connections by variable name, read back as written."""
    from nbflow.executors.shipping import connections_toml
    from nbflow.systems.connect import project_connections

    declared = {"warehouse": "WAREHOUSE_URL", "lake.raw": "LAKE_RAW_URL", "crm-db": "CRM_URL"}
    (tmp_path / "nbflow.toml").write_text(connections_toml(declared))
    assert project_connections(tmp_path) == declared
    (tmp_path / "nbflow.toml").write_text(connections_toml({}))
    assert project_connections(tmp_path) == {}, "no connections: the search stops here, not in a folder above"


# -- workers that share no folder with the runner ---------------------------------------------

#: the capabilities that let root bypass file permissions (or regain them): a worker without
#: them is an ordinary process of uid 0, which cannot open a folder another user keeps private
_BYPASS_CAPS = {
    "chown": 0,
    "dac_override": 1,
    "dac_read_search": 2,
    "fowner": 3,
    "setgid": 6,
    "setuid": 7,
    "sys_admin": 21,
    "sys_ptrace": 19,
    "setpcap": 8,  # last: dropping the others needs it
}


def _confined() -> None:
    """In a worker's child process before it runs: die with the test, lose every way around file permissions."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: it dies with the thread that started it
    for cap in _BYPASS_CAPS.values():
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP: gone for it and every process it starts
            raise OSError(ctypes.get_errno(), "cannot drop a capability")


@pytest.fixture(scope="module")
def foreign_cluster(s3_server, tmp_path_factory):
    """A scheduler here and two worker processes (``dask worker``, their own working, local and
    temporary folders) that cannot read a folder owned by another user: they run without the
    capabilities that bypass file permissions. Each has its own S3 credentials and secret in
    its environment, different from this process's."""
    if os.geteuid() != 0:
        pytest.skip("starting workers that cannot read the pipeline folder needs root (to drop their capabilities)")
    import secrets
    import subprocess
    import sys
    import tempfile

    servers = sys.modules["nbflow_scripts_servers"]  # loaded by servers_plugin

    bucket = f"nbflow-shipped-{secrets.token_hex(4)}"
    s3_server.create_bucket(bucket)
    worker_s3 = servers.S3Server(s3_server.endpoint, key="worker-key", secret="worker-" + secrets.token_hex(8))
    home = Path(tempfile.mkdtemp(prefix="nbflow-test-workers-"))
    (home / "tmp").mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "TOKEN_", "AWS_"))},
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "LAKE_URL": worker_s3.uri(bucket),
        "TOKEN_VAR": "worker-token-" + secrets.token_hex(8),
        "PYTHONWARNINGS": "ignore",
    }
    procs = []
    with (
        dask.config.set({"distributed.scheduler.worker-saturation": 1.0}),
        distributed.LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster,
        distributed.Client(cluster) as client,
    ):
        try:
            for i in range(2):
                log = open(home / f"worker-{i}.log", "wb")  # noqa: SIM115 - closed with the process
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address]
                        + ["--name", f"foreign-{i}", "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1"]
                        + ["--no-dashboard", "--death-timeout", "30", "--local-directory", str(home / f"w{i}")],
                        cwd=home,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        preexec_fn=_confined,
                    )
                )
                log.close()
            try:
                client.wait_for_workers(2, timeout=60)
            except TimeoutError:
                pytest.fail("the workers did not start:\n" + (home / "worker-0.log").read_text()[-3000:])
            yield {"client": client, "home": home, "bucket": bucket, "env": env, "s3": s3_server}
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            import shutil

            shutil.rmtree(home, ignore_errors=True)


def _private_pipeline(root: Path) -> Path:
    """``root`` made, owned by user nobody, mode 0700: no process without file-permission
    capabilities but nobody's may list or read it."""
    import pwd

    root.mkdir(parents=True)
    nobody = pwd.getpwnam("nobody")
    os.chown(root, nobody.pw_uid, nobody.pw_gid)
    root.chmod(0o700)
    return root


EXTRACT = """\
import hashlib, json, os
import pandas as pd
import nbflow
from nbflow.systems.connect import connection
lake = nbflow.connect("lake")
with lake.open(product, "wb") as f:
    pd.DataFrame({"x": [1, 2, 3, 4]}).to_parquet(f)
try:
    open("lookup.csv").read()
    sibling = "found"
except FileNotFoundError:
    sibling = "missing"
who = {
    "cwd": os.getcwd(),
    "files": sorted(os.listdir(".")),
    "sibling": sibling,
    "key": connection("lake").user,
    "token": hashlib.sha256(token.encode()).hexdigest(),
}
lake.pipe(product.replace("extract.parquet", "who.json"), json.dumps(who).encode())
print("extracted 4 rows in", os.getcwd())
"""

SUMMARIZE = """\
import json
import pandas as pd
import nbflow
lake = nbflow.connect("lake")
with lake.open(upstream["extract"], "rb") as f:
    total = int(pd.read_parquet(f)["x"].sum())
lake.pipe(product, json.dumps({"total": total}).encode())
print("total", total)
"""


@pytest.mark.slow  # a cluster of worker processes, kernels and moto's S3 server
def test_workers_that_share_no_folder_get_each_task_and_send_back_its_files(
    tmp_path, foreign_cluster, monkeypatch, nbflow_cli
):
    """``[dask] shared_folder = false``: workers that cannot read the pipeline folder run a notebook,
    a SQL file and a Python function; data goes between tasks through S3 (moto's server); the
    executed notebooks and logs land in the run folder here; secrets and connections are read
    from the workers' own environment."""
    import hashlib
    import tempfile

    client, home, bucket, s3 = (foreign_cluster[k] for k in ("client", "home", "bucket", "s3"))
    root = _private_pipeline(tmp_path / "p")
    denied = client.run(os.listdir, str(root), on_error="return")
    assert len(denied) == 2 and all(isinstance(e, PermissionError) for e in denied.values()), denied

    shared = Path(tempfile.mkdtemp(prefix="nbflow-test-shared-"))  # storage both sides see, by absolute path
    runner_token = "runner-token-value"
    monkeypatch.setenv("TOKEN_VAR", runner_token)
    monkeypatch.setenv("LAKE_URL", s3.uri(bucket))  # this process's credentials: not the workers'
    (root / "nbflow.toml").write_text(
        f'executor = "dask"\n[dask]\nscheduler = "{client.scheduler.address}"\nshared_folder = false\n'
        '[connections]\nlake = "LAKE_URL"\n[secrets]\ntoken = "TOKEN_VAR"\n'
    )
    (root / "lookup.csv").write_text("a,b\n")
    write_notebook(
        root, "extract", f'upstream = None\nproduct = "s3://{bucket}/extract.parquet"\ntoken = None', EXTRACT
    )
    write_notebook(root, "summarize", f'upstream = ["extract"]\nproduct = "s3://{bucket}/summary.json"', SUMMARIZE)
    (root / "answer.sql").write_text(
        f'-- upstream = None\n-- product = "{shared / "answer.csv"}"\nSELECT 42 AS answer\n'
    )
    (root / "nbflow_tasks.py").write_text(
        "def setup(pipeline):\n"
        f"    @pipeline.task(upstream=['extract'], product='s3://{bucket}/count.txt')\n"
        "    def count(upstream, product):\n"
        "        import pandas as pd\n"
        "        import nbflow\n"
        "        lake = nbflow.connect('lake')\n"
        "        with lake.open(upstream['extract'], 'rb') as f:\n"
        "            lake.pipe(product, str(len(pd.read_parquet(f))).encode())\n"
    )
    try:
        result = nbflow_cli("run", str(root), "--json", "--no-progress")
        report = result.json()
        assert result.exit_code == 0, {n: t["error"] for n, t in report["tasks"].items()}
        assert {n: t["state"] for n, t in report["tasks"].items()} == dict.fromkeys(
            ["answer", "count", "extract", "summarize"], "success"
        )
        assert (shared / "answer.csv").read_text().split() == ["answer", "42"]
    finally:
        import shutil

        shutil.rmtree(shared, ignore_errors=True)

    objects = s3.client()
    read = lambda key: objects.get_object(Bucket=bucket, Key=key)["Body"].read().decode()  # noqa: E731
    assert json.loads(read("summary.json")) == {"total": 10} and read("count.txt") == "4"
    who = json.loads(read("who.json"))
    assert who["cwd"].startswith(str(home / "tmp" / "nbflow-attempt-")), "a fresh folder on the worker"
    assert who["files"] == ["extract.ipynb", "nbflow.toml"] and who["sibling"] == "missing"
    assert who["key"] == "worker-key", "the connection's URI came from the worker's environment"
    worker_token = foreign_cluster["env"]["TOKEN_VAR"]
    assert who["token"] == hashlib.sha256(worker_token.encode()).hexdigest(), "so did the secret's value"
    assert not list((home / "tmp").glob("nbflow-attempt-*")), "the workers removed their attempt folders"

    # the executed notebooks and logs came back into this run's folder
    run_dir = root / "_nbflow" / "runs" / report["run_id"]
    assert "total 10" in (run_dir / "summarize" / "attempt-1.ipynb").read_text()
    assert "extracted 4 rows in " + str(home / "tmp") in (run_dir / "extract" / "attempt-1.log").read_text()
    logs = nbflow_cli("logs", str(root), "summarize").stdout
    assert "total 10" in logs and "(on Dask worker tcp://127.0.0.1:" in logs
    assert "42" in (run_dir / "answer" / "attempt-1.log").read_text()
    workers = set(client.scheduler_info()["workers"])
    assert {a.worker for a in attempts(root, report["run_id"])} <= workers

    # what is sent to a worker names the variables, never their values
    from distributed.protocol.pickle import dumps

    from nbflow.engine.requests import task_request
    from nbflow.executors.shipping import pack

    pipeline = Pipeline.from_dir(root, load_code=True)
    for name in ("extract", "count"):
        request = task_request(
            pipeline.specs,
            pipeline.dag,
            pipeline.settings,
            pipeline.project.secrets,
            run_dir,
            "r",
            name,
            1,
            pipeline.validate_params({}),
            pipeline.project.connections,
        )
        sent = dumps(pack(request))
        assert b"LAKE_URL" in sent and (name != "extract" or b"TOKEN_VAR" in sent)
        for value in (runner_token, s3.uri(bucket), s3.secret, s3.key):
            assert value.encode() not in sent, f"{name}'s request holds a value"


def test_products_in_the_folder_are_refused_before_anything_runs_without_a_shared_folder(tmp_path, cluster, nbflow_cli):
    (tmp_path / "nbflow.toml").write_text(
        f'executor = "dask"\n[dask]\nscheduler = "{cluster.scheduler.address}"\nshared_folder = false\n'
    )
    write_notebook(tmp_path, "local", 'upstream = None\nproduct = "out/a.json"', "open(product, 'w')")
    write_notebook(tmp_path, "inside", f'upstream = None\nproduct = "{tmp_path / "abs.txt"}"', "1")
    write_notebook(tmp_path, "remote", 'upstream = None\nproduct = "s3://bucket/a.json"', "1")
    write_notebook(tmp_path, "elsewhere", 'upstream = None\nproduct = "/mnt/shared/x.txt"', "1")
    (tmp_path / "nbflow_tasks.py").write_text(
        "def setup(pipeline):\n    @pipeline.task(product={'rows': 'out/rows.csv'})\n    def code():\n        pass\n"
    )
    result = nbflow_cli("run", str(tmp_path), "--no-progress")
    assert result.exit_code == 2, result
    message = " ".join(result.stderr.split())
    assert "shared_folder = false" in message
    assert "code (out/rows.csv); inside (" + str(tmp_path / "abs.txt") + "); local (out/a.json)." in message
    assert "remote" not in message.split("products:")[1] and "elsewhere" not in message
    assert not (tmp_path / "out").exists() and not (tmp_path / "_nbflow" / "runs").exists()


def test_a_product_in_the_folder_named_only_at_run_time_fails_its_task_not_the_cluster(tmp_path, cluster, nbflow_cli):
    """A product ``nbflow_tasks.py`` computes is only known once it runs: its attempt fails at once."""
    (tmp_path / "nbflow.toml").write_text(
        f'executor = "dask"\n[dask]\nscheduler = "{cluster.scheduler.address}"\nshared_folder = false\n'
    )
    (tmp_path / "nbflow_tasks.py").write_text(
        "import os\n"
        "def setup(pipeline):\n"
        "    @pipeline.task(product=os.path.join('out', 'x.txt'))\n"
        "    def code(product):\n"
        "        open(product, 'w').write('x')\n"
    )
    result = nbflow_cli("run", str(tmp_path), "--json", "--no-progress")
    assert result.exit_code == 1, result
    error = result.json()["tasks"]["code"]["error"]
    assert error.startswith("LocalProduct:") and str(tmp_path / "out" / "x.txt") in error
    assert not (tmp_path / "out").exists()
