"""views/: each output written once. The JSON shapes the CLI and the REST API give are pinned here."""

from __future__ import annotations

import json
from datetime import datetime

from nbflow.core.dag import build_dag
from nbflow.project.specs import ParametersDecl, TaskSpec
from nbflow.store.base import RunRecord, TaskRecord
from nbflow.views import dot, svg, text
from nbflow.views import json as views_json

STARTED = datetime(2026, 1, 2, 3, 4, 5, 678901)
ENDED = datetime(2026, 1, 2, 3, 5, 35)
RUN = RunRecord(
    "r1", "/p", "failed", STARTED, ENDED, {"n": 5, "name": "x"}, workers=2, selected=["a"], pid=4321, logical_date="2026-01-02"
)
TASKS = {
    "a": TaskRecord("r1", "a", "success", 1, STARTED, ENDED, output_notebook="/p/a.ipynb", reason="its code changed"),
    "b": TaskRecord("r1", "b", "failed", 2, STARTED, None, error="ValueError: x"),
    "c": TaskRecord("r1", "c", "upstream_failed"),
    "d": TaskRecord("r1", "d", "success", 1),
}


def _dag(names: list[str]):
    specs = [
        TaskSpec(n, None, f"{n}.ipynb", "python3", "python", ParametersDecl(upstream=tuple(names[:i][-1:])), 0, "")
        for i, n in enumerate(names)
    ]
    return build_dag(specs)


def test_the_cli_run_json_shape() -> None:
    """``nbflow status --json`` / ``run --json``: times to the millisecond, durations in seconds."""
    shown = views_json.run_to_json(RUN, TASKS)
    assert list(shown) == [
        "run_id",
        "state",
        "pipeline",
        "started_at",
        "ended_at",
        "duration_s",
        "params",
        "selected",
        "resumed_from",
        "logical_date",
        "tasks",
    ]
    assert {k: v for k, v in shown.items() if k != "tasks"} == {
        "run_id": "r1",
        "state": "failed",
        "pipeline": "/p",
        "started_at": "2026-01-02T03:04:05.678Z",
        "ended_at": "2026-01-02T03:05:35.000Z",
        "duration_s": 89.321,
        "params": {"n": 5, "name": "x"},
        "selected": ["a"],
        "resumed_from": None,
        "logical_date": "2026-01-02",
    }
    assert shown["tasks"]["a"] == {
        "state": "success",
        "attempts": 1,
        "duration_s": 89.321,
        "output_notebook": "/p/a.ipynb",
        "error": None,
        "started_at": "2026-01-02T03:04:05.678Z",
        "ended_at": "2026-01-02T03:05:35.000Z",
        "reason": "its code changed",
    }
    json.dumps(shown)  # JSON as it is


def test_the_cli_history_json_shape() -> None:
    assert views_json.history_to_json([RUN]) == {
        "runs": [
            {
                "run_id": "r1",
                "state": "failed",
                "started_at": "2026-01-02T03:04:05.678Z",
                "ended_at": "2026-01-02T03:05:35.000Z",
                "duration_s": 89.321,
                "params": {"n": 5, "name": "x"},
                "selected": ["a"],
                "workers": 2,
            }
        ]
    }


def test_the_rest_apis_run_shape() -> None:
    """The panel's ``status`` route: ``isoformat``'s times (microseconds, none when zero), a duration text."""
    assert views_json.panel_run_json(RUN) == {
        "run_id": "r1",
        "state": "failed",
        "started_at": "2026-01-02T03:04:05.678901Z",
        "ended_at": "2026-01-02T03:05:35Z",
        "duration": "1m29s",
        "params": {"n": 5, "name": "x"},
        "pid": 4321,
    }
    running = RunRecord("r2", "/p", "running", datetime(2026, 1, 2), pid=7)
    assert views_json.panel_run_json(running) == {
        "run_id": "r2",
        "state": "running",
        "started_at": "2026-01-02T00:00:00Z",
        "ended_at": None,
        "duration": None,
        "params": {},
        "pid": 7,
    }


