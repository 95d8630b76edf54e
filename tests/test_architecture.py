"""The package's import structure: no cycles, and each layer imports only the layers below it.

Read with :mod:`ast` (nothing of nbflow is imported), counting every import: module level,
inside functions, and under ``if TYPE_CHECKING:``. A function-level import still ties two
modules together; it only hides the tie from the start-up.
"""

from __future__ import annotations

import ast
from itertools import pairwise
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "nbflow"

#: layer of each top-level part of the package; a layer imports itself and those with a lower number
LAYERS = {
    "errors": 1, "states": 1, "paths": 1, "core": 1,
    "project": 2, "store": 2, "views": 2,
    "execution": 3, "systems": 3,
    "kinds": 4,
    "executors": 5,
    "engine": 6,
    "pipeline": 7, "history": 7, "validation": 7, "authoring": 7,
    "cli": 8, "widgets": 8, "server": 8, "integrations": 8,
}  # fmt: skip
#: the lazy public facade and the entry point import from any layer; nothing may import them
#: (except the bare package, for ``__version__``)
EXEMPT = {"nbflow", "nbflow.__main__"}
#: imports against the rule, each allowed for a reason: (importer, imported) -> reason. Such an
#: import is left out of both checks (a layer, a cycle), and must stay a function-level one.
ALLOWED = {
    ("nbflow.pipeline", "nbflow.widgets"): (
        "Pipeline.widget() is a facade convenience, imported only when called: the widget stack"
        " (which itself shows a Pipeline) is loaded only by whoever asks for a dashboard"
    ),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(module: str, source: str | None = None) -> list[tuple[int, str, str]]:
    """``(line, imported module, as written)`` for every nbflow import in ``module`` (or in ``source``, as if it were)."""
    path = MODULES.get(module, PACKAGE / "__init__.py")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source, str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, f"import {a.name}") for a in node.names if a.name.split(".")[0] == "nbflow"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "nbflow":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"  # `from nbflow.core import dag` imports the module nbflow.core.dag
                written = f"from {'.' * node.level}{node.module or ''} import {alias.name}"
                found.append((node.lineno, sub if sub in MODULES else base, written))
    return found


def where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}"


def graph() -> dict[str, dict[str, int]]:
    """importer -> {imported: first line}, between nbflow modules other than the exempt ones."""
    edges: dict[str, dict[str, int]] = {m: {} for m in MODULES if m not in EXEMPT}
    for module in edges:
        for line, target, _ in imports(module):
            if target in edges and target != module and (module, target) not in ALLOWED:
                edges[module].setdefault(target, line)
    return edges


def cycles(edges: dict[str, dict[str, int]]) -> list[tuple[list[str], set[str]]]:
    """Each group of modules that import one another, with one cycle through it (first module repeated last)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set(stack[stack.index(v) :])
            del stack[stack.index(v) :]
            if len(group) > 1:
                groups.append(group)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    found = []
    for group in groups:  # the shortest way back to the group's first module, within the group
        start = min(group)
        paths = {start: [start]}
        queue = [start]
        while queue:
            v = queue.pop(0)
            for w in sorted(edges[v]):
                if w == start:
                    queue = []
                    found.append((paths[v] + [start], group))
                    break
                if w in group and w not in paths:
                    paths[w] = paths[v] + [w]
                    queue.append(w)
    return found


def layer(module: str) -> int | None:
    return LAYERS.get(module.split(".")[1]) if "." in module else None


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in MODULES if m not in EXEMPT and layer(m) is None)
    assert not unplaced, f"modules outside every layer (add them to LAYERS in {Path(__file__).name}): {unplaced}"


def test_every_nbflow_import_names_a_module_that_exists() -> None:
    broken = [
        f"{where(m, line)}: {m} imports {target!r} ({written}), which is no module of nbflow"
        for m in MODULES
        for line, target, written in imports(m)
        if target not in MODULES
    ]
    assert not broken, "\n".join(broken)


def test_no_import_cycles() -> None:
    edges = graph()
    found = cycles(edges)
    described = [
        " -> ".join(cycle)
        + "\n    at "
        + ", ".join(where(a, edges[a][b]) for a, b in pairwise(cycle))
        + (f"\n    (one of the cycles among {sorted(group)})" if len(group) > len(cycle) - 1 else "")
        for cycle, group in found
    ]
    assert not found, (
        f"{len(found)} group(s) of modules in import cycles (function-level imports count):\n" + "\n".join(described)
    )


def test_layers_import_only_layers_below() -> None:
    broken = []
    for module in MODULES:
        if module in EXEMPT:
            continue
        for line, target, written in imports(module):
            if target == "nbflow":
                if written.endswith(" import __version__") or written == "import nbflow":
                    continue
                why = "the public facade (import the defining module instead)"
            elif target == "nbflow.__main__":
                why = "the entry point"
            else:
                mine, theirs = layer(module), layer(target)
                if mine is None or theirs is None or theirs <= mine or (module, target) in ALLOWED:
                    continue  # an unplaced module is reported by test_every_module_has_a_layer
                why = f"layer {theirs}, above its own layer {mine}"
            broken.append(f"{where(module, line)}: {module} imports {target} ({written}): {why}")
    assert not broken, f"{len(broken)} import(s) against the layer rule:\n" + "\n".join(broken)


def test_each_allowed_import_is_still_made_and_only_inside_a_function() -> None:
    for (importer, imported), reason in ALLOWED.items():
        assert reason.strip(), f"give the reason {importer} may import {imported}"
        lines = {line for line, target, _ in imports(importer) if target == imported}
        assert lines, f"{importer} no longer imports {imported}: remove the allowance"
        tree = ast.parse(MODULES[importer].read_text(encoding="utf-8"))
        in_functions = {
            node.lineno
            for func in ast.walk(tree)
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef))
            for node in ast.walk(func)
            if isinstance(node, (ast.Import, ast.ImportFrom))
        }
        outside = sorted(lines - in_functions)
        assert not outside, f"{importer} imports {imported} outside a function at line(s) {outside}"


def test_the_checks_see_function_level_and_type_checking_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import os\n"
        "from nbflow.core import dag\n"
        "from . import retry\n"
        "from ..store.base import AttemptRecord\n"
        "def f():\n"
        "    import nbflow.pipeline\n"
        "if TYPE_CHECKING:\n"
        "    from nbflow.engine.runner import injected_parameters\n"
    )
    found = sorted(imports("nbflow.engine.incremental", source))
    assert [(line, target) for line, target, _ in found] == [
        (3, "nbflow.core.dag"),
        (4, "nbflow.engine.retry"),
        (5, "nbflow.store.base"),
        (7, "nbflow.pipeline"),
        (9, "nbflow.engine.runner"),
    ]
    toy = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4, "e": 5}, "e": {"d": 6}, "f": {}}
    assert sorted(cycle for cycle, _ in cycles(toy)) == [["a", "b", "c", "a"], ["d", "e", "d"]]
