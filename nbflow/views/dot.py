"""The DAG as Graphviz DOT source: ``nbflow dag --format dot``, and what the SVG layout gives ``dot``. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from nbflow import states
from nbflow.core.dag import DAG


def dot_quote(text: str) -> str:
    """A double-quoted DOT identifier.

    DOT's only escape in a quoted string is ``\\"``; a ``\\`` stays two characters, so backslashes
    are doubled (an unambiguous identifier; :func:`dot_label` shows the name as it is).
    """
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot_label(text: str) -> str:
    """A DOT label (or tooltip) that Graphviz shows as ``text``, character for character.

    Graphviz reads ``\\n``, ``\\l``, ``\\N``, ``\\G``... in labels as escapes, and ``&name;`` as
    an entity, so ``\\`` is written ``\\\\`` and ``&`` as ``&amp;``.
    """
    return dot_quote(text.replace("&", "&amp;"))


def digraph(
    dag: DAG,
    settings: Sequence[str],
    node_ids: Mapping[str, str],
    node_attrs: Mapping[str, Sequence[str]],
) -> str:
    """DOT source of the DAG: ``settings`` (graph, node and edge defaults) then one line a task,
    in topological order, then one line an edge; nodes are named by ``node_ids`` (DOT identifiers)."""
    lines = ["digraph pipeline {", *(f"  {line}" for line in settings)]
    for name in dag.order:
        attrs = node_attrs.get(name, ())
        lines.append(f"  {node_ids[name]}{' [' + ', '.join(attrs) + ']' if attrs else ''};")
    for a, b in dag.edges:
        lines.append(f"  {node_ids[a]} -> {node_ids[b]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _needs_label(name: str) -> bool:
    """Whether Graphviz's default label (the node's identifier) would not show ``name`` as it is."""
    return "\\" in name or "&" in name


def dag_to_dot(dag: DAG, task_states: Mapping[str, str] | None = None) -> str:
    """Graphviz source for the DAG, left to right; nodes coloured by state when given."""
    attrs: dict[str, list[str]] = {}
    for name in dag.order:
        attrs[name] = [f"label={dot_label(name)}"] if _needs_label(name) else []
        if task_states and name in task_states:
            colour = states.COLOURS.get(task_states[name], states.NO_STATE_COLOUR)
            attrs[name] += [f'fillcolor="{colour}"', f"tooltip={dot_label(task_states[name])}"]
    return digraph(
        dag,
        ["rankdir=LR;", 'node [shape=box, style="rounded,filled", fillcolor="#ffffff"];'],
        {name: dot_quote(name) for name in dag.order},
        attrs,
    )
