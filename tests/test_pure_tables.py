"""Tables for the pure logic: the incremental planner, the ready queue and trigger rules, retries.

No kernel, no process, no store: each row states the inputs and the expected verdict.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from nbflow import states
from nbflow.core.dag import build_dag
from nbflow.core.ready import ReadyQueue, evaluate_trigger
from nbflow.engine.incremental import fingerprints, plan
from nbflow.engine.retry import MAX_DELAY, backoff_delay, decide, matching_rule
from nbflow.project.params import Overrides
from nbflow.project.settings import RetryRule, TaskSettings
from nbflow.project.specs import ParametersDecl, TaskSpec
from nbflow.store.base import AttemptRecord

# --------------------------------------------------------------------------------------------
# incremental.plan: load (writes load.csv) -> train (parameter lr) -> report
# --------------------------------------------------------------------------------------------


def _spec(folder: Path, name: str, upstream: tuple[str, ...] = (), **params: Any) -> TaskSpec:
    decl = ParametersDecl(
        defaults={k: repr(v) for k, v in params.items() if k != "product"},
        upstream=upstream,
        declares_upstream=True,
        product=params.get("product"),
        declares_product="product" in params,
    )
    return TaskSpec(name, folder / f"{name}.ipynb", f"{name}.ipynb", "python3", "python", decl, 0, f"code-{name}")


def _products(spec: TaskSpec) -> list[Path]:
    product = spec.product
    return (
        []
        if product is None
        else [spec.folder / p for p in ([product] if isinstance(product, str) else product.values())]
    )


class Project:
    """Three specs, the fingerprints of a run with ``overrides``, and the records of that run's successes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.specs = {
            "load": _spec(folder, "load", product="load.csv"),
            "train": _spec(folder, "train", ("load",), lr=0.1),
            "report": _spec(folder, "report", ("train",)),
        }
        self.overrides = Overrides()
        self.dag = build_dag(self.specs.values())
        prints = fingerprints(self.dag, self.specs, self.overrides)
        # what the run injected, spelled out: the planner compares these with what it would inject now
        injected = {
            "load": {"upstream": {}, "product": str((folder / "load.csv").resolve())},
            "train": {"upstream": {"load": str((folder / "load.csv").resolve())}},
            "report": {"upstream": {"train": None}},
        }
        when = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.last = {
            name: AttemptRecord(
                "r1", name, 1, states.SUCCESS, when, when, injected[name], "python3", spec.source_hash,
                fingerprint=prints[name],
            )
            for name, spec in self.specs.items()
        }  # fmt: skip
        (folder / "load.csv").write_text("x\n1\n")

    def plan(self, **kwargs: Any) -> dict[str, str]:
        decisions = plan(
            self.dag,
            self.specs,
            fingerprints(self.dag, self.specs, self.overrides),
            self.overrides,
            self.last,
            _products,
            **kwargs,
        )
        assert list(decisions) == list(self.dag.order)
        for name, decision in decisions.items():  # a reused task names the success it reuses, a run one none
            assert (decision.earlier is self.last.get(name)) if not decision.run else decision.earlier is None
        return {name: ("run: " if d.run else "reuse: ") + d.reason for name, d in decisions.items()}


def _code_changed(p: Project) -> None:
    p.specs["train"] = replace(p.specs["train"], source_hash="code-train-edited")


def _kernel_changed(p: Project) -> None:
    p.specs["load"] = replace(p.specs["load"], kernel_name="ir")


def _override(p: Project) -> None:
    p.overrides = Overrides.from_mapping({"lr": 0.5})


def _override_nobody_declares(p: Project) -> None:
    p.overrides = Overrides.from_mapping({"batch": 3})  # a global override reaches only tasks that declare it


def _override_for_one_task(p: Project) -> None:
    p.overrides = Overrides.from_mapping({"report.lr": 0.5})  # a task's own override reaches it anyway


def _recorded_without_fingerprint(p: Project) -> None:
    p.last["train"] = replace(p.last["train"], fingerprint=None)


def _upstream_fingerprint_moved(p: Project) -> None:
    p.last["report"] = replace(p.last["report"], fingerprint="from-another-train")


def _product_missing(p: Project) -> None:
    (p.folder / "load.csv").unlink()


def _never_ran(p: Project) -> None:
    del p.last["report"]


def _root_never_ran(p: Project) -> None:
    del p.last["load"]


def _secret_recorded_masked(p: Project) -> None:
    params = {**p.last["train"].parameters, "api_token": "[secret from $API_TOKEN]"}
    p.last["train"] = replace(p.last["train"], parameters=params)


