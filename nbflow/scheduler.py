"""Which task runs next: pure bookkeeping of states over a DAG, no I/O.

A task becomes ready the moment its last upstream succeeds (not level by level). Among
ready tasks, the one with the longest chain of work behind it goes first, so the
critical path starts early.
"""

from __future__ import annotations

import heapq

from nbflow import states
from nbflow.graph import DAG


def critical_path_lengths(dag: DAG) -> dict[str, int]:
    """For each task, the number of tasks on the longest path from it to a sink."""
    down = dag.downstreams()
    length: dict[str, int] = {}
    for name in reversed(dag.order):
        length[name] = 1 + max((length[d] for d in down[name]), default=0)
    return length


class Scheduler:
    """Tracks task states for one run and hands out ready tasks."""

    def __init__(self, dag: DAG) -> None:
        self.dag = dag
        self.state: dict[str, str] = {name: states.PENDING for name in dag.order}
        self._down = dag.downstreams()
        self._waiting = {name: set(dag.upstreams[name]) for name in dag.order}
        length = critical_path_lengths(dag)
        index = {name: i for i, name in enumerate(dag.order)}
        self._key = {name: (-length[name], index[name]) for name in dag.order}
        self._ready: list[tuple[tuple[int, int], str]] = []
        for name in dag.order:
            if not self._waiting[name]:
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

    def retry_later(self, name: str) -> None:
        """Put a task back, waiting for another attempt."""
        self.state[name] = states.UP_FOR_RETRY

    def requeue(self, name: str) -> None:
        heapq.heappush(self._ready, (self._key[name], name))

    def finish(self, name: str, state: str) -> list[str]:
        """Record a task's final state; returns the tasks that this makes ``upstream_failed``."""
        self.state[name] = state
        if state in states.TASK_OK:
            for d in self._down[name]:
                self._waiting[d].discard(name)
                if not self._waiting[d] and self.state[d] == states.PENDING:
                    heapq.heappush(self._ready, (self._key[d], d))
            return []
        if state == states.INTERRUPTED:
            return []  # what it blocks stays pending: it did not fail, it was stopped
        blocked = []
        for d in sorted(self.dag.descendants(name), key=self.dag.order.index):
            if self.state[d] == states.PENDING:
                self.state[d] = states.UPSTREAM_FAILED
                blocked.append(d)
        return blocked

    def is_done(self) -> bool:
        return all(s in states.TASK_FINISHED for s in self.state.values())
