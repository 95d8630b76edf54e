"""What a task declares, whatever its kind: :class:`TaskSpec`. Pure data, no I/O.

A notebook's spec is read from its parameters cell (:mod:`nbflow.project.notebook`), a
SQL task's from its header comment (:mod:`nbflow.project.sql`), a task defined in code
from its declaration (:mod:`nbflow.kinds`); the graph, the runner and the views see only
this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

#: what a ``product`` declaration may be: nothing, one path, or named paths
Product = Union[None, str, dict[str, str]]  # noqa: UP007 - a runtime alias, valid on 3.9

#: the names a task's parameters may not take: nbflow injects them
RESERVED_NAMES = frozenset({"upstream", "product"})


@dataclass(frozen=True)
class ParametersDecl:
    """What a task declares: its parameters, ``upstream`` and ``product``."""

    #: parameter name -> the source text of its default value
    defaults: dict[str, str] = field(default_factory=dict)
    upstream: tuple[str, ...] = ()
    #: whether ``upstream`` appears in the declaration at all (even as ``None``)
    declares_upstream: bool = False
    product: Product = None
    declares_product: bool = False


@dataclass(frozen=True)
class TaskSpec:
    """One task as declared: where it is and what it declares."""

    name: str
    path: Path
    relpath: str
    kernel_name: str
    language: str
    params: ParametersDecl
    #: index of a notebook's parameters cell, or None when there is none (or no cells)
    parameters_cell: int | None
    #: hash of the task's code (and a notebook's kernel name); changes when the code does
    source_hash: str
    #: the task's own settings (a notebook's metadata ``nbflow``), validated with the project's
    settings: Any = None
    #: the name of the task's kind in :data:`nbflow.kinds.KINDS`: ``notebook``, ``sql``, ``python``, ``http``
    kind: str = "notebook"
    #: what a task defined in code runs: a ``python`` task's function, an ``http`` task's request
    target: Any = None
    #: the connections the task names where nbflow can read them without running it (a SQL
    #: task's header, a literal ``nbflow.connect("name")`` in a notebook); table products add theirs
    connections: tuple[str, ...] = ()

    @property
    def upstream(self) -> tuple[str, ...]:
        return self.params.upstream

    @property
    def is_task(self) -> bool:
        """False for a notebook that opts out (metadata ``{"nbflow": {"task": false}}``), e.g. a dashboard."""
        return not (isinstance(self.settings, dict) and self.settings.get("task") is False)

    @property
    def product(self) -> Product:
        return self.params.product

    @property
    def folder(self) -> Path:
        return self.path.parent
