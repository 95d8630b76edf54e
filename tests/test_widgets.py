"""The dashboard's Python side, driven by real runs in real kernels and a real DuckDB file."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import nbformat
import psutil
import pytest

from nbflow import states
from nbflow.errors import PipelineValidationError
from nbflow.pipeline import Pipeline
from nbflow.store.base import AttemptRecord, RunRecord, TaskRecord
from nbflow.store.duckdb import DuckDBRunStore
from nbflow.store.watch import StoreWatcher, store_stamp
from nbflow.views import svg as layout_module
from nbflow.views.svg import NO_DOT_NOTE, layout
from nbflow.widgets import Dashboard
from tests.conftest import live_kernels


def _until(check: Callable[[], object], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


@pytest.fixture
def failing_pipeline(make_notebook, tmp_path: Path) -> Path:
    make_notebook("load", "upstream = None\nrows = 3", "print('loaded', rows)")
    make_notebook("boom", 'upstream = ["load"]', "raise ValueError('bad row 7')")
    make_notebook("report", 'upstream = ["boom"]', "print('never')")
    make_notebook("side", 'upstream = ["load"]', "print('side ok')")
    return tmp_path


def _dashboard(path: Path, **kwargs) -> Dashboard:
    return Dashboard(Pipeline.from_dir(path), **kwargs)


def test_states_and_colours_follow_a_run_with_a_failure(failing_pipeline: Path) -> None:
    dash = _dashboard(failing_pipeline)
    paints: list[dict[str, list[str]]] = []
    dash.graph.observe(lambda change: paints.append(change["new"]), names="paint")
    try:
        assert dash.graph.svg.count('class="node"') == 4
        assert set(dash.graph.paint) == {"load", "boom", "report", "side"}
        assert all(p[0] == "" for p in dash.graph.paint.values()), "no run yet: nothing coloured"
        assert dash.run() is not None
        result = dash.wait(120)
        assert result is not None and result.state == states.FAILED
        seen = {(name, p[0]) for paint in paints for name, p in paint.items()}
        assert {("load", "running"), ("load", "success"), ("boom", "running"), ("boom", "failed")} <= seen
        assert ("report", "upstream_failed") in seen and ("side", "success") in seen
        final = dash.graph.paint
        assert {n: p[0] for n, p in final.items()} == result.states
        for state, colour, _note in final.values():
            assert colour == states.COLOURS[state]
        assert final["load"][2].endswith("s"), "a finished task shows its duration"
        assert final["report"][2] == ""
        assert "failed" in dash.header.value and result.run_id in dash.header.value
        dash.select_task("boom")
        assert "ValueError: bad row 7" in dash.task_detail.value
        assert "traceback" in dash.task_detail.value
        notebook = dash.tasks["boom"].output_notebook
        assert notebook and Path(notebook).exists(), "the failed task's executed notebook is kept"
        assert Path(notebook).name in dash.task_detail.value
        dash.select_task("load")
        assert "loaded 3" in dash.task_log.value
    finally:
        dash.close()


def test_history_matches_the_store_and_choosing_a_run_recolours_the_graph(make_notebook, tmp_path: Path) -> None:
    make_notebook("a", "upstream = None\nfail = False", "assert not fail, 'asked to fail'")
    make_notebook("b", 'upstream = ["a"]', "print('b')")
    pipeline = Pipeline.from_dir(tmp_path)
    first = pipeline.run(params={"fail": True})
    second = pipeline.run(params={"fail": False})
    assert (first.state, second.state) == ("failed", "success")
    dash = _dashboard(tmp_path)
    try:
        with DuckDBRunStore(pipeline.state_path) as store:
            runs = store.list_runs()
        values = [value for _label, value in dash.history.options]
        assert values == ["", *(r.run_id for r in runs)]
        labels = [label for label, _value in dash.history.options[1:]]
        for label, run in zip(labels, runs, strict=True):
            assert run.run_id in label and run.state in label
        assert "fail=true" in labels[1]
        assert {n: p[0] for n, p in dash.graph.paint.items()} == {"a": "success", "b": "success"}
        dash.history.value = first.run_id  # as a click in the list does
        assert {n: p[0] for n, p in dash.graph.paint.items()} == {"a": "failed", "b": "upstream_failed"}
        assert dash.graph.paint["a"][1] == states.COLOURS["failed"]
        assert first.run_id in dash.header.value
        dash.show_run(None)
        assert dash.run_record is not None and dash.run_record.run_id == second.run_id
    finally:
        dash.close()


def _kernels() -> list[psutil.Process]:
    return live_kernels()


def test_stop_ends_running_kernels_and_records_the_run_interrupted(make_notebook, tmp_path: Path) -> None:
    make_notebook("slow", "upstream = None", "import time\nprint('started', flush=True)\ntime.sleep(120)")
    make_notebook("after", 'upstream = ["slow"]', "print('after')")
    dash = _dashboard(tmp_path)
    try:
        dash.run()
        _until(lambda: dash.graph.paint["slow"][0] == "running", what="the task to start")
        _until(lambda: "started" in (dash.select_task("slow") or dash.task_log.value), what="its live log")
        assert _kernels(), "the task runs in a kernel"
        assert dash.stop_button.disabled is False and dash.run_button.disabled is True
        assert dash.stop() is True
        result = dash.wait(60)
        assert result is not None and result.state == states.INTERRUPTED
        assert result.states["slow"] == "interrupted" and result.states["after"] != "success"
        _until(lambda: not _kernels(), timeout=30, what="the kernel to end")
        with DuckDBRunStore(tmp_path / "_nbflow" / "state.duckdb") as store:
            assert store.get_run(result.run_id).state == "interrupted"
        _until(lambda: dash.graph.paint["slow"][0] == "interrupted", what="the graph to show it")
        assert dash.run_button.disabled is False
    finally:
        dash.close()


def test_the_watcher_picks_up_a_run_made_by_another_process(make_notebook, tmp_path: Path) -> None:
    go = tmp_path / "go"
    # "first" runs until the test has seen it running: no race with how fast the watcher looks
    make_notebook(
        "first",
        "upstream = None",
        f"import pathlib, time\nwhile not pathlib.Path({str(go)!r}).exists():\n    time.sleep(0.05)",
    )
    make_notebook("second", 'upstream = ["first"]', "print('second')")
    dash = _dashboard(tmp_path, poll_interval=0.1)
    seen: list[tuple[str, str]] = []
    dash.graph.observe(lambda c: seen.extend((n, p[0]) for n, p in c["new"].items()), names="paint")
    try:
        assert dash.run_record is None and "No runs yet" in dash.header.value
        proc = subprocess.Popen(
            [sys.executable, "-m", "nbflow", "run", str(tmp_path), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        try:
            _until(lambda: ("first", "running") in seen or proc.poll() is not None, 180, "first to be running")
            assert ("first", "running") in seen, "the running state of the other process's run was shown"
        finally:
            go.touch()
            _out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        _until(lambda: {p[0] for p in dash.graph.paint.values()} == {"success"}, what="both tasks to succeed")
        assert dash.run_record is not None and dash.run_record.pid != os.getpid()
        assert [v for _l, v in dash.history.options][1] == dash.run_record.run_id
        # the process has ended: once the watcher has seen its last writes, it reads no more
        store = tmp_path / "_nbflow" / "state.duckdb"
        _until(lambda: dash.watcher.stamp == store_stamp(store), what="the watcher to see the last writes")
        reads, ticks = dash.watcher.reads, dash.watcher.ticks
        _until(lambda: dash.watcher.ticks >= ticks + 5, what="five more ticks")
        assert dash.watcher.reads == reads, "nothing changed, so the store was not read again"
    finally:
        dash.close()


def test_store_stamp_changes_with_each_write(tmp_path: Path) -> None:
    path = tmp_path / "_nbflow" / "state.duckdb"
    assert store_stamp(path) == ()
    calls: list[int] = []
    watcher = StoreWatcher(path, lambda: calls.append(1))
    assert watcher.check() is True  # the first look counts as a change
    assert watcher.check() is False
    store = DuckDBRunStore(path)
    store.save_run(RunRecord("r1", str(tmp_path), "running", datetime(2026, 1, 1)))
    store.flush()
    assert watcher.check() is True
    store.close()
    assert len(calls) == 2


def test_without_dot_the_graph_falls_back_to_a_plain_layout(
    make_notebook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    make_notebook("plain_load", "upstream = None", "pass")
    make_notebook("plain_boom", 'upstream = ["plain_load"]', "pass")
    make_notebook("plain_report", 'upstream = ["plain_boom"]', "pass")
    make_notebook("plain_side", 'upstream = ["plain_load"]', "pass")
    empty = tmp_path_factory.mktemp("no-dot-here")
    monkeypatch.setenv("PATH", str(empty))  # the environment has no Graphviz: nothing else is changed
    pipeline = Pipeline.from_dir(tmp_path)
    drawing = layout(pipeline.dag)
    assert drawing.engine == "fallback" and drawing.note == NO_DOT_NOTE
    for name in ("plain_load", "plain_boom", "plain_report", "plain_side"):
        assert f"<title>{name}</title>" in drawing.svg
    assert drawing.svg.count('class="edge"') == 3
    dash = Dashboard(pipeline)
    try:
        assert dash.layout_engine == "fallback" and "apt install graphviz" in dash.note.value
        assert dash.graph.svg == drawing.svg
    finally:
        dash.close()


def test_a_300_task_graph_is_shown_at_once_and_laid_out_by_dot_in_the_background(tmp_path: Path, make_notebook) -> None:
    for i in range(300):
        ups = [f"t{j:03d}" for j in (i - 1, i - 7, i - 31) if j >= 0]
        make_notebook(f"t{i:03d}", f"upstream = {ups!r}", "pass")
    pipeline = Pipeline.from_dir(tmp_path)
    assert layout_module.is_big(pipeline.dag) and layout_module.cached(pipeline.dag) is None
    dash = Dashboard(pipeline)
    try:
        assert dash.layout_engine == "pending", "a plain drawing first, while dot works"
        assert dash.graph.svg.count('class="node"') == 300
        assert len(dash.graph.paint) == 300 and len(dash.task_picker.options) == 300
        assert dash.wait_for_layout(120) == "dot"
        assert dash.graph.svg.count('class="node"') == 300 and dash.note.value == ""
        assert layout_module.cached(pipeline.dag) is not None
    finally:
        dash.close()
    again = Dashboard(pipeline)
    try:
        assert again.layout_engine == "dot", "the layout is cached by structure"
    finally:
        again.close()


def test_a_dashboard_notebook_beside_the_pipeline_is_not_a_task(make_notebook, tmp_path: Path) -> None:
    make_notebook("load", "upstream = None", "pass")
    dashboard = make_notebook("dashboard", None, "import nbflow\nnbflow.show('.')")

    nb = nbformat.read(dashboard, as_version=4)
    nb.metadata["nbflow"] = {"task": False}
    nbformat.write(nb, dashboard)
    assert list(Pipeline.from_dir(tmp_path).specs) == ["load"]
    nb.metadata["nbflow"] = {"task": "no"}
    nbformat.write(nb, dashboard)
    with pytest.raises(PipelineValidationError, match="dashboard.ipynb.*'task' must be true or false"):
        Pipeline.from_dir(tmp_path)


def test_run_shows_a_bad_parameter_and_runs_nothing(make_notebook, tmp_path: Path) -> None:
    make_notebook("a", "upstream = None\nrows = 1", "pass")
    dash = _dashboard(tmp_path)
    try:
        assert list(dash.param_fields) == ["rows"] and dash.param_fields["rows"].value == "1"
        dash.param_fields["rows"].value = "5"
        assert dash.form_params() == {"rows": 5}
        assert dash.run(params={"nope": 1}) is None
        assert "nope" in dash.message.value
        assert dash.run_record is None
        thread = dash.run(params=dash.form_params())
        assert thread is not None
        result = dash.wait(120)
        assert result is not None and result.ok
        assert dash.run_record is not None and dash.run_record.params == {"rows": 5}
    finally:
        dash.close()


def test_the_watcher_thread_ends_with_the_widget(make_notebook, tmp_path: Path) -> None:
    make_notebook("a", "upstream = None", "pass")
    before = {t.name for t in threading.enumerate()}
    dash = _dashboard(tmp_path)
    assert dash.watcher.running
    dash.close()
    assert not dash.watcher.running
    assert {t.name for t in threading.enumerate()} - before <= {"nbflow-store-writer"}


def test_stop_asks_a_run_in_another_process_to_stop(make_notebook, tmp_path: Path) -> None:
    make_notebook("slow", "upstream = None", "import time\ntime.sleep(120)")
    dash = _dashboard(tmp_path, poll_interval=0.1)
    log = tmp_path / "run.log"
    with (
        open(log, "w") as out,
        subprocess.Popen(
            [sys.executable, "-m", "nbflow", "run", str(tmp_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        ) as proc,
    ):
        try:
            _until(lambda: dash.graph.paint["slow"][0] == "running", what="the other process's task to start")
            assert dash.run_record is not None and dash.run_record.pid == proc.pid
            # the watcher's thread sets the buttons one after the other: wait for both
            _until(
                lambda: dash.run_button.disabled and not dash.stop_button.disabled,
                what="Run disabled and Stop enabled for the other process's run",
            )
            assert dash.stop() is True
            assert proc.wait(60) == 130, log.read_text()
            _until(lambda: dash.graph.paint["slow"][0] == "interrupted", what="the graph to show the stop")
            assert dash.run_record.state == "interrupted"
        finally:
            proc.kill()
            dash.close()


def test_task_names_beyond_ascii_are_drawn_as_they_are(make_notebook, tmp_path: Path) -> None:
    make_notebook("données", "upstream = None", "pass")
    make_notebook("modèle", 'upstream = ["données"]', "pass")
    pipeline = Pipeline.from_dir(tmp_path)
    svg = layout(pipeline.dag).svg
    assert "<title>données</title>" in svg and "<title>modèle</title>" in svg
    assert "u00e9" not in svg
    from nbflow.views.dot import dag_to_dot

    assert '"données" -> "modèle"' in dag_to_dot(pipeline.dag)


def test_the_task_panel_lists_each_attempt_of_a_retried_task(make_notebook, tmp_path: Path) -> None:
    marker = tmp_path / "tries"
    make_notebook(
        "flaky",
        "upstream = None",
        f"from pathlib import Path\np = Path({str(marker)!r})\nn = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\nprint('try', n)\nassert n >= 2, f'try {n} fails'",
    )
    (tmp_path / "nbflow.toml").write_text('retries = 2\nretry_delay = "0s"\n')
    dash = _dashboard(tmp_path)
    try:
        dash.run()
        result = dash.wait(120)
        assert result is not None and result.ok
        dash.select_task("flaky")
        assert "2: failed" in dash.task_detail.value and "success" in dash.task_detail.value
        assert "try 2" in dash.task_log.value, "the log is the latest attempt's"
    finally:
        dash.close()


def test_stop_signals_no_process_a_planted_store_names(make_notebook, tmp_path: Path) -> None:
    import socket

    from nbflow.engine.runner import utcnow

    make_notebook("a", "upstream = None", "pass")
    secret = tmp_path.parent / f"{tmp_path.name}-secret.txt"
    secret.write_text("TOP SECRET")
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        with DuckDBRunStore(tmp_path / "_nbflow" / "state.duckdb") as store:
            store.save_run(
                RunRecord("planted", str(tmp_path), "running", utcnow(), pid=bystander.pid, hostname=socket.gethostname())
            )
            store.save_task(TaskRecord("planted", "a", "running", 1, utcnow()))
            store.save_attempt(AttemptRecord("planted", "a", 1, "running", utcnow(), log_path=str(secret)))
        dash = _dashboard(tmp_path)
        try:
            _until(lambda: dash.run_record is not None and dash.run_record.run_id == "planted", what="the planted run")
            assert dash.stop() is False
            assert "nothing was stopped" in dash.message.value
            assert bystander.poll() is None, "the bystander got no signal"
            dash.select_task("a")
            assert "TOP SECRET" not in dash.task_log.value, "a log path outside the folder is not read"
        finally:
            dash.close()
    finally:
        bystander.kill()
        bystander.wait()
