"""Change what a notebook declares, in the notebook itself: its ``upstream = [...]`` line.

The notebook stays the single source of truth (it works the same without nbflow's
JupyterLab panel): only the ``upstream`` assignment of the parameters cell is rewritten,
every other line, cell, output and metadata is left as it was. Pure, apart from
:func:`write_upstream`.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbflow.core.dag import find_cycle
from nbflow.errors import CycleError, InvalidDeclarationError, NbflowError, UnknownUpstreamError
from nbflow.project.notebook import strip_magics


def upstream_line(upstream: Sequence[str]) -> str:
    """``upstream = ["a", "b"]``, or ``upstream = None`` for a root."""
    return f"upstream = {json.dumps(list(upstream), ensure_ascii=False)}" if upstream else "upstream = None"


def set_upstream_in_source(source: str, upstream: Sequence[str], relpath: str = "<notebook>") -> str:
    """The parameters cell ``source`` with its ``upstream`` assignment replaced (or added first).

    Raises
    ------
    InvalidDeclarationError
        The cell is not valid Python, so it cannot be edited safely.
    """
    try:
        tree = ast.parse(strip_magics(source))
    except SyntaxError as e:
        raise InvalidDeclarationError(relpath, f"its parameters cell is not valid Python (line {e.lineno})") from None
    lines = source.splitlines(keepends=True)
    for stmt in tree.body:
        targets = (
            stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == "upstream" for t in targets):
            if len(targets) > 1 or stmt.end_lineno is None:
                raise InvalidDeclarationError(relpath, "its 'upstream' is assigned together with other names")
            first, last = stmt.lineno - 1, stmt.end_lineno - 1
            head = lines[first].encode()[: stmt.col_offset].decode()
            tail = lines[last].encode()[stmt.end_col_offset or 0 :].decode()  # col offsets count UTF-8 bytes
            return "".join([*lines[:first], head + upstream_line(upstream) + tail, *lines[last + 1 :]])
    return upstream_line(upstream) + ("\n" + source if source else "")


def _parameters_cell(nb: Mapping[str, Any]) -> dict[str, Any] | None:
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in (cell.get("metadata", {}).get("tags") or []):
            return cell  # type: ignore[return-value]
    return None


def set_upstream(nb: dict[str, Any], upstream: Sequence[str], relpath: str = "<notebook>") -> dict[str, Any]:
    """Set the notebook's declared upstreams, in place; adds a tagged parameters cell if it has none."""
    cell = _parameters_cell(nb)
    if cell is None:
        cell = {
            "cell_type": "code",
            "metadata": {"tags": ["parameters"]},
            "source": "",
            "outputs": [],
            "execution_count": None,
        }
        if nb.get("nbformat", 4) >= 4 and nb.get("nbformat_minor", 0) >= 5:
            import uuid

            cell["id"] = uuid.uuid4().hex[:8]
        nb.setdefault("cells", []).insert(0, cell)
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else source
    cell["source"] = set_upstream_in_source(source, upstream, relpath)
    return nb


def changed_upstream(current: Sequence[str], add: str | None = None, remove: str | None = None) -> list[str]:
    """``current`` with ``add`` appended (once) and ``remove`` taken out."""
    result = [u for u in current if u != remove]
    if add is not None and add not in result:
        result.append(add)
    return result


def check_upstream_change(
    task: str, upstream: Sequence[str], upstreams: Mapping[str, Sequence[str]], relpath: str
) -> None:
    """Refuse an edit that names an unknown task or closes a loop (nothing is written then).

    Raises
    ------
    UnknownUpstreamError, CycleError
    """
    for name in upstream:
        if name not in upstreams:
            raise UnknownUpstreamError(task, name, sorted(upstreams), path=relpath)
    cycle = find_cycle({**upstreams, task: list(upstream)})
    if cycle is not None:
        raise CycleError(cycle)


def write_upstream(path: Path, upstream: Sequence[str], relpath: str) -> None:
    """Rewrite the notebook at ``path`` with ``upstream`` declared (atomically: a temp file, then a rename)."""
    import os

    import nbformat

    try:
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    except Exception as e:  # unreadable JSON or not a notebook: say which file
        raise NbflowError(f"{relpath} cannot be read as a notebook: {e}") from e
    set_upstream(nb, upstream, relpath)
    path = path.resolve()  # a notebook reached through a symlink: its target changes, the link stays
    tmp = path.with_name(f".{path.name}.nbflow-{os.getpid()}.tmp")
    try:
        nbformat.write(nb, tmp, version=nbformat.NO_CONVERT)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
