"""Read one ``.ipynb`` file into a :class:`~nbflow.project.specs.TaskSpec`, without starting a kernel.

The ``parameters`` cell (papermill's convention: the code cell tagged ``parameters``) is
read with :mod:`ast` (an R notebook's with :mod:`nbflow.project.rlang`), never executed.
Two names in it mean something to nbflow:

``upstream``
    ``None`` or a literal list of task names this notebook needs.
``product``
    ``None``, a path, or a literal ``{key: path}`` dict of files the notebook writes,
    relative to the notebook's folder.

Every other top-level assignment in the cell is a parameter a run may override.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from nbflow.errors import InvalidDeclarationError, MalformedNotebookError
from nbflow.project.specs import ParametersDecl, Product, TaskSpec

DEFAULT_KERNEL = "python3"

#: how each language writes the declarations, for error messages
_EXAMPLES = {
    "python": ('upstream = ["clean"]', 'product = {"data": "out/data.csv"}'),
    "r": ('upstream <- c("clean")', 'product <- list(data = "out/data.csv")'),
}
_R_TYPES = {"int": "number", "float": "number", "bool": "logical", "dict": "named list", "list": "list"}


def is_r(language: str) -> bool:
    """Whether a notebook's kernel language is R (IRkernel says ``R``)."""
    return language.strip().lower() == "r"


