"""Shared fixtures: notebooks built in temporary pipeline folders, and CLI helpers."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nbformat
import pytest
from click.testing import CliRunner
from nbformat.v4 import new_code_cell, new_notebook

from nbflow.cli import cli

HERE = Path(__file__).parent
REPO = HERE.parent

#: real throwaway servers (PostgreSQL, MariaDB, S3, MongoDB) for the tests that ask for them
pytest_plugins = ["servers_plugin"]


def notebook_path(name: str) -> Path:
    """A fixture notebook from ``tests/notebooks/``, named for what it triggers."""
    return HERE / "notebooks" / name


def write_notebook(
    folder: Path,
    name: str,
    parameters: str | None = None,
    *cells: str,
    kernel: str = "python3",
    language: str = "python",
) -> Path:
    """Write ``folder/name.ipynb``: a tagged parameters cell (if given), then code cells."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "language": language, "display_name": kernel}
    if language != "python":
        nb.metadata["language_info"] = {"name": language}
    if parameters is not None:
        cell = new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells.extend(new_code_cell(src) for src in cells)
    path = folder / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def make_notebook(tmp_path: Path):
    """``make_notebook("clean", 'upstream = ["load"]', "print(1)")`` writes into ``tmp_path``."""

    def make(name: str, parameters: str | None = None, *cells: str, **kwargs: Any) -> Path:
        return write_notebook(tmp_path, name, parameters, *cells, **kwargs)

    return make


class CliResult:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"<exit {self.exit_code}\nstdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}>"


@pytest.fixture
def nbflow_cli():
    """Run the CLI in-process (click's runner) and return exit code, stdout and stderr."""

    def invoke(*args: str) -> CliResult:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return invoke