def _parameter_recorded_differently(p: Project) -> None:
    p.last["train"] = replace(p.last["train"], parameters={**p.last["train"].parameters, "lr": 0.2})


def _code_changed_and_product_missing(p: Project) -> None:
    p.specs["load"] = replace(p.specs["load"], source_hash="code-load-edited")
    (p.folder / "load.csv").unlink()


def _nothing(p: Project) -> None:
    pass


UP = "reuse: up to date since run r1"
PLANS = [
    # (change, plan options, expected decision for load, train, report)
    (_nothing, {}, [UP, UP, UP]),
    (_never_ran, {}, [UP, UP, "run: it has not succeeded before"]),
    (_root_never_ran, {}, ["run: it has not succeeded before", "run: upstream 'load' runs", "run: upstream 'train' runs"]),
    (_code_changed, {}, [UP, "run: its code changed", "run: upstream 'train' runs"]),
    (_kernel_changed, {}, ["run: its kernel changed (was python3)", "run: upstream 'load' runs", "run: upstream 'train' runs"]),
    (_override, {}, [UP, "run: its parameters changed", "run: upstream 'train' runs"]),
    (_override_nobody_declares, {}, [UP, UP, UP]),
    (_override_for_one_task, {}, [UP, UP, "run: its parameters changed"]),
    (_parameter_recorded_differently, {}, [UP, "run: its parameters changed", "run: upstream 'train' runs"]),
    (_recorded_without_fingerprint, {}, [UP, "run: its parameters changed", "run: upstream 'train' runs"]),
    (_secret_recorded_masked, {}, [UP, UP, UP]),
    (_upstream_fingerprint_moved, {}, [UP, UP, "run: an upstream changed"]),
    (_nothing, {"force": True}, ["run: forced (--force)"] * 3),
    (_nothing, {"force_tasks": ["train"]}, [UP, "run: forced (--force-task)", "run: upstream 'train' runs"]),
    (_nothing, {"force_tasks": ["report"]}, [UP, UP, "run: forced (--force-task)"]),
    (_never_ran, {"force": True, "force_tasks": ["report"]}, ["run: forced (--force)"] * 3),
    (_code_changed_and_product_missing, {}, ["run: its code changed", "run: upstream 'load' runs", "run: upstream 'train' runs"]),
]  # fmt: skip


@pytest.mark.parametrize(("change", "options", "expected"), PLANS, ids=lambda v: getattr(v, "__name__", None))
def test_plan(tmp_path: Path, change, options: dict[str, Any], expected: list[str]) -> None:
    project = Project(tmp_path)
    change(project)
    assert project.plan(**options) == dict(zip(["load", "train", "report"], expected, strict=True))


def test_plan_names_the_missing_product(tmp_path: Path) -> None:
    project = Project(tmp_path)
    _product_missing(project)
    decisions = project.plan()
    assert decisions["load"] == f"run: its product {tmp_path / 'load.csv'} is missing"
    assert decisions["train"] == "run: upstream 'load' runs"


def test_fingerprints_move_with_code_params_kernel_and_upstream(tmp_path: Path) -> None:
    project = Project(tmp_path)
    before = fingerprints(project.dag, project.specs, project.overrides)
    assert before == fingerprints(project.dag, project.specs, project.overrides), "deterministic"
    _override(project)
    after = fingerprints(project.dag, project.specs, project.overrides)
    assert after["load"] == before["load"]
    assert after["train"] != before["train"] and after["report"] != before["report"], "a change flows downstream"


# --------------------------------------------------------------------------------------------
# core.ready: trigger rules and the ready queue
# --------------------------------------------------------------------------------------------

S, F, UF, SK, R, P, UTD, RETRY = (
    states.SUCCESS, states.FAILED, states.UPSTREAM_FAILED, states.SKIPPED,
    states.RUNNING, states.PENDING, states.UP_TO_DATE, states.UP_FOR_RETRY,
)  # fmt: skip

TRIGGERS = [
    # rule, upstream states, verdict
    ("all_success", [S, UTD], "run"),
    ("all_success", [S, R], "wait"),
    ("all_success", [S, RETRY], "wait"),
    ("all_success", [F, R], UF),
    ("all_success", [UF], UF),
    ("all_success", [S, SK], SK),
    ("all_success", [SK, F], UF),
    ("all_done", [F, UF, SK], "run"),
    ("all_done", [S, P], "wait"),
    ("one_failed", [S, F, R], "run"),
    ("one_failed", [UF], "run"),
    ("one_failed", [S, R], "wait"),
    ("one_failed", [S, SK], SK),
    ("one_success", [F, UTD], "run"),
    ("one_success", [F, R], "wait"),
    ("one_success", [F, SK], UF),
    ("one_success", [SK, SK], SK),
    ("none_failed", [S, SK], "run"),
    ("none_failed", [S, R], "wait"),
    ("none_failed", [R, UF], UF),
    ("all_failed", [F, UF], "run"),
    ("all_failed", [F, R], "wait"),
    ("all_failed", [F, S], SK),
    ("all_failed", [F, SK], SK),
]


