"""The monitor's data: a run's timeline and Gantt chart, the runs x tasks grid, a task's trend."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

from nbflow.store.base import AttemptRecord, RunRecord, TaskRecord
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