def nbflow_process(*args: str, cwd: Path | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``nbflow`` as a real separate process."""
    return subprocess.run(
        [sys.executable, "-m", "nbflow", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=300,
        **kwargs,
    )


def rendezvous(folder: Path, me: str, *others: str, timeout: float = 240) -> str:
    """Notebook code that says ``me`` is running, then waits until every one of ``others`` is.

    Tasks that must overlap meet here instead of sleeping and hoping: if they never run
    at the same time, the code raises (after a generous ``timeout``) and the task fails.
    """
    return (
        "import pathlib, time\n"
        f"_here = pathlib.Path({str(folder)!r})\n"
        f"(_here / {me + '.running'!r}).touch()\n"
        f"_deadline = time.monotonic() + {timeout}\n"
        f"while not all((_here / f'{{o}}.running').exists() for o in {list(others)!r}):\n"
        "    assert time.monotonic() < _deadline, 'the other tasks never ran at the same time'\n"
        "    time.sleep(0.05)\n"
    )


@contextlib.contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 (a free port) in a thread; yields the base URL, stops on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def smtp_server():
    """A real SMTP server on 127.0.0.1: (host, port, inbox)."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.hostname, controller.port, inbox
    finally:
        controller.stop()


def live_kernels(pid: int | None = None) -> list[Any]:
    """The kernel processes below ``pid`` (default: this process) that are still alive:
    started fresh (``ipykernel`` in their command line) or forked from a kernel template
    (named ``nbflow-kernel``).

    A zombie (a kernel that has exited and waits for its parent to reap it) is not one.
    """
    import psutil

    found = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            kernel = p.name() == "nbflow-kernel" or "ipykernel" in " ".join(p.cmdline())
            if p.status() != psutil.STATUS_ZOMBIE and kernel:
                found.append(p)
        except psutil.Error:  # gone, or a zombie, meanwhile
            continue
    return found


# ---------------------------------------------------------------------------------------------
# The fast tier: ``pytest -m "not slow"`` (scripts/test-fast) runs the pure logic in seconds.
# A test is slow when it starts a kernel, a browser, a Jupyter server, an nbflow process that
# runs a pipeline, a Dask cluster or an Airflow venv: by a fixture it uses, or as listed below
# (the lists were drawn up by measuring each test). A test that lists nothing here is fast;
# the fast tier's summary names any unmarked test that took longer than SLOW_SECONDS.
# ---------------------------------------------------------------------------------------------

#: fixtures that start one of those things: a test that uses one is slow wherever it is
SLOW_FIXTURES = frozenset(
    {
        "airflow_python",
        "cluster",
        "jp_fetch",
        "jp_serverapp",
        "jp_ws_fetch",
        "page",
        "ran_pipeline",
        # a real database or object-store server
        "postgres_url",
        "mysql_url",
        "s3_server",
        "mongo_url",
    }
)

ALL = frozenset({"*"})
#: test module -> its slow tests: ALL, or the names (parametrized tests by their function's name)
SLOW_TESTS: dict[str, frozenset[str]] = {
    # a browser, JupyterLab or a Jupyter server in every test
    "test_browser.py": ALL,
    # servers started and killed by the test itself
    "test_servers.py": frozenset(
        {
            "test_servers_die_with_a_starter_killed_by_sigkill",
            "test_the_command_line_exports_the_variables_and_stops_on_sigterm",
        }
    ),
    "test_graph_frontend.py": ALL,
    "test_hostile_names_browser.py": ALL,
    "test_lab_looking.py": ALL,
    "test_lab_panel.py": ALL,
    "test_server.py": ALL,
    "test_server_looking.py": ALL,
    # kernels or nbflow processes in every test
    "test_alerts.py": ALL,
    "test_faults.py": ALL,
    "test_hot_paths.py": ALL,
    "test_html_report.py": ALL,
    "test_incremental.py": ALL,
    "test_junit.py": ALL,
    "test_memory.py": ALL,
    "test_processes.py": ALL,
    "test_run.py": ALL,
    "test_secrets.py": ALL,
    # modules that mix both
    "test_binder.py": frozenset({"test_a_binder_environment_runs_the_example_with_the_panel_and_widgets"}),
    "test_cli.py": frozenset({"test_success_exits_zero_and_default_path_is_the_current_folder"}),
    "test_cli_options.py": frozenset({"test_a_kernel_that_does_not_start_fails_its_task_not_the_command"}),
    "test_code_tasks.py": frozenset(
        {
            "test_function_and_http_tasks_run_beside_notebooks",
            "test_code_tasks_fail_like_notebooks",
            "test_a_folders_tasks_file_adds_code_tasks_for_the_cli",
            "test_looking_lists_code_tasks_and_running_runs_them",
            "test_a_tasks_file_that_fails_to_load_leaves_the_pipeline_as_it_was",
        }
    ),
    "test_dask.py": frozenset(
        {
            "test_an_up_to_date_run_starts_no_cluster",
            "test_bad_executor_options_exit_2",  # waits out a connection timeout (11 s measured)
            "test_the_example_pipeline_on_a_local_cluster_from_the_command_line",
        }
    ),
    "test_example.py": frozenset({"test_example_runs_end_to_end_and_is_deterministic"}),
    "test_kinds.py": frozenset(
        {
            "test_every_kind_reads_the_product_of_every_kind",
            "test_an_upstream_the_code_may_define_waits_for_the_code_to_run",
        }
    ),
    "test_looking.py": frozenset(
        {
            "test_showing_the_dashboard_runs_nothing_and_writes_nothing",
            "test_the_dashboards_run_is_when_the_code_runs",
            "test_dag_and_report_from_a_terminal_run_nothing_and_write_nothing",
        }
    ),
    "test_operations.py": frozenset(
        {
            "test_a_flaky_notebook_succeeds_on_its_third_attempt",
            "test_a_rule_fails_an_error_at_once",
            "test_a_notebook_past_its_timeout_is_stopped_in_about_the_timeout",
            "test_trigger_rules_run_cleanup_and_alert_notebooks",
        }
    ),
    "test_output_floods.py": frozenset(
        {
            "test_a_stdout_flood_succeeds_keeps_its_head_and_says_how_much_was_cut",
            "test_a_stderr_flood_is_cut_at_the_notebooks_own_limit",
            "test_one_50_mb_line_is_cut_at_the_tasks_limit",
            "test_display_floods_updates_and_progress_bars",
            "test_many_small_messages_are_kept_whole_in_one_output",
            "test_a_cut_leaves_no_piece_of_a_secret",
        }
    ),
    "test_reproduce.py": frozenset(
        {
            "test_a_run_records_what_it_ran_with",
            "test_diff_names_parameters_sources_and_task_changes",
            "test_rerun_uses_the_runs_parameters_and_says_what_changed",
        }
    ),
    "test_schedule.py": frozenset(
        {
            "test_runs_start_on_time_with_an_injected_clock",
            "test_never_two_runs_at_once_and_a_failing_run_is_survived",
            "test_max_active_runs_queues_instead_of_skipping",
            "test_a_real_scheduler_process_runs_on_a_short_interval_and_stops_on_sigterm",
            "test_backfill_runs_past_dates_in_order_and_skips_what_succeeded",
        }
    ),
    "test_sql_tasks.py": frozenset(
        {
            "test_a_sql_task_reads_upstream_products_binds_parameters_and_writes_its_product",
            "test_the_result_is_computed_once",
            "test_a_failing_query_is_a_failed_task_with_duckdbs_message",
            "test_a_sql_task_past_its_timeout_is_interrupted",
        }
    ),
    "test_store_contract.py": frozenset(
        {
            "test_writes_wait_for_a_reader_that_holds_the_file_and_nothing_is_lost",
            "test_a_killed_process_keeps_its_records_and_a_live_ones_file_is_left_alone",
        }
    ),
    "test_store_reads.py": frozenset({"test_records_written_ahead_are_visible_before_the_database_has_them"}),
    "test_warm_kernels.py": ALL,
    "test_widgets.py": frozenset(
        {
            "test_states_and_colours_follow_a_run_with_a_failure",
            "test_history_matches_the_store_and_choosing_a_run_recolours_the_graph",
            "test_stop_ends_running_kernels_and_records_the_run_interrupted",
            "test_the_watcher_picks_up_a_run_made_by_another_process",
            "test_a_300_task_graph_is_shown_at_once_and_laid_out_by_dot_in_the_background",
            "test_run_shows_a_bad_parameter_and_runs_nothing",
            "test_stop_asks_a_run_in_another_process_to_stop",
            "test_the_task_panel_lists_each_attempt_of_a_retried_task",
        }
    ),
}
#: an unmarked test slower than this (setup, call and teardown) is named in the summary
SLOW_SECONDS = 2.0


def _stale_slow_names() -> list[str]:
    """Names in SLOW_TESTS that no test module defines any more (a rename would quietly unmark a test)."""
    stale = []
    for module, names in SLOW_TESTS.items():
        path = HERE / module
        source = path.read_text(encoding="utf-8") if path.exists() else ""
        if not source:
            stale.append(module)
        stale += [f"{module}::{name}" for name in sorted(names - ALL) if f"def {name}(" not in source]
    return stale


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    stale = _stale_slow_names()
    if stale:
        raise pytest.UsageError(f"tests/conftest.py SLOW_TESTS names tests that do not exist: {stale}")
    for item in items:
        names = SLOW_TESTS.get(item.path.name, frozenset())
        function = getattr(item, "originalname", item.name)
        if names is ALL or function in names or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


_unmarked_durations: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "slow" not in report.keywords:
        _unmarked_durations[report.nodeid] = _unmarked_durations.get(report.nodeid, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    slow = sorted(((d, n) for n, d in _unmarked_durations.items() if d > SLOW_SECONDS), reverse=True)
    if slow:
        terminalreporter.section(f"tests not marked slow that took over {SLOW_SECONDS:.0f} s", yellow=True)
        terminalreporter.write_line(
            "mark them slow in tests/conftest.py (SLOW_TESTS) if they start a kernel or a process:"
        )
        for duration, nodeid in slow:
            terminalreporter.write_line(f"{duration:6.1f} s  {nodeid}")