@pytest.mark.parametrize(("rule", "upstream_states", "verdict"), TRIGGERS)
def test_trigger_rule(rule: str, upstream_states: list[str], verdict: str) -> None:
    assert evaluate_trigger(rule, upstream_states) == verdict


@pytest.mark.parametrize("rule", ["all_success", "all_done", "one_failed", "one_success", "none_failed", "all_failed"])
def test_a_task_without_upstreams_is_never_waiting(rule: str) -> None:
    assert evaluate_trigger(rule, []) in {"run", SK, UF}


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown trigger rule 'sometimes'"):
        evaluate_trigger("sometimes", [S])


class T:
    def __init__(self, name: str, upstream: tuple[str, ...] = ()) -> None:
        self.name, self.upstream = name, upstream


#: a -> b -> d, a -> c -> d, and x alone
DIAMOND = [T("a"), T("b", ("a",)), T("c", ("a",)), T("d", ("b", "c")), T("x")]

QUEUE = [
    # rules, what happens (pop / finish name state / retry / requeue), then ready tasks in order and final states
    ({}, ["pop", "finish a success"], ["b", "c", "x"], {"a": S}),
    ({}, ["pop", "finish a failed"], ["x"], {"a": F, "b": UF, "c": UF, "d": UF}),
    ({}, ["pop", "finish a interrupted"], ["x"], {"a": states.INTERRUPTED, "b": P, "c": P, "d": P}),
    ({}, ["pop", "retry a"], ["x"], {"a": RETRY, "b": P}),
    ({}, ["pop", "retry a", "requeue a"], ["a", "x"], {"a": P}),
    ({"d": "all_done"}, ["pop", "finish a success", "pop", "finish b failed"], ["c", "x"], {"b": F, "d": P}),
    (
        {"d": "all_done"},
        ["pop", "finish a success", "pop", "finish b failed", "pop", "finish c success"],
        ["x", "d"],
        {"d": P},
    ),
    ({"b": "one_failed"}, ["pop", "finish a success"], ["c", "x"], {"b": SK, "d": P}),
    ({"b": "one_failed"}, ["pop", "finish a success", "pop", "finish c success"], ["x"], {"b": SK, "d": SK}),
    ({"b": "one_failed", "d": "none_failed"}, ["pop", "finish a success"], ["c", "x"], {"b": SK, "d": P}),
    ({"b": "one_failed", "c": "one_failed"}, ["pop", "finish a failed"], ["b", "c", "x"], {"d": P}),
    ({"d": "one_success"}, ["pop", "finish a success", "pop", "finish b success"], ["c", "x", "d"], {"d": P}),
    ({}, ["pop", "finish a up_to_date"], ["b", "c", "x"], {"a": UTD}),
]


@pytest.mark.parametrize(("rules", "events", "ready", "final"), QUEUE)
def test_ready_queue(rules: dict[str, str], events: list[str], ready: list[str], final: dict[str, str]) -> None:
    s = ReadyQueue(build_dag(DIAMOND), rules)
    for event in events:
        verb, *args = event.split()
        if verb == "pop":
            s.pop_ready()
        elif verb == "finish":
            s.finish(args[0], args[1])
        elif verb == "retry":
            s.retry_later(args[0])
        else:
            s.requeue(args[0])
    popped = []
    while s.has_ready():
        popped.append(s.pop_ready())
    assert popped == ready
    assert {name: s.state[name] for name in final} == final | {n: R for n in popped if n in final}


def test_the_longest_chain_goes_first_then_the_name_order() -> None:
    s = ReadyQueue(build_dag(DIAMOND))
    assert s.pop_ready() == "a"  # a -> b -> d is longer than x
    s.finish("a", S)
    assert [s.pop_ready(), s.pop_ready(), s.pop_ready()] == ["b", "c", "x"]
    assert not s.has_ready() and not s.is_done()
    s.finish("b", S)
    assert not s.has_ready(), "d waits for c"
    s.finish("c", S)
    assert s.pop_ready() == "d"
    for name in ("d", "x"):
        s.finish(name, S)
    assert s.is_done()


def test_finish_returns_what_it_settles_without_running() -> None:
    s = ReadyQueue(build_dag(DIAMOND), {"c": "one_failed"})
    s.pop_ready()
    assert s.finish("a", F) == [("b", UF), ("d", UF)]
    assert s.pop_ready() == "c", "one_failed runs because a failed"


