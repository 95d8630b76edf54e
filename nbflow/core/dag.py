"""The task graph: build it from specs, validate it, order it. Pure code, no I/O.

Edges point downstream: ``(a, b)`` means ``a`` is an upstream of ``b``.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from nbflow.errors import CycleError, NbflowError, PipelineValidationError, UnknownTaskError, UnknownUpstreamError


class TaskLike(Protocol):
    """What the graph needs of a task: its name and declared upstreams."""

    @property
    def name(self) -> str: ...

    @property
    def upstream(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class DAG:
    """Upstreams per task, validated acyclic; ``order`` is a topological order."""

    upstreams: Mapping[str, tuple[str, ...]]
    order: tuple[str, ...] = field(default=())

    @property
    def nodes(self) -> list[str]:
        return list(self.order)

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(up, name) for name in self.order for up in self.upstreams[name]]

    def downstreams(self) -> dict[str, list[str]]:
        """Direct downstreams of every task."""
        down: dict[str, list[str]] = {name: [] for name in self.order}
        for up, name in self.edges:
            down[up].append(name)
        return down

    def descendants(self, name: str) -> set[str]:
        """Every task that depends, directly or not, on ``name``."""
        down = self.downstreams()
        seen: set[str] = set()
        stack = list(down[name])
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(down[n])
        return seen

    def ancestors(self, name: str) -> set[str]:
        """Every task ``name`` needs, directly or not."""
        seen: set[str] = set()
        stack = list(self.upstreams[name])
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(self.upstreams[n])
        return seen

    def subset(self, only: Iterable[str]) -> DAG:
        """The named tasks and everything they need.

        Raises
        ------
        UnknownTaskError
            A name is not a task of this graph.
        """
        keep: set[str] = set()
        for name in only:
            if name not in self.upstreams:
                raise UnknownTaskError(name, list(self.upstreams))
            keep.add(name)
            keep |= self.ancestors(name)
        return DAG({n: self.upstreams[n] for n in self.order if n in keep}, tuple(n for n in self.order if n in keep))


def find_cycle(upstreams: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle in downstream order, first name repeated last, starting at its smallest name; else None."""
    sorter = graphlib.TopologicalSorter({n: [u for u in ups if u in upstreams] for n, ups in upstreams.items()})
    try:
        sorter.prepare()
    except graphlib.CycleError as e:
        loop = list(e.args[1][:-1])  # graphlib lists it in the direction data flows
        start = loop.index(min(loop))
        loop = loop[start:] + loop[:start]
        return loop + [loop[0]]
    return None


def topological_order(upstreams: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """A deterministic topological order: among ready tasks, names in sorted order."""
    sorter = graphlib.TopologicalSorter({n: list(upstreams[n]) for n in sorted(upstreams)})
    sorter.prepare()
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order.extend(ready)
        sorter.done(*ready)
    return tuple(order)


def build_dag(
    tasks: Iterable[TaskLike],
    extra_edges: Iterable[tuple[str, str]] = (),
    problems: Sequence[NbflowError] = (),
    paths: Mapping[str, str] | None = None,
) -> DAG:
    """Validate the tasks' declarations and return the graph.

    ``extra_edges`` are ``(upstream, downstream)`` pairs added in code; ``problems`` are
    earlier ones (from discovery) to report together with these.

    Raises
    ------
    PipelineValidationError
        Listing every unknown upstream and a cycle, with the earlier problems.
    """
    found: list[NbflowError] = list(problems)
    upstreams: dict[str, list[str]] = {t.name: list(t.upstream) for t in tasks}
    for up, down in extra_edges:
        for name in (up, down):
            if name not in upstreams:
                found.append(UnknownTaskError(name, list(upstreams)))
        if down in upstreams and up not in upstreams[down]:
            upstreams[down].append(up)
    known = list(upstreams)
    for name in sorted(upstreams):
        for up in upstreams[name]:
            if up not in upstreams:
                where = (paths or {}).get(name)
                found.append(UnknownUpstreamError(name, up, known, path=where))
    cycle = find_cycle(upstreams)
    if cycle:
        found.append(CycleError(cycle))
    if found:
        raise PipelineValidationError(found)
    frozen = {n: tuple(u) for n, u in upstreams.items()}
    return DAG(frozen, topological_order(frozen))
