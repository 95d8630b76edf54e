"""The ETL example (examples/etl/) against real servers: PostgreSQL, MariaDB, MongoDB (nx-27017)
and S3 (moto) on 127.0.0.1.

The first test runs ``scripts/run-etl-example`` as a user would and checks what it loaded
against what the seed's data says it must be, then that it left no server, process or
folder behind; the second stops the script with SIGTERM and checks the same. The third runs
the pipeline with billing unreachable: only that branch fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil
import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO, free_port

pytestmark = pytest.mark.slow  # servers, kernels and nbflow processes in every test

EXAMPLE = REPO / "examples" / "etl"
SCRIPT = REPO / "scripts" / "run-etl-example"
TASKS = {"customers", "invoices", "tickets", "events", "transform", "load_summary", "publish"}
#: the script's whole run (setup, servers, seed, run, read-back, stop); generous for a busy machine
SCRIPT_TIMEOUT = 600
SUMMARY_COLUMNS = ("revenue_365d", "overdue_invoices", "open_tickets", "active_days_30", "events_90d", "health_score")


def _load_seed() -> ModuleType:
    """examples/etl/seed.py as a module (its data and what the summary must hold)."""
    name = "nbflow_example_etl_seed"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE / "seed.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file runs
        spec.loader.exec_module(module)
    return sys.modules[name]


seed = _load_seed()


def _copy_example(tmp_path: Path) -> Path:
    root = tmp_path / "etl"
    ignore = shutil.ignore_patterns("_nbflow", "data", ".ipynb_checkpoints", "__pycache__")
    shutil.copytree(EXAMPLE, root, ignore=ignore)
    return root


def _check_summary(path: Path, expected: dict[int, dict[str, Any]]) -> None:
    """The transform's file holds one row per expected customer, each with the expected figures."""
    rows = {row["customer_id"]: row for row in pq.read_table(path).to_pylist()}
    assert set(rows) == set(expected)
    wrong = [
        (customer, column, expected[customer][column], rows[customer][column])
        for customer in expected
        for column in SUMMARY_COLUMNS
        if Decimal(str(rows[customer][column])) != Decimal(str(expected[customer][column]))
    ]
    assert not wrong, f"{len(wrong)} figures differ from the seed's, the first: {wrong[:5]}"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _server_folders(pid: int) -> list[Path]:
    """The servers' folders that servers.py process ``pid`` made (see servers.FOLDER_PREFIX)."""
    return list(Path("/tmp").glob(f"nbflow-server-*-{pid}-*"))


def _processes_of(pid: int, ports: list[int]) -> list[str]:
    """Processes still running a server of servers.py ``pid``: in its folders, or on its ports."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        in_folder = f"-{pid}-" in line and "nbflow-server-" in line
        on_port = "moto.server" in line and any(re.search(rf"-p {port}\b", line) for port in ports)
        if in_folder or on_port:
            found.append(f"{proc.info['pid']}: {line}")
    return found


class Script:
    """``scripts/run-etl-example --json`` running in a session of its own; its stderr read as it comes."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [str(SCRIPT), "--json"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self._out: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout, None), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, lines: queue.Queue[str | None] | None) -> None:
        with stream:
            for line in stream:
                (self.stderr if lines is not None else self._out).append(line)
                if lines is not None:
                    lines.put(line)
        if lines is not None:
            lines.put(None)

    def wait_for(self, text: str, timeout: float) -> str:
        """The first stderr line holding ``text`` (fails at the deadline or at the end of its output)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                pytest.fail(f"run-etl-example said no {text!r} in {timeout:.0f} s:\n{''.join(self.stderr)[-3000:]}")
            if line is None:
                pytest.fail(f"run-etl-example ended without saying {text!r}:\n{''.join(self.stderr)[-3000:]}")
            if text in line:
                return line

    def finish(self, timeout: float) -> subprocess.CompletedProcess[str]:
        """Wait for the end (stopping it all at the deadline): its exit code, stdout and stderr."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"run-etl-example did not finish in {timeout:.0f} s:\n{''.join(self.stderr)[-3000:]}")
        for reader in self._readers:
            reader.join(30)
        return subprocess.CompletedProcess(
            self.proc.args, self.proc.returncode, "".join(self._out), "".join(self.stderr)
        )

    def stop(self) -> None:
        """SIGTERM to its whole session (its trap stops the run and the servers), then SIGKILL."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(90)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _assert_nothing_left(stderr: str, scratch: Path) -> None:
    """No servers.py, server, port or folder of the script's is left (it printed the pid and ports)."""
    up = re.search(r"servers up \(servers\.py pid (\d+)\): (.*)", stderr)
    assert up, stderr[-4000:]
    pid = int(up.group(1))
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", up.group(2))]
    assert len(ports) == 4
    with contextlib.suppress(psutil.NoSuchProcess):
        assert "servers.py" not in " ".join(psutil.Process(pid).cmdline())
    assert not _processes_of(pid, ports)
    assert not [port for port in ports if _listening(port)]
    assert not _server_folders(pid)
    # the servers' folders and the script's: all removed (setup's `ipykernel install` leaves an
    # empty tmp*_kernels folder behind, as ipykernel does wherever it runs: not this script's)
    left = [p for p in scratch.iterdir() if not (p.name.endswith("_kernels") and not any(p.iterdir()))]
    assert not left