# --------------------------------------------------------------------------------------------
# engine.retry: rules, backoff bounds, attempts
# --------------------------------------------------------------------------------------------

RULES = (
    RetryRule("fail", match="Value*"),
    RetryRule("retry", pattern=r"connection (reset|refused)", delay=2),
    RetryRule("default", match="KeyError"),
    RetryRule("retry", match="OSError"),
)
BASE = TaskSettings(retries=3, retry_delay=30, retry_rules=RULES)

DECISIONS = [
    # settings, attempt, ename, error, (retry, delay, reason)
    (BASE, 1, "RuntimeError", "boom", (True, 30, "backoff")),
    (BASE, 3, "RuntimeError", "boom", (True, 30, "backoff")),
    (BASE, 4, "RuntimeError", "boom", (False, 0, "no retries left (3 allowed)")),
    (TaskSettings(), 1, "RuntimeError", "boom", (False, 0, "no retries left (0 allowed)")),
    (BASE, 1, "ValueError", "ValueError: bad", (False, 0, "a rule says ValueError fails at once")),
    (BASE, 1, "ValueErrorish", "", (False, 0, "a rule says ValueErrorish fails at once")),
    (BASE, 1, None, "connection refused", (True, 2, "a rule's own delay")),
    (BASE, 1, "ValueError", "connection reset", (False, 0, "a rule says ValueError fails at once")),
    (BASE, 1, "KeyError", "KeyError: 'x'", (True, 30, "backoff")),
    (BASE, 1, "OSError", "disk", (True, 30, "backoff")),
    (BASE, 4, "OSError", "connection reset", (False, 0, "no retries left (3 allowed)")),
    (BASE, 1, "TaskTimeout", "past 10s", (True, 30, "backoff")),
    (replace(BASE, retry_on_timeout=False), 1, "TaskTimeout", "past 10s",
     (False, 0, "timeouts are not retried (retry_on_timeout = false)")),
    (replace(BASE, retry_backoff=2), 3, "RuntimeError", "boom", (True, 120, "backoff")),
]  # fmt: skip


@pytest.mark.parametrize(("settings", "attempt", "ename", "error", "expected"), DECISIONS)
def test_retry_decision(settings: TaskSettings, attempt: int, ename: str | None, error: str, expected) -> None:
    d = decide(settings, attempt, ename, error)
    assert (d.retry, d.delay, d.reason) == expected


@pytest.mark.parametrize(
    ("ename", "error", "rule"),
    [
        ("ValueError", "", RULES[0]),
        ("valueerror", "", None),  # globs are case-sensitive
        (None, "connection reset by peer", RULES[1]),
        ("ValueError", "connection reset", RULES[0]),  # the first match decides
        ("KeyError", "", RULES[2]),
        ("OSError", "", RULES[3]),
        (None, None, None),
        ("TypeError", "nothing alike", None),
    ],
)
def test_the_first_matching_rule_decides(ename: str | None, error: str | None, rule: RetryRule | None) -> None:
    assert matching_rule(BASE, ename, error) is rule


@pytest.mark.parametrize(
    ("delay", "backoff", "cap", "delays"),
    [
        (10, 1, None, [10, 10, 10, 10]),
        (10, 2, None, [10, 20, 40, 80]),
        (10, 2, 25, [10, 20, 25, 25]),
        (0, 2, None, [0, 0, 0, 0]),
        (1, 1e200, None, [1, 1e200 if MAX_DELAY > 1e200 else MAX_DELAY, MAX_DELAY, MAX_DELAY]),
        (1, 1e200, 5, [1, 5, 5, 5]),
        (MAX_DELAY * 2, 1, None, [MAX_DELAY] * 4),
    ],
)
def test_backoff_bounds(delay: float, backoff: float, cap: float | None, delays: list[float]) -> None:
    s = TaskSettings(retry_delay=delay, retry_backoff=backoff, max_retry_delay=cap)
    assert [backoff_delay(s, n) for n in (1, 2, 3, 4)] == delays


@pytest.mark.parametrize("attempt", [1, 2, 5, 2000])
def test_jitter_stays_within_half_the_delay_and_the_delay(attempt: int) -> None:
    s = TaskSettings(retry_delay=8, retry_backoff=3, max_retry_delay=600, retry_jitter=True)
    full = backoff_delay(replace(s, retry_jitter=False), attempt)
    drawn = [backoff_delay(s, attempt, random.Random(seed)) for seed in range(50)]
    assert all(full / 2 <= d <= full for d in drawn)
    assert len(set(drawn)) > 1, "jitter spreads the delays"