def strip_magics(source: str) -> str:
    """Blank IPython magics and shell escapes so that ``ast`` can read the cell; keep line numbers."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        lines.append("" if stripped.startswith(("%", "!")) else line)
    return "\n".join(lines)


def _type_name(value: Any, language: str = "python") -> str:
    name = type(value).__name__
    return _R_TYPES.get(name, name) if language == "r" else name


def _literal(node: ast.expr, name: str, where: tuple[str, int | None]) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise InvalidDeclarationError(
            where[0],
            f"{name!r} must be a literal (nbflow reads it without running the notebook), "
            f"got the expression `{ast.unparse(node)}`",
            where[1],
        ) from None


def _check_upstream(value: Any, where: tuple[str, int | None], language: str = "python") -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        got = _type_name(value, language) if not isinstance(value, (list, tuple)) else "a list containing non-strings"
        raise InvalidDeclarationError(
            where[0],
            f"'upstream' must be a list of notebook names, like {_EXAMPLES[language][0]} (got {got})",
            where[1],
        )
    names = tuple(v.strip() for v in value)
    if any(not n for n in names):
        raise InvalidDeclarationError(where[0], "'upstream' contains an empty name", where[1])
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InvalidDeclarationError(
            where[0], f"'upstream' lists {', '.join(map(repr, dupes))} more than once", where[1]
        )
    return names


def _check_product(value: Any, where: tuple[str, int | None], language: str = "python") -> Product:
    if value is None or (isinstance(value, str) and value):
        return value
    if (
        isinstance(value, dict)
        and value
        and all(isinstance(k, str) and isinstance(v, str) and v for k, v in value.items())
    ):
        return dict(value)
    raise InvalidDeclarationError(
        where[0],
        f"'product' must be a path or a dict of named paths, like {_EXAMPLES[language][1]} "
        f"(got {_type_name(value, language)}{' with non-string keys or values' if isinstance(value, dict) else ''})",
        where[1],
    )


def parse_parameters(
    source: str, relpath: str = "<notebook>", cell: int | None = None, language: str = "python"
) -> ParametersDecl:
    """Read a parameters cell's source, in the notebook's kernel ``language``, into a
    :class:`ParametersDecl` (R is read by :func:`parse_r_parameters`, anything else as Python).

    Raises
    ------
    MalformedNotebookError
        The cell is not valid Python (or R).
    InvalidDeclarationError
        ``upstream`` or ``product`` is not a literal of the right shape.
    """
    if is_r(language):
        return parse_r_parameters(source, relpath, cell)
    cell_label = "the parameters cell" if cell is None else f"parameters cell {cell}"
    where = (relpath, cell)
    try:
        tree = ast.parse(strip_magics(source))
    except SyntaxError as e:
        raise MalformedNotebookError(relpath, f"{cell_label} is not valid Python (line {e.lineno}: {e.msg})") from None
    defaults: dict[str, str] = {}
    upstream: tuple[str, ...] = ()
    product: Product = None
    declares_upstream = declares_product = False
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            targets = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
            value = stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            targets = [stmt.target.id]
            value = stmt.value
        else:
            continue
        for target in targets:
            if target == "upstream":
                upstream = _check_upstream(_literal(value, target, where), where)
                declares_upstream = True
            elif target == "product":
                product = _check_product(_literal(value, target, where), where)
                declares_product = True
            else:
                defaults[target] = ast.unparse(value)
    return ParametersDecl(defaults, upstream, declares_upstream, product, declares_product)


def parse_r_parameters(source: str, relpath: str = "<notebook>", cell: int | None = None) -> ParametersDecl:
    """Read an R parameters cell (``upstream <- c("clean")``, ``product <- list(data = "out/x.csv")``,
    ``n <- 10L``) into a :class:`ParametersDecl`, without running R.

    A literal default is kept as Python source (``10L`` -> ``10``, ``c(1, 2)`` -> ``[1, 2]``,
    ``list(a = 1)`` -> ``{'a': 1}``), as overrides are checked against Python literals; any other
    default keeps its R source text, as a Python notebook's expression keeps its own.

    Raises
    ------
    MalformedNotebookError
        The cell has an unclosed string or bracket.
    InvalidDeclarationError
        ``upstream`` or ``product`` is not a literal of the right shape.
    """
    from nbflow.project import rlang  # only for R notebooks

    cell_label = "the parameters cell" if cell is None else f"parameters cell {cell}"
    where = (relpath, cell)
    try:
        assignments = rlang.read_assignments(source)
    except rlang.RSyntaxError as e:
        raise MalformedNotebookError(relpath, f"{cell_label} is not valid R (line {e.line}: {e.message})") from None
    defaults: dict[str, str] = {}
    upstream: tuple[str, ...] = ()
    product: Product = None
    declares_upstream = declares_product = False
    for a in assignments:
        if a.name in ("upstream", "product") and a.value is rlang.NOT_LITERAL:
            raise InvalidDeclarationError(
                relpath,
                f"{a.name!r} must be a literal (nbflow reads it without running the notebook), "
                f"got the expression `{a.text}` (line {a.line})",
                cell,
            )
        if a.name == "upstream":
            upstream = _check_upstream(a.value, where, "r")
            declares_upstream = True
        elif a.name == "product":
            product = _check_product(a.value, where, "r")
            declares_product = True
        else:
            defaults[a.name] = a.text if a.value is rlang.NOT_LITERAL else repr(a.value)
    return ParametersDecl(defaults, upstream, declares_upstream, product, declares_product)


def _cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _structure_problem(nb: Any) -> str | None:
    """A cheap structural check of the parts nbflow relies on; papermill validates the rest."""
    if not isinstance(nb, dict):
        return f"the top level is a JSON {_type_name(nb)}, not an object"
    if nb.get("nbformat") != 4:
        return f"nbformat {nb.get('nbformat')!r} is not supported (expected 4; open and save it in JupyterLab)"
    cells = nb.get("cells")
    if not isinstance(cells, list):
        return "it has no 'cells' list"
    metadata = nb.get("metadata", {})
    if not isinstance(metadata, dict):
        return "its 'metadata' is not an object"
    kernelspec = metadata.get("kernelspec")
    if kernelspec is not None and not (
        isinstance(kernelspec, dict)
        and isinstance(kernelspec.get("name", ""), str)
        and isinstance(kernelspec.get("language", ""), str)
    ):
        return "its 'metadata.kernelspec' is not an object with a text 'name' (choose a kernel in JupyterLab)"
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            return f"cell {i} is not a code, markdown or raw cell"
        source = cell.get("source")
        if not (isinstance(source, str) or (isinstance(source, list) and all(isinstance(s, str) for s in source))):
            return f"cell {i} has no text 'source'"
        cell_metadata = cell.get("metadata", {})
        if not isinstance(cell_metadata, dict):
            return f"cell {i} has a 'metadata' that is not an object"
        tags = cell_metadata.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            return f"cell {i} has 'tags' that are not a list of strings"
    return None


_CONNECT = re.compile(r"""\bnbflow\.connect\(\s*(?:name\s*=\s*)?(["'])([A-Za-z_][\w.-]*)\1""")
_BARE_CONNECT = re.compile(r"""(?<![\w.])connect\(\s*(?:name\s*=\s*)?(["'])([A-Za-z_][\w.-]*)\1""")
_IMPORTS_CONNECT = re.compile(r"from\s+nbflow\s+import\s+[^\n]*\bconnect\b")


def literal_connections(code: str) -> tuple[str, ...]:
    """The connections code names literally: ``nbflow.connect("warehouse")`` (or ``connect("...")``
    after ``from nbflow import connect``), so that a run checks them before it starts."""
    if "connect(" not in code:
        return ()
    found = [name for _, name in _CONNECT.findall(code)]
    if _IMPORTS_CONNECT.search(code):
        found += [name for _, name in _BARE_CONNECT.findall(code)]
    return tuple(dict.fromkeys(found))


def spec_from_json(nb: Any, path: Path, name: str, relpath: str) -> TaskSpec:
    """Build a :class:`TaskSpec` from a notebook's parsed JSON. Pure: no I/O."""
    problem = _structure_problem(nb)
    if problem:
        raise MalformedNotebookError(relpath, problem)
    metadata = nb.get("metadata", {})
    kernelspec = metadata.get("kernelspec") or {}
    kernel_name = kernelspec.get("name") or DEFAULT_KERNEL
    language = kernelspec.get("language") or (metadata.get("language_info") or {}).get("name") or "python"

    digest = hashlib.sha256(kernel_name.encode())
    params_index: int | None = None
    sources = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = _cell_source(cell)
        sources.append(source)
        digest.update(b"\0")
        digest.update(source.encode())
        tags = (cell.get("metadata") or {}).get("tags") or []
        if params_index is None and "parameters" in tags:
            params_index = i
    decl = ParametersDecl()
    if params_index is not None:
        decl = parse_parameters(_cell_source(nb["cells"][params_index]), relpath, params_index, language)
    return TaskSpec(
        name=name,
        path=path,
        relpath=relpath,
        kernel_name=kernel_name,
        language=language,
        params=decl,
        parameters_cell=params_index,
        source_hash=digest.hexdigest()[:16],
        settings=metadata.get("nbflow"),
        connections=literal_connections("\n".join(sources)) if language == "python" else (),
    )


def read_notebook_spec(path: Path, name: str, relpath: str) -> TaskSpec:
    """Read ``path`` into a :class:`TaskSpec`.

    Raises
    ------
    MalformedNotebookError
        The file is not readable JSON or not a version 4 notebook, naming the file.
    InvalidDeclarationError
        Its ``upstream`` or ``product`` declaration has the wrong shape.
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise MalformedNotebookError(relpath, f"it cannot be read ({e.strerror})") from e
    try:
        nb = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise MalformedNotebookError(relpath, f"it is not valid JSON ({e})") from None
    return spec_from_json(nb, path, name, relpath)
