"""Which task runs next: pure bookkeeping of states over a DAG, no I/O.

A task is considered the moment one of its upstreams settles (not level by level); its
trigger rule decides whether it runs, waits, or is settled without running
(``upstream_failed`` or ``skipped``, which propagate in turn, as in Airflow). Among ready
tasks, the one with the longest chain of work behind it goes first.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

from nbflow import states
from nbflow.core.dag import DAG

_FAILED = frozenset({states.FAILED, states.UPSTREAM_FAILED})
_SOON = states.TASK_OK | {states.RUNNING}
_RUN, _WAIT = "run", "wait"


def critical_path_lengths(dag: DAG) -> dict[str, int]:
    """For each task, the number of tasks on the longest path from it to a sink."""
    down = dag.downstreams()
    length: dict[str, int] = {}
    for name in reversed(dag.order):
        length[name] = 1 + max((length[d] for d in down[name]), default=0)
    return length


def evaluate_trigger(rule: str, upstream_states: list[str]) -> str:
    """``run``, ``wait``, ``upstream_failed`` or ``skipped`` for a task whose upstreams are in these states."""
    ok = sum(s in states.TASK_OK for s in upstream_states)
    failed = sum(s in _FAILED for s in upstream_states)
    skipped = sum(s == states.SKIPPED for s in upstream_states)
    waiting = len(upstream_states) - ok - failed - skipped
    if rule == "all_success":
        return states.UPSTREAM_FAILED if failed else _WAIT if waiting else states.SKIPPED if skipped else _RUN
    if rule == "all_done":
        return _WAIT if waiting else _RUN
    if rule == "one_failed":
        return _RUN if failed else _WAIT if waiting else states.SKIPPED
    if rule == "one_success":
        if ok:
            return _RUN
        return _WAIT if waiting else states.UPSTREAM_FAILED if failed else states.SKIPPED
    if rule == "none_failed":
        return states.UPSTREAM_FAILED if failed else _WAIT if waiting else _RUN
    if rule == "all_failed":
        return states.SKIPPED if ok or skipped else _WAIT if waiting else _RUN
    raise ValueError(f"unknown trigger rule {rule!r}")


class ReadyQueue:
    """Tracks task states for one run and hands out ready tasks."""

    def __init__(self, dag: DAG, trigger_rules: Mapping[str, str] | None = None) -> None:
        self.dag = dag
        self.rules = {name: (trigger_rules or {}).get(name, "all_success") for name in dag.order}
        self.state: dict[str, str] = {name: states.PENDING for name in dag.order}
        self._down = dag.downstreams()
        length = critical_path_lengths(dag)
        index = {name: i for i, name in enumerate(dag.order)}
        self._key = {name: (-length[name], index[name]) for name in dag.order}
        self._ready: list[tuple[tuple[int, int], str]] = []
        self._queued: set[str] = set()
        for name in dag.order:
            if not dag.upstreams[name]:
                self._push(name)

    def _push(self, name: str) -> None:
        self._queued.add(name)
        heapq.heappush(self._ready, (self._key[name], name))

    def _drop_settled(self) -> None:
        while self._ready and self.state[self._ready[0][1]] != states.PENDING:
            heapq.heappop(self._ready)

    def has_ready(self) -> bool:
        self._drop_settled()
        return bool(self._ready)

    def pop_ready(self) -> str:
        """The next task to start; it becomes ``running``."""
        self._drop_settled()
        _, name = heapq.heappop(self._ready)
        self.state[name] = states.RUNNING
        return name

    def upcoming(self, limit: int) -> list[str]:
        """Up to ``limit`` pending tasks expected to start next, most likely first.

        The ready ones (best first), then, in topological order, those whose upstreams are
        all done, running, or themselves expected: what a kernel may be started for early.
        """
        self._drop_settled()
        expected = [name for _, name in sorted(self._ready) if self.state[name] == states.PENDING][:limit]
        soon = set(expected)
        for name in self.dag.order:
            if len(expected) >= limit:
                break
            if name in soon or self.state[name] != states.PENDING or not self.dag.upstreams[name]:
                continue
            if all(self.state[u] in _SOON or u in soon for u in self.dag.upstreams[name]):
                soon.add(name)
                expected.append(name)
        return expected

    def retry_later(self, name: str) -> None:
        """A failed attempt will be tried again: the task waits as ``up_for_retry``."""
        self.state[name] = states.UP_FOR_RETRY

    def requeue(self, name: str) -> None:
        """Its retry delay is over: the task is ready again."""
        self.state[name] = states.PENDING
        heapq.heappush(self._ready, (self._key[name], name))

    def finish(self, name: str, state: str) -> list[tuple[str, str]]:
        """Record a task's final state; returns the tasks this settles without running, with their state."""
        self.state[name] = state
        if state == states.INTERRUPTED:
            return []  # what it blocks stays pending: it did not fail, it was stopped
        settled: list[tuple[str, str]] = []
        stack = [name]
        while stack:
            for d in self._down[stack.pop()]:
                if self.state[d] != states.PENDING or d in self._queued:
                    continue
                verdict = evaluate_trigger(self.rules[d], [self.state[u] for u in self.dag.upstreams[d]])
                if verdict == _RUN:
                    self._push(d)
                elif verdict != _WAIT:
                    self.state[d] = verdict
                    settled.append((d, verdict))
                    stack.append(d)
        return settled

    def is_done(self) -> bool:
        return all(s in states.TASK_FINISHED for s in self.state.values())
