"""Which tasks need not run again: the one place that decides what a run reuses.

A run (:func:`plan`): a task's fingerprint hashes its code, its effective parameters
(overrides, upstream and product paths), its kernel and its upstreams' fingerprints. A
task is up to date when its latest success had the same fingerprint, its declared
products still exist, and every upstream is up to date too (an upstream that runs again
may write something new).

A resumed run (:func:`resume_plan`): a task is reused when it succeeded in the run
resumed, its code is unchanged since, its products still exist and every upstream is
reused too.

Both decide from what the caller gives them (what ran before, which products exist); only
:func:`source_hashes` reads a store. A reused task is recorded by :func:`reused_task`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from nbflow import states
from nbflow.core.dag import DAG
from nbflow.engine.requests import injected_parameters
from nbflow.project.params import Overrides
from nbflow.project.specs import TaskSpec
from nbflow.store.base import AttemptRecord, RunRecord, RunStore, TaskRecord


class ProductCheck(Protocol):
    """A declared product, as a plan sees it: a file's ``Path``, an object's or a table's probe."""

    def exists(self) -> bool: ...


def fingerprints(dag: DAG, specs: Mapping[str, TaskSpec], overrides: Overrides) -> dict[str, str]:
    result: dict[str, str] = {}
    for name in dag.order:
        spec = specs[name]
        payload = {
            "code": spec.source_hash,
            "kernel": spec.kernel_name,
            "params": injected_parameters(spec, dag, specs, overrides),
            "upstream": [result[u] for u in dag.upstreams[name]],
        }
        result[name] = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return result


@dataclass(frozen=True)
class Decision:
    run: bool
    reason: str
    #: the earlier success this task reuses, when it does not run: its attempt (a run), or
    #: its record in the run resumed
    earlier: AttemptRecord | TaskRecord | None = None


def reused(decisions: Mapping[str, Decision]) -> dict[str, AttemptRecord | TaskRecord]:
    """The tasks that do not run, each with the earlier success it reuses."""
    return {name: d.earlier for name, d in decisions.items() if not d.run and d.earlier is not None}


def reused_task(run_id: str, earlier: AttemptRecord | TaskRecord, reason: str | None = None) -> TaskRecord:
    """The record, in run ``run_id``, of a task that does not run again: where its earlier success is."""
    return TaskRecord(
        run_id=run_id,
        task=earlier.task,
        state=states.UP_TO_DATE,
        attempts=0,
        started_at=earlier.started_at,
        ended_at=earlier.ended_at,
        error=None,
        output_notebook=earlier.output_notebook,
        reason=reason,
    )


def plan(
    dag: DAG,
    specs: Mapping[str, TaskSpec],
    prints: Mapping[str, str],
    overrides: Overrides,
    last: Mapping[str, AttemptRecord],
    products: Callable[[TaskSpec], Iterable[ProductCheck]],
    force: bool = False,
    force_tasks: Iterable[str] = (),
) -> dict[str, Decision]:
    """Run or reuse, with the reason, for every task of ``dag`` in topological order."""
    forced = set(force_tasks)
    decisions: dict[str, Decision] = {}
    for name in dag.order:
        spec, earlier = specs[name], last.get(name)
        running_ups = [u for u in dag.upstreams[name] if decisions[u].run]
        if force or name in forced:
            decisions[name] = Decision(True, "forced (--force)" if force else "forced (--force-task)")
        elif earlier is None:
            decisions[name] = Decision(True, "it has not succeeded before")
        elif earlier.source_hash != spec.source_hash:
            decisions[name] = Decision(True, "its code changed")
        elif earlier.kernel_name != spec.kernel_name:
            decisions[name] = Decision(True, f"its kernel changed (was {earlier.kernel_name})")
        elif earlier.fingerprint is None or _params(earlier) != _params_now(
            injected_parameters(spec, dag, specs, overrides)
        ):
            decisions[name] = Decision(True, "its parameters changed")
        elif running_ups:
            decisions[name] = Decision(True, f"upstream {running_ups[0]!r} runs")
        elif earlier.fingerprint != prints[name]:
            decisions[name] = Decision(True, "an upstream changed")
        elif missing := next((p for p in products(spec) if not p.exists()), None):
            # asked last: an object's or a table's existence costs a request to its system
            decisions[name] = Decision(True, f"its product {missing} is missing")
        else:
            decisions[name] = Decision(False, f"up to date since run {earlier.run_id}", earlier)
    return decisions


def source_hashes(store: RunStore, run: RunRecord) -> dict[str, str | None]:
    """The code each task last ran with, as of ``run``: a task reused there ran in the run it resumed."""
    hashes: dict[str, str | None] = {}
    seen: set[str] = set()
    current: RunRecord | None = run
    while current is not None and current.run_id not in seen:
        seen.add(current.run_id)
        for attempt in reversed(store.get_attempts(current.run_id)):
            hashes.setdefault(attempt.task, attempt.source_hash)  # the latest attempt wins
        current = store.get_run(current.resumed_from) if current.resumed_from else None
    return hashes


def resume_plan(
    dag: DAG,
    specs: Mapping[str, TaskSpec],
    run_id: str,
    tasks: Mapping[str, TaskRecord],
    hashes: Mapping[str, str | None],
    products: Callable[[TaskSpec], Iterable[ProductCheck]],
) -> dict[str, Decision]:
    """Run or reuse, for every task of ``dag`` in topological order, when resuming run ``run_id``
    (whose ``tasks`` ran with the code of ``hashes``, see :func:`source_hashes`)."""
    decisions: dict[str, Decision] = {}
    for name in dag.order:
        spec, earlier = specs[name], tasks.get(name)
        if (
            earlier is not None
            and earlier.state in states.TASK_OK
            and hashes.get(name) == spec.source_hash
            and not any(decisions[up].run for up in dag.upstreams[name])
            and all(p.exists() for p in products(spec))  # last: it may ask a database or S3
        ):
            decisions[name] = Decision(False, f"succeeded in run {run_id}", earlier)
        else:
            decisions[name] = Decision(True, f"did not succeed in run {run_id}")
    return decisions


def _params(attempt: AttemptRecord) -> str:
    recorded = {
        k: v for k, v in attempt.parameters.items() if not (isinstance(v, str) and v.startswith("[secret from $"))
    }
    return json.dumps(recorded, sort_keys=True, default=str)


def _params_now(params: Mapping[str, object]) -> str:
    return json.dumps(params, sort_keys=True, default=str)