def test_task_counts_most_common_first_then_by_name() -> None:
    assert text.task_counts(TASKS) == {"success": 2, "failed": 1, "upstream_failed": 1}
    assert list(text.task_counts(TASKS)) == ["success", "failed", "upstream_failed"]
    assert text.task_counts(TASKS) == text.task_counts(list(TASKS.values()))
    assert text.counts_text(TASKS) == "2 success, 1 failed, 1 upstream_failed"
    assert text.counts_text(TASKS, " · ") == "2 success · 1 failed · 1 upstream_failed"
    assert text.counts_text({}) == ""


def test_params_text() -> None:
    assert text.params_text({"b": "x", "a": 1, "c": [1, 2]}) == 'a=1, b="x", c=[1, 2]'
    assert text.params_text({"when": datetime(2026, 1, 2)}) == 'when="2026-01-02 00:00:00"'
    long = text.params_text({"a": "x" * 100}, 20)
    assert len(long) == 20 and long.endswith("…")
    assert text.params_text({}) == ""


def test_the_summary_lines_share_the_counts() -> None:
    from nbflow.views.live import summary
    from nbflow.views.progress import summary_line

    assert summary_line(RUN, TASKS) == "run r1 failed in 1m29s: 2 success, 1 failed, 1 upstream_failed"
    assert summary(RUN, TASKS) == "Run r1: failed in 1m29s — 2 success, 1 failed, 1 upstream_failed"


def test_diff_text() -> None:
    found = {
        "runs": ["r1", "r2"],
        "states": ["failed", "success"],
        "params": {"added": {"m": 1}, "removed": {}, "changed": {"n": [5, 6]}},
        "environment": {"python": ["3.11.7", "3.12.1"], "packages": {"changed": {"numpy": ["1.26.0", "2.0.0"]}}},
        "tasks": {
            "a": {"state": ["success", "success"], "duration_s": [1.0, 2.5], "products": {"changed": ["out.csv"]}},
            "b": {"state": [None, "success"], "duration_s": [None, 0.5], "products": {"changed": []}},
        },
    }
    assert text.diff_to_text(found) == (
        "r1 (failed) -> r2 (success)\n"
        "  parameter added: m=1\n"
        "  parameter changed: n 5 -> 6\n"
        "  python: 3.11.7 -> 3.12.1\n"
        "  package changed: numpy 1.26.0 -> 2.0.0\n"
        "  product changed: a out.csv\n"
        "\n"
        "TASK  STATE               DURATION\n"
        "a     success -> success  1.0s -> 2.5s\n"
        "b     - -> success        - -> 0.5s\n"
    )
    same = {**found, "params": {"added": {}, "removed": {}, "changed": {}}, "environment": {}, "tasks": {}}
    assert "  same parameters, sources, kernels, Python and packages\n" in text.diff_to_text(same)


def test_dot_is_written_by_one_function() -> None:
    dag = _dag(["load", 'say "hi"', "a\\b&c"])
    source = dot.dag_to_dot(dag, {"load": "success"})
    assert source.splitlines()[:3] == [
        "digraph pipeline {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff"];',
    ]
    assert '  "load" [fillcolor="#' in source and 'tooltip="success"' in source
    assert '  "a\\\\b&c" [label="a\\\\b&amp;c"];' in source
    assert '  "load" -> "say \\"hi\\"";' in source
    layout_source = svg.dag_dot_source(dag)
    assert layout_source.startswith("digraph pipeline {\n  rankdir=LR; nodesep=0.25; ranksep=0.45;\n")
    assert "  n0 -> n1;\n  n1 -> n2;\n}\n" in layout_source and "load" in layout_source
    assert "a\\b" not in layout_source and "&" not in layout_source, "no name reaches Graphviz as it is"