def _script_env(root: Path, scratch: Path) -> dict[str, str]:
    env = {**os.environ, "NBFLOW_ETL_DIR": str(root), "TMPDIR": str(scratch), "PYTHONWARNINGS": "ignore"}
    for name in ("ETL_WAREHOUSE_URL", "ETL_BILLING_URL", "ETL_SUPPORT_URL", "ETL_LAKE_URL"):
        env.pop(name, None)
    return env


@pytest.fixture
def scratch() -> Iterator[Path]:
    """An empty folder for TMPDIR that the servers' own users can enter (as root, PostgreSQL and
    MariaDB run as postgres and mysql, who cannot enter pytest's private tmp_path)."""
    folder = Path(tempfile.mkdtemp(prefix="nbflow-etl-test-", dir="/tmp"))
    folder.chmod(0o1777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.timeout(SCRIPT_TIMEOUT + 120)
def test_the_script_runs_the_etl_example_loads_what_the_seed_implies_and_leaves_nothing(
    tmp_path: Path, scratch: Path
) -> None:
    root = _copy_example(tmp_path)

    done = Script(_script_env(root, scratch)).finish(SCRIPT_TIMEOUT)

    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout)  # stdout is nbflow's JSON alone
    assert report["state"] == "success"
    assert {name: task["state"] for name, task in report["tasks"].items()} == dict.fromkeys(TASKS, "success")

    expected = seed.expected_summary(seed.build(), seed.AS_OF)
    assert len(expected) == len(seed.active_customers(seed.build(), seed.AS_OF)) > 1000
    _check_summary(root / "data" / "customer_summary.parquet", expected)
    # read back from the servers by the script, before it stopped them
    table = re.search(r"public\.customer_summary in the warehouse: (\d+) rows", done.stderr)
    export = re.search(r"s3://lake/exports/customer_summary\.parquet: (\d+) rows", done.stderr)
    assert table and export, done.stderr[-4000:]
    assert int(table.group(1)) == int(export.group(1)) == len(expected)

    _assert_nothing_left(done.stderr, scratch)
    assert "timings: setup" in done.stderr


@pytest.mark.timeout(SCRIPT_TIMEOUT + 120)
def test_a_script_stopped_by_sigterm_stops_its_servers(tmp_path: Path, scratch: Path) -> None:
    script = Script(_script_env(_copy_example(tmp_path), scratch))
    script.wait_for("servers up", SCRIPT_TIMEOUT)
    script.proc.send_signal(signal.SIGTERM)  # to the script alone, as a service manager stops it

    done = script.finish(180)

    assert done.returncode == 143, done.stderr[-4000:]
    _assert_nothing_left(done.stderr, scratch)


def test_unreachable_billing_fails_its_branch_only(
    tmp_path: Path, postgres_url: str, mysql_url: str, s3_server: Any, mongo_url: str
) -> None:
    root = _copy_example(tmp_path)
    # a short wait between attempts: the test need not wait out the example's 5 s and 10 s
    settings = root / "nbflow.toml"
    settings.write_text(settings.read_text() + '\n[tasks.invoices]\nretry_delay = "0.2s"\n')
    support = urlunsplit(urlsplit(mongo_url)._replace(path="/etl_support"))  # a database of its own
    env = {
        **os.environ,
        "ETL_WAREHOUSE_URL": postgres_url,
        "ETL_BILLING_URL": mysql_url,
        "ETL_SUPPORT_URL": support,
        "ETL_LAKE_URL": s3_server.uri("lake"),
        "PYTHONWARNINGS": "ignore",
    }
    seeded = subprocess.run(
        [sys.executable, str(root / "seed.py")], env=env, capture_output=True, text=True, timeout=120
    )
    assert seeded.returncode == 0, seeded.stderr

    closed = free_port()  # nothing listens there
    password = urlsplit(mysql_url).password or ""
    env["ETL_BILLING_URL"] = urlunsplit(urlsplit(mysql_url)._replace(netloc=f"nbflow:{password}@127.0.0.1:{closed}"))
    run = subprocess.run(
        [sys.executable, "-m", "nbflow", "run", str(root), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert run.returncode == 1, run.stderr[-4000:]
    tasks = json.loads(run.stdout)["tasks"]
    states = {name: task["state"] for name, task in tasks.items()}
    assert states == {
        "customers": "success",
        "tickets": "success",
        "events": "success",
        "invoices": "failed",
        "transform": "upstream_failed",
        "load_summary": "upstream_failed",
        "publish": "upstream_failed",
    }
    invoices = tasks["invoices"]
    assert invoices["error"].startswith("ConnectionError: could not connect to 'billing'"), invoices["error"]
    assert f"127.0.0.1:{closed}" in invoices["error"] and password not in invoices["error"]
    assert invoices["attempts"] == 3  # the first and its two connection retries
    customers = pq.read_metadata(root / "data" / "customers.parquet").num_rows
    assert customers == len(seed.active_customers(seed.build(), seed.AS_OF))
