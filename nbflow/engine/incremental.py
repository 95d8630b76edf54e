"""Which tasks are up to date. Pure: the caller says what exists and what ran before.

A task's fingerprint hashes its code, its effective parameters (overrides, upstream and
product paths), its kernel and its upstreams' fingerprints. A task is up to date when its
latest success had the same fingerprint, its declared products still exist, and every
upstream is up to date too (an upstream that runs again may write something new).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from nbflow.core.dag import DAG
from nbflow.engine.requests import injected_parameters
from nbflow.project.params import Overrides
from nbflow.project.specs import TaskSpec
from nbflow.store.base import AttemptRecord


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
    #: the earlier success this task reuses, when it does not run
    earlier: AttemptRecord | None = None


def plan(
    dag: DAG,
    specs: Mapping[str, TaskSpec],
    prints: Mapping[str, str],
    overrides: Overrides,
    last: Mapping[str, AttemptRecord],
    products: Callable[[TaskSpec], Iterable[Path]],
    force: bool = False,
    force_tasks: Iterable[str] = (),
) -> dict[str, Decision]:
    """Run or reuse, with the reason, for every task of ``dag`` in topological order."""
    forced = set(force_tasks)
    decisions: dict[str, Decision] = {}
    for name in dag.order:
        spec, earlier = specs[name], last.get(name)
        running_ups = [u for u in dag.upstreams[name] if decisions[u].run]
        missing = [p for p in products(spec) if not p.exists()]
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
        elif missing:
            decisions[name] = Decision(True, f"its product {missing[0]} is missing")
        else:
            decisions[name] = Decision(False, f"up to date since run {earlier.run_id}", earlier)
    return decisions


def _params(attempt: AttemptRecord) -> str:
    recorded = {
        k: v for k, v in attempt.parameters.items() if not (isinstance(v, str) and v.startswith("[secret from $"))
    }
    return json.dumps(recorded, sort_keys=True, default=str)


def _params_now(params: Mapping[str, object]) -> str:
    return json.dumps(params, sort_keys=True, default=str)
