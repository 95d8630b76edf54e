"""The graph and the scheduler: pure logic, no kernels."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from nbflow import states
from nbflow.core.dag import build_dag, find_cycle
from nbflow.core.ready import ReadyQueue, critical_path_lengths
from nbflow.errors import CycleError, PipelineValidationError, UnknownUpstreamError


@dataclass
class T:
    name: str
    upstream: tuple[str, ...] = ()


DIAMOND = [T("a"), T("b", ("a",)), T("c", ("a",)), T("d", ("b", "c"))]


def test_topological_order_and_edges() -> None:
    dag = build_dag(DIAMOND)
    assert dag.order == ("a", "b", "c", "d")
    assert dag.edges == [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    assert dag.descendants("b") == {"d"}
    assert dag.ancestors("d") == {"a", "b", "c"}


def test_subset_keeps_what_the_tasks_need() -> None:
    dag = build_dag(DIAMOND).subset(["b"])
    assert dag.order == ("a", "b")


def test_cycle_is_named_in_order() -> None:
    cycle = find_cycle({"alpha": ["gamma"], "beta": ["alpha"], "gamma": ["beta"], "x": []})
    assert cycle == ["alpha", "beta", "gamma", "alpha"]
    with pytest.raises(PipelineValidationError) as info:
        build_dag([T("alpha", ("gamma",)), T("beta", ("alpha",)), T("gamma", ("beta",))])
    [problem] = info.value.problems
    assert isinstance(problem, CycleError)
    assert "alpha -> beta -> gamma -> alpha" in str(problem)


def test_self_loop() -> None:
    assert find_cycle({"a": ["a"]}) == ["a", "a"]


def test_unknown_upstreams_are_all_reported_with_a_suggestion() -> None:
    with pytest.raises(PipelineValidationError) as info:
        build_dag([T("load"), T("clean", ("lod",)), T("train", ("clen", "missing"))])
    problems = info.value.problems
    assert len(problems) == 3 and all(isinstance(p, UnknownUpstreamError) for p in problems)
    text = str(info.value)
    assert text.startswith("3 problems found:")
    assert "clean declares upstream 'lod'" in text and "Did you mean 'load'?" in text
    assert "Did you mean 'clean'?" in text


def test_scheduler_blocks_downstream_of_a_failure_and_lets_other_branches_run() -> None:
    dag = build_dag([T("a"), T("b", ("a",)), T("c", ("a",)), T("d", ("b",)), T("e", ("c",))])
    s = ReadyQueue(dag)
    assert s.pop_ready() == "a"
    assert not s.has_ready()
    s.finish("a", states.SUCCESS)
    ready = {s.pop_ready(), s.pop_ready()}
    assert ready == {"b", "c"}
    assert s.finish("b", states.FAILED) == [("d", "upstream_failed")]
    s.finish("c", states.SUCCESS)
    assert s.pop_ready() == "e"
    s.finish("e", states.SUCCESS)
    assert s.is_done()
    assert s.state == {"a": "success", "b": "failed", "c": "success", "d": "upstream_failed", "e": "success"}


def test_critical_path_goes_first() -> None:
    # 'long' heads a chain of three, 'short' is alone: start 'long' first
    dag = build_dag([T("short"), T("long"), T("l2", ("long",)), T("l3", ("l2",))])
    assert critical_path_lengths(dag)["long"] == 3
    assert ReadyQueue(dag).pop_ready() == "long"


def test_upcoming_lists_ready_tasks_then_those_next_in_line() -> None:
    dag = build_dag([T("a"), T("b", ("a",)), T("c", ("b",)), T("x"), T("y", ("x", "c"))])
    s = ReadyQueue(dag)
    assert s.upcoming(10) == ["a", "x", "b", "c", "y"]  # nothing runs yet: all could be next
    assert s.pop_ready() == "a"
    assert s.upcoming(2) == ["x", "b"]  # ready first, then what waits only on running tasks
    s.finish("a", states.FAILED)
    assert s.upcoming(10) == ["x"], "tasks that will not run are not expected"


@pytest.mark.parametrize(
    ("rule", "upstream_states", "verdict"),
    [
        ("all_success", ["success", "success"], "run"),
        ("all_success", ["success", "running"], "wait"),
        ("all_success", ["failed", "running"], "upstream_failed"),
        ("all_success", ["success", "skipped"], "skipped"),
        ("all_done", ["failed", "upstream_failed"], "run"),
        ("all_done", ["failed", "up_for_retry"], "wait"),
        ("one_failed", ["failed", "running"], "run"),
        ("one_failed", ["success", "success"], "skipped"),
        ("one_success", ["success", "running"], "run"),
        ("one_success", ["failed", "failed"], "upstream_failed"),
        ("none_failed", ["success", "skipped"], "run"),
        ("none_failed", ["success", "upstream_failed"], "upstream_failed"),
        ("all_failed", ["failed", "upstream_failed"], "run"),
        ("all_failed", ["failed", "success"], "skipped"),
    ],
)
def test_trigger_rules(rule: str, upstream_states: list[str], verdict: str) -> None:
    from nbflow.core.ready import evaluate_trigger

    assert evaluate_trigger(rule, upstream_states) == verdict


def test_skipped_propagates_and_cleanup_runs_anyway() -> None:
    # a -> alert (one_failed) -> after_alert; a -> cleanup (all_done)
    dag = build_dag([T("a"), T("alert", ("a",)), T("after_alert", ("alert",)), T("cleanup", ("a",))])
    s = ReadyQueue(dag, {"alert": "one_failed", "cleanup": "all_done"})
    s.pop_ready()
    settled = s.finish("a", states.SUCCESS)
    assert settled == [("alert", "skipped"), ("after_alert", "skipped")]
    assert s.pop_ready() == "cleanup"
