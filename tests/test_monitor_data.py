"""The monitor's data: a run's timeline and Gantt chart, the runs x tasks grid, a task's trend."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import nbflow_process, rendezvous, write_notebook
from tornado.httpclient import HTTPClientError

from nbflow.execution.follow import read_log_from, read_log_tail_at
from nbflow.history import declared_upstreams, open_store, run_grid, run_timeline, task_trend
from nbflow.store.base import AttemptRecord, RunRecord, TaskRecord
from nbflow.store.duckdb import DuckDBRunStore
from nbflow.store.memory import MemoryRunStore
from nbflow.views.grid import grid_json, trend_json
from nbflow.views.timeline import build_timeline, gantt_svg, timeline_json

T0 = datetime(2026, 1, 2, 3, 4, 5)
HOSTILE = "<img src=x onerror=alert(1)>"
SVG = "{http://www.w3.org/2000/svg}"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def attempt(task: str, n: int, state: str, start: float, end: float | None, run: str = "r1") -> AttemptRecord:
    return AttemptRecord(run, task, n, state, at(start), None if end is None else at(end))


def task(name: str, state: str, start: float | None, end: float | None, attempts: int = 1, run: str = "r1"):
    return TaskRecord(
        run, name, state, attempts, None if start is None else at(start), None if end is None else at(end)
    )


def retried_run():
    """load (root) -> clean (failed once, retried) -> report (running); skipped has no attempt."""
    run = RunRecord("r1", "pipe", "running", T0)
    tasks = {
        "load": task("load", "success", 0.5, 2.0),
        "clean": task("clean", "success", 3.0, 9.0, attempts=2),
        "report": task("report", "running", 10.0, None),
        "skipped": task("skipped", "upstream_failed", None, None, attempts=0),
    }
    attempts = [
        attempt("clean", 2, "success", 6.0, 9.0),
        attempt("load", 1, "success", 0.5, 2.0),
        attempt("clean", 1, "failed", 3.0, 4.0),
        attempt("report", 1, "running", 10.0, None),
    ]
    upstreams = {"load": [], "clean": ["load"], "report": ["clean"], "skipped": ["load"]}
    kernel = {("load", 1): at(1.0), ("clean", 2): at(7.5), ("report", 1): at(11.0), ("clean", 1): at(99.0)}
    return run, tasks, attempts, upstreams, kernel


def test_timeline_waits_from_upstreams_and_retries_from_the_attempt_before():
    run, tasks, attempts, upstreams, kernel = retried_run()
    tl = build_timeline(run, tasks, attempts, upstreams, kernel, now=at(12.5))
    bars = {(b.task, b.attempt): b for b in tl.bars}
    assert bars[("load", 1)].ready_s == 0.0  # a root is ready when the run starts
    assert bars[("clean", 1)].ready_s == 2.0  # when load ended
    assert bars[("clean", 2)].ready_s == 4.0  # a retry: when attempt 1 ended
    assert bars[("clean", 2)].start_s == 6.0
    assert bars[("report", 1)].ready_s == 9.0
    assert bars[("report", 1)].end_s is None and tl.now_s == 12.5
    assert bars[("clean", 1)].kernel_ready_s is None  # outside its attempt: not believed
    for bar in tl.bars:
        if bar.kernel_ready_s is not None:
            assert bar.ready_s <= bar.start_s <= bar.kernel_ready_s <= (bar.end_s or tl.now_s)
    assert tl.tasks == ["load", "clean", "report", "skipped"]
    assert tl.states["skipped"] == "upstream_failed"


def test_timeline_json_keeps_every_attempt():
    run, tasks, attempts, upstreams, kernel = retried_run()
    data = timeline_json(build_timeline(run, tasks, attempts, upstreams, kernel))
    assert data["run_id"] == "r1" and data["state"] == "running" and data["duration_s"] is None
    assert data["started_at"] == "2026-01-02T03:04:05Z"
    assert [(b["task"], b["attempt"]) for b in data["bars"]] == [("clean", 1), ("clean", 2), ("load", 1), ("report", 1)]
    assert set(data["bars"][0]) == {"task", "attempt", "state", "ready_s", "start_s", "kernel_ready_s", "end_s"}
    assert data["now_s"] == 11.0  # no "now" given: the latest time known


def test_timeline_clamps_a_wait_that_would_end_after_the_start():
    run = RunRecord("r1", "pipe", "success", T0, at(5))
    tasks = {"a": task("a", "success", 0, 4), "b": task("b", "success", 1, 5)}
    tl = build_timeline(
        run, tasks, [attempt("a", 1, "success", 0, 4), attempt("b", 1, "success", 1, 5)], {"a": [], "b": ["a"]}
    )
    b = next(bar for bar in tl.bars if bar.task == "b")
    assert b.ready_s == b.start_s == 1.0
    assert tl.duration_s == 5.0 and tl.now_s == 5.0


def test_gantt_escapes_names_and_draws_every_task():
    run, tasks, attempts, upstreams, kernel = retried_run()
    tasks[HOSTILE] = task(HOSTILE, "failed", 9.5, 10.5)
    attempts.append(attempt(HOSTILE, 1, "failed", 9.5, 10.5))
    upstreams[HOSTILE] = ["clean"]
    svg = gantt_svg(build_timeline(run, tasks, attempts, upstreams, kernel, now=at(12)), width=600)
    assert "<img" not in svg and "<script" not in svg.lower() and "href" not in svg
    root = ET.fromstring(svg)
    assert root.get("width") == "600"
    labels = [el for el in root.iter(f"{SVG}text") if el.get("class") == "nbflow-gantt-label"]
    titles = [el.find(f"{SVG}title") for el in labels]
    assert [t.tail for t in titles] == ["load", "clean", HOSTILE, "report", "skipped"]  # text, not markup
    assert [t.text for t in titles][2] == f"{HOSTILE}: failed"
    assert all(el.get("fill") == "currentColor" for el in labels)
    classes = [el.get("class") or "" for el in root.iter(f"{SVG}rect")]
    assert sum("nbflow-gantt-run" in c for c in classes) == 5  # one an attempt: the retry is its own bar
    assert "nbflow-gantt-kernel" in classes and "nbflow-gantt-queued" in classes
    assert any(el.get("class") == "nbflow-gantt-axis" for el in root.iter(f"{SVG}g"))


def test_gantt_of_a_run_with_no_attempt_is_still_a_drawing():
    run = RunRecord("r0", "pipe", "running", T0)
    svg = gantt_svg(build_timeline(run, {}, [], {"a": []}), width=300)
    assert ET.fromstring(svg).get("height")


def test_grid_newest_first_in_dag_order_with_missing_cells():
    old = RunRecord("old", "pipe", "failed", T0, at(10))
    new = RunRecord("new", "pipe", "running", at(60))
    tasks = {
        "old": {"b": task("b", "failed", 1, 3, run="old"), "gone": task("gone", "success", 0, 1, run="old")},
        "new": {"a": task("a", "success", 61, 62.25, run="new"), "b": task("b", "running", 63, None, 2, "new")},
    }
    data = grid_json([old, new], tasks, ["a", "b"])
    assert [r["run_id"] for r in data["runs"]] == ["new", "old"]
    assert data["runs"][1] == {
        "run_id": "old",
        "state": "failed",
        "started_at": "2026-01-02T03:04:05Z",
        "duration_s": 10.0,
    }
    assert data["tasks"] == ["a", "b", "gone"]
    assert "a" not in data["cells"]["old"]
    assert data["cells"]["new"]["a"] == {"state": "success", "attempts": 1, "duration_s": 1.25}
    assert data["cells"]["new"]["b"] == {"state": "running", "attempts": 2, "duration_s": None}


def test_trend_oldest_first_one_point_an_attempt():
    points = [
        attempt("a", 1, "success", 100, 103, run="r2"),
        attempt("a", 1, "failed", 0, 1, run="r1"),
        attempt("a", 2, "success", 5, 7.5, run="r1"),
        attempt("b", 1, "success", 0, 1, run="r1"),
        attempt("a", 1, "running", 200, None, run="r3"),
    ]
    data = trend_json("a", points)
    assert data["task"] == "a"
    assert [(p["run_id"], p["attempt"]) for p in data["points"]] == [("r1", 1), ("r1", 2), ("r2", 1), ("r3", 1)]
    assert [p["duration_s"] for p in data["points"]] == [1.0, 2.5, 3.0, None]
    assert data["points"][0] == {
        "run_id": "r1",
        "attempt": 1,
        "started_at": "2026-01-02T03:04:05Z",
        "duration_s": 1.0,
        "state": "failed",
    }


# -- the store's reads for the grid and the trend, in every store ------------------------------


@pytest.fixture(params=["duckdb", "memory"])
def store(request, tmp_path: Path):
    s = DuckDBRunStore(tmp_path / "state.duckdb") if request.param == "duckdb" else MemoryRunStore()
    yield s
    s.close()


def test_recent_tasks_and_task_attempts_in_every_store(store) -> None:
    for i, run_id in enumerate(["r1", "r2", "r3"]):
        store.save_run(RunRecord(run_id, "/p", "success", at(100 * i), at(100 * i + 50)))
        store.save_task(task("a", "success", 100 * i, 100 * i + 10, attempts=2, run=run_id))
        store.save_attempt(attempt("a", 1, "failed", 100 * i, 100 * i + 3, run=run_id))
        store.save_attempt(attempt("a", 2, "success", 100 * i + 4, 100 * i + 10, run=run_id))
        if run_id != "r2":
            store.save_task(task("b", "success", 100 * i + 10, 100 * i + 20, run=run_id))
            store.save_attempt(attempt("b", 1, "success", 100 * i + 10, 100 * i + 20, run=run_id))
    store.flush()
    runs, tasks = store.recent_tasks(2)
    assert [r.run_id for r in runs] == ["r3", "r2"] and set(tasks) == {"r3", "r2"}
    assert set(tasks["r2"]) == {"a"} and tasks["r3"]["b"].state == "success"
    assert [r.run_id for r in store.recent_tasks()[0]] == ["r3", "r2", "r1"]
    latest = store.task_attempts("a", 3)
    assert [(a.run_id, a.attempt) for a in latest] == [("r2", 2), ("r3", 1), ("r3", 2)]
    assert len(store.task_attempts("a")) == 6 and store.task_attempts("nothing") == []


# -- a log followed: bounded reads from an offset, never a character cut ------------------------


def test_a_log_is_read_from_an_offset_without_cutting_a_character(tmp_path: Path) -> None:
    log = tmp_path / "attempt-1.log"
    log.write_bytes("first é\n".encode())
    text, end = read_log_from(log, 0, cap=7)  # "é" is two bytes: the cut falls inside it
    assert text == "first " and end == 6
    with log.open("ab") as f:
        f.write(b"second\n")
    rest, end = read_log_from(log, end)
    assert rest == "é\nsecond\n" and end == log.stat().st_size
    assert read_log_from(log, end) == ("", end)
    tail, at_end = read_log_tail_at(log, cap=8)
    assert tail.endswith("second\n") and tail.startswith("[nbflow: ") and at_end == log.stat().st_size


# -- a real run, read by the history functions and through the server ----------------------------

FLAKY = (
    "import pathlib\n"
    "flag = pathlib.Path({flag!r})\n"
    "if not flag.exists():\n"
    "    flag.touch()\n"
    "    raise ValueError('the first try fails')\n"
    "print('flaky ran')"
)


def _flaky_pipeline(folder: Path, flags: Path) -> None:
    write_notebook(folder, "load", "upstream = None", "print('loaded')")
    write_notebook(folder, "flaky", 'upstream = ["load"]', FLAKY.format(flag=str(flags / "flaky-failed-once")))
    write_notebook(folder, "report", 'upstream = ["flaky"]', "print('reported')")
    write_notebook(folder, "side", "upstream = None", "print('side')")
    (folder / "nbflow.toml").write_text("[tasks.flaky]\nretries = 1\nretry_delay = 0\n")


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_the_timeline_grid_and_trend_of_real_runs_with_a_retry(tmp_path: Path) -> None:
    folder, flags = tmp_path / "pipe", tmp_path / "flags"
    flags.mkdir()
    _flaky_pipeline(folder, flags)
    first = nbflow_process("run", str(folder), "--no-progress")
    assert first.returncode == 0, first.stderr
    second = nbflow_process("run", str(folder), "--no-progress", "--force")
    assert second.returncode == 0, second.stderr
    before = _snapshot(folder)
    with open_store(folder, read_only=True) as store:
        runs = store.list_runs()
        tl = run_timeline(store, folder, runs[1].run_id)
        grid = run_grid(store, list(declared_upstreams(folder)))
        trend = task_trend(store, "flaky")
    assert _snapshot(folder) == before, "reading wrote nothing"

    bars = {(b.task, b.attempt): b for b in tl.bars}
    assert set(bars) == {("load", 1), ("flaky", 1), ("flaky", 2), ("report", 1), ("side", 1)}
    assert bars[("flaky", 1)].state == "failed" and bars[("flaky", 2)].state == "success"
    assert bars[("flaky", 2)].ready_s == bars[("flaky", 1)].end_s  # the retry waited from the failure
    assert bars[("flaky", 1)].ready_s == bars[("load", 1)].end_s
    assert bars[("report", 1)].ready_s == bars[("flaky", 2)].end_s
    for bar in tl.bars:
        assert bar.end_s is not None and bar.kernel_ready_s is not None, bar
        assert bar.ready_s <= bar.start_s < bar.kernel_ready_s < bar.end_s <= tl.now_s
    assert set(tl.tasks) == {"load", "flaky", "report", "side"}
    assert tl.tasks.index("load") < tl.tasks.index("flaky") < tl.tasks.index("report")
    svg = gantt_svg(tl, width=800)
    assert ET.fromstring(svg) is not None and svg.count('class="nbflow-gantt-label"') == 4

    assert [r["run_id"] for r in grid["runs"]] == [r.run_id for r in runs]
    assert grid["tasks"].index("load") < grid["tasks"].index("flaky") < grid["tasks"].index("report")
    assert grid["cells"][runs[1].run_id]["flaky"]["attempts"] == 2
    assert grid["cells"][runs[0].run_id]["flaky"] == {
        "state": "success",
        "attempts": 1,
        "duration_s": grid["cells"][runs[0].run_id]["flaky"]["duration_s"],
    }
    assert [(p["run_id"], p["attempt"], p["state"]) for p in trend["points"]] == [
        (runs[1].run_id, 1, "failed"),
        (runs[1].run_id, 2, "success"),
        (runs[0].run_id, 1, "success"),
    ]
    assert all(p["duration_s"] > 0 for p in trend["points"])


# -- the REST routes, in a real Jupyter server -------------------------------------------------

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"nbflow": True}}}


async def _get(jp_fetch, route: str, **params: str):
    response = await jp_fetch("nbflow", route, method="GET", params=params)
    return json.loads(response.body)


async def _refused(jp_fetch, route: str, **params: str) -> int:
    with pytest.raises(HTTPClientError) as info:
        await _get(jp_fetch, route, **params)
    return info.value.code


@pytest.mark.slow
async def test_the_grid_timeline_and_trend_routes(jp_fetch, jp_root_dir: Path) -> None:
    folder, flags = jp_root_dir / "pipe", jp_root_dir / "flags"
    flags.mkdir()
    _flaky_pipeline(folder, flags)
    for extra in ([], ["--force"]):
        done = await asyncio.to_thread(nbflow_process, "run", str(folder), "--no-progress", *extra)
        assert done.returncode == 0, done.stderr
    before = _snapshot(folder)

    grid = await _get(jp_fetch, "grid", path="pipe")
    assert len(grid["runs"]) == 2 and set(grid["runs"][0]) == {"run_id", "state", "started_at", "duration_s"}
    older, newer = grid["runs"][1]["run_id"], grid["runs"][0]["run_id"]
    assert grid["tasks"].index("load") < grid["tasks"].index("flaky") < grid["tasks"].index("report")
    assert grid["cells"][older]["flaky"]["attempts"] == 2 and grid["cells"][older]["flaky"]["state"] == "success"
    assert len((await _get(jp_fetch, "grid", path="pipe", limit="1"))["runs"]) == 1

    latest = await _get(jp_fetch, "timeline", path="pipe")
    assert latest["run_id"] == newer
    timeline = await _get(jp_fetch, "timeline", path="pipe", run=older)
    assert timeline["run_id"] == older and timeline["state"] == "success" and timeline["duration_s"] > 0
    assert {b["task"] for b in timeline["bars"]} == set(timeline["tasks"]) == {"load", "flaky", "report", "side"}
    assert [b["attempt"] for b in timeline["bars"] if b["task"] == "flaky"] == [1, 2]
    for bar in timeline["bars"]:
        assert bar["ready_s"] <= bar["start_s"] <= bar["kernel_ready_s"] <= bar["end_s"], bar

    trend = await _get(jp_fetch, "trend", path="pipe", task="flaky")
    assert [(p["run_id"], p["attempt"]) for p in trend["points"]] == [(older, 1), (older, 2), (newer, 1)]
    assert (await _get(jp_fetch, "trend", path="pipe", task="flaky", limit="1"))["points"][0]["run_id"] == newer

    assert await _refused(jp_fetch, "trend", path="pipe", task="nosuch") == 404
    assert await _refused(jp_fetch, "timeline", path="pipe", run="nosuch") == 404
    assert await _refused(jp_fetch, "grid", path="..") == 403
    assert await _refused(jp_fetch, "grid", path="pipe", limit="many") == 400
    assert _snapshot(folder) == before, "looking wrote nothing"


@pytest.mark.slow
async def test_the_log_route_follows_a_running_task_from_an_offset(jp_fetch, jp_root_dir: Path) -> None:
    folder, flags = jp_root_dir / "pipe", jp_root_dir / "flags"
    flags.mkdir()
    write_notebook(
        folder,
        "talk",
        "upstream = None",
        "print('before the wait', flush=True)",
        rendezvous(flags, "talk", "test"),
        "print('after the wait')",
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "nbflow", "run", str(folder), "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, "the task's first output never showed"
            try:
                first = await _get(jp_fetch, "log", path="pipe", task="talk")
            except HTTPClientError:  # no run or no attempt yet
                first = None
            if first and "before the wait" in first["text"]:
                break
            await asyncio.sleep(0.1)
        assert first["complete"] is False and first["state"] == "running"
        assert isinstance(first["offset"], int) and {"error", "traceback", "output_notebook"} <= set(first)
        again = await _get(jp_fetch, "log", path="pipe", task="talk", offset=str(first["offset"]))
        assert again["text"] == "" and again["offset"] == first["offset"] and again["restart"] is False

        before = _snapshot(folder)
        (flags / "test.running").touch()
        followed, offset = "", first["offset"]
        while True:
            assert time.monotonic() < deadline + 120, "the task never ended"
            piece = await _get(jp_fetch, "log", path="pipe", task="talk", offset=str(offset))
            assert piece["restart"] is False
            followed += piece["text"]
            offset = piece["offset"]
            if piece["complete"]:
                break
            await asyncio.sleep(0.1)
        assert "after the wait" in followed and "before the wait" not in followed
        assert piece["state"] == "success"
        assert await asyncio.to_thread(run.wait, 120) == 0
        whole = await _get(jp_fetch, "log", path="pipe", task="talk")
        assert "before the wait" in whole["text"] and "after the wait" in whole["text"] and whole["complete"]
        changed = {p for p, s in _snapshot(folder).items() if before.get(p) != s}
        assert all("_nbflow" in p for p in changed), "only the run wrote, into its own state folder"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
