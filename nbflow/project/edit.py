"""Change what a notebook declares, in the notebook itself: its ``upstream = [...]`` line.

The notebook stays the single source of truth (it works the same without nbflow's
JupyterLab panel): only the ``upstream`` assignment of the parameters cell is rewritten,
every other line, cell, output and metadata is left as it was; a Jupytext text notebook
(``.py``, ``.md``) is edited as text, its other bytes kept. Pure, apart from
:func:`write_upstream`.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Callable, Mapping, Sequence
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


def r_upstream_line(upstream: Sequence[str], assign: str = "<-") -> str:
    """``upstream <- c("a", "b")``, or ``upstream <- NULL`` for a root."""
    from nbflow.project.rlang import r_string

    value = f"c({', '.join(r_string(u) for u in upstream)})" if upstream else "NULL"
    return f"upstream {assign} {value}"


def set_upstream_in_r_source(source: str, upstream: Sequence[str], relpath: str = "<notebook>") -> str:
    """An R parameters cell ``source`` with its ``upstream`` assignment replaced (or added first).

    Raises
    ------
    InvalidDeclarationError
        The cell cannot be read as R, or assigns ``upstream`` together with other names.
    """
    from nbflow.project.rlang import RSyntaxError, statements

    try:
        found = list(statements(source))
    except RSyntaxError as e:
        raise InvalidDeclarationError(relpath, f"its parameters cell is not valid R ({e})") from None
    for tokens in found:
        if len(tokens) > 2 and tokens[0].kind == "name" and tokens[0].value == "upstream":
            assign = tokens[1].text
            if assign not in ("<-", "=", "<<-"):
                continue
            if len(tokens) > 3 and tokens[3].text in ("<-", "=", "<<-"):
                raise InvalidDeclarationError(relpath, "its 'upstream' is assigned together with other names")
            start, end = tokens[0].start, tokens[-1].end
            return source[:start] + r_upstream_line(upstream, assign) + source[end:]
    return r_upstream_line(upstream) + ("\n" + source if source else "")


def _language(nb: Mapping[str, Any]) -> str:
    metadata = nb.get("metadata") or {}
    return str(
        (metadata.get("kernelspec") or {}).get("language")
        or (metadata.get("language_info") or {}).get("name")
        or "python"
    )


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
    if _language(nb).lower() == "r":
        cell["source"] = set_upstream_in_r_source(source, upstream, relpath)
    else:
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


def _cells(nb: Mapping[str, Any]) -> list[tuple[Any, str, Any]]:
    return [
        (cell.get("cell_type"), "".join(cell.get("source") or ""), cell.get("metadata")) for cell in nb.get("cells", [])
    ]


def _changed_lines(old: list[str], new: list[str]) -> tuple[int, int, int]:
    """Where ``new`` differs from ``old``: ``old[start:old_end]`` became ``new[start:new_end]``; an
    insertion is widened to the line after it (or before it, at the end), so that it has an anchor."""
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    same_end = 0
    while same_end < min(len(old), len(new)) - start and old[-1 - same_end] == new[-1 - same_end]:
        same_end += 1
    old_end, new_end = len(old) - same_end, len(new) - same_end
    if old_end == start:
        if old_end < len(old):
            old_end, new_end = old_end + 1, new_end + 1
        elif start > 0:
            start -= 1
    return start, old_end, new_end


def set_upstream_in_text(text: str, suffix: str, upstream: Sequence[str], relpath: str = "<notebook>") -> str:
    """The Jupytext text notebook ``text`` (a ``suffix`` file: ``.py``, ``.md``) with its parameters
    cell's ``upstream`` line replaced (or added first); every other byte is kept. Pure: the text is
    read with jupytext, and the result is read again to check that only that cell changed.

    Raises
    ------
    InvalidDeclarationError
        It has no (non-empty) parameters cell, the cell is not valid Python, or the line cannot
        be found in the text: it is not edited.
    MissingDependencyError, MalformedNotebookError
        jupytext is not installed, or cannot read it.
    """
    import copy

    from nbflow.project.textnotebook import text_to_notebook

    nb = text_to_notebook(text, suffix, relpath)
    cell = _parameters_cell(nb)
    source = "".join(cell.get("source") or "") if cell is not None else ""
    if not source.strip():
        raise InvalidDeclarationError(
            relpath, "it has no parameters cell with code in it; write upstream = [] in its cell tagged 'parameters'"
        )
    expected = set_upstream(copy.deepcopy(nb), upstream, relpath)
    old_lines = source.splitlines()
    new_lines = (_parameters_cell(expected) or {}).get("source", "").splitlines()
    start, old_end, new_end = _changed_lines(old_lines, new_lines)
    block, replacement = old_lines[start:old_end], new_lines[start:new_end]
    lines = text.splitlines(keepends=True)
    bare = [line.rstrip("\r\n") for line in lines]
    for i in range(len(lines) - len(block) + 1):
        if bare[i : i + len(block)] != block:
            continue
        ending = lines[i][len(bare[i]) :] or "\n"
        last = lines[i + len(block) - 1]
        new_block = [line + ending for line in replacement]
        new_block[-1] = replacement[-1] + last[len(bare[i + len(block) - 1]) :]  # the block's last line ending
        candidate = "".join([*lines[:i], *new_block, *lines[i + len(block) :]])
        try:
            again = text_to_notebook(candidate, suffix, relpath)
        except NbflowError:
            continue
        if _cells(again) == _cells(expected) and again.get("metadata") == expected.get("metadata"):
            return candidate
    raise InvalidDeclarationError(
        relpath, "its 'upstream' line could not be found in the text as jupytext reads it; edit it in the file"
    )


def _replace_file(path: Path, write: Callable[[Path], object]) -> None:
    """Replace the file at ``path`` with what ``write`` writes to a temporary file beside it (atomically,
    keeping its permissions; a file reached through a symlink: its target changes, the link stays)."""
    path = path.resolve()
    tmp = path.with_name(f".{path.name}.nbflow-{os.getpid()}.tmp")
    try:
        write(tmp)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_upstream(path: Path, upstream: Sequence[str], relpath: str) -> None:
    """Rewrite the notebook at ``path`` with ``upstream`` declared (atomically: a temp file, then a rename).

    A Jupytext text notebook (``.py``, ``.md``) stays one: only its ``upstream`` line changes
    (:func:`set_upstream_in_text`).
    """
    from nbflow.project.textnotebook import is_text_notebook_suffix

    if is_text_notebook_suffix(path):
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise NbflowError(f"{relpath} cannot be read as a text notebook: {e}") from e
        data = set_upstream_in_text(text, path.suffix, upstream, relpath).encode("utf-8")
        _replace_file(path, lambda tmp: tmp.write_bytes(data))
        return

    import nbformat

    try:
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    except Exception as e:  # unreadable JSON or not a notebook: say which file
        raise NbflowError(f"{relpath} cannot be read as a notebook: {e}") from e
    set_upstream(nb, upstream, relpath)
    _replace_file(path, lambda tmp: nbformat.write(nb, tmp, version=nbformat.NO_CONVERT))
