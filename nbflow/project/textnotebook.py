"""Jupytext text notebooks: ``.py`` (percent or light) and ``.md`` (Markdown or MyST) files with
a Jupytext header, read as notebooks.

Whether a file is one is a pure look at its first few kilobytes (:func:`jupytext_header`, no
jupytext import): a helper module, a README or ``nbflow_tasks.py`` has no such header and is
no task. Reading one converts it with jupytext (an optional dependency: ``nbflow[jupytext]``)
into the notebook every reader of an ``.ipynb`` gets
(:func:`nbflow.project.notebook.spec_from_json`). Nothing is run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nbflow.errors import MalformedNotebookError, MissingDependencyError
from nbflow.project.specs import TaskSpec

#: the suffixes of the text notebooks jupytext reads that nbflow discovers
TEXT_SUFFIXES = (".py", ".md")
#: how much of a file the header check reads
HEAD_BYTES = 8192
#: the extra that installs jupytext
EXTRA = "jupytext"

_FENCE = re.compile(r"^---\s*$")
_KEY = re.compile(r"^(jupyter|jupytext|kernelspec)\s*:")
_FORMATS = re.compile(r"^\s*formats\s*:\s*(.*)$")
_CODING = re.compile(r"^[ \t\f]*#.*?coding[:=]")


def is_text_notebook_suffix(path: str | Path) -> bool:
    """Whether ``path`` has the suffix of a text notebook (not whether it is one)."""
    return Path(path).suffix in TEXT_SUFFIXES


def jupytext_header(head: str, suffix: str) -> list[str] | None:
    """The YAML lines of the Jupytext header ``head`` (a file's first lines) opens with, uncommented;
    None if it has none: no ``---`` fence first, or no ``jupyter:``, ``jupytext:`` or
    ``kernelspec:`` key in it. Pure.

    A ``.py`` header is commented (``# ---``) and may follow a ``#!`` line and a coding line;
    a ``.md`` one may sit in an HTML comment (``<!--``) and follow blank lines.
    """
    comment = "#" if suffix == ".py" else ""
    lines = head.splitlines()
    start = 0
    if comment:
        if lines and lines[0].startswith("#!"):
            start = 1
        if len(lines) > start and _CODING.match(lines[start]):
            start += 1
    header: list[str] = []
    started = False
    for line in lines[start:]:
        if comment:
            if not line.startswith(comment):
                return None
            line = line[2:] if line.startswith(comment + " ") else line[1:]
        elif not started and (not line.strip() or line.strip() == "<!--"):
            continue
        if _FENCE.match(line):
            if started:
                break
            started = True
        elif not started:
            return None
        else:
            header.append(line)
    return header if any(_KEY.match(line) for line in header) else None


def pairs_with_ipynb(header: list[str]) -> bool:
    """Whether the header pairs the text file with an ``.ipynb`` (``formats: ipynb,py:percent``)."""
    for line in header:
        match = _FORMATS.match(line)
        if match and "ipynb" in match.group(1):
            return True
    return False


def read_head(path: Path) -> str:
    """The first :data:`HEAD_BYTES` of ``path`` as text ("" if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(HEAD_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ""


def is_text_notebook(path: Path) -> bool:
    """Whether the ``.py`` or ``.md`` file ``path`` is a task: it has a Jupytext header, and is
    not the text half of a pair whose ``.ipynb`` is beside it (that ``.ipynb`` is the task).
    Reads the file's first kilobytes only."""
    header = jupytext_header(read_head(path), path.suffix)
    if header is None:
        return False
    return not (pairs_with_ipynb(header) and path.with_suffix(".ipynb").is_file())


def _jupytext(relpath: str) -> Any:
    try:
        import jupytext
    except ImportError:
        raise MissingDependencyError(relpath, "a Jupytext text notebook", "jupytext", EXTRA) from None
    return jupytext


def text_to_notebook(text: str, suffix: str, relpath: str) -> Any:
    """The notebook (an nbformat node) jupytext reads from the text of a ``suffix`` file.

    Raises
    ------
    MissingDependencyError
        jupytext is not installed.
    MalformedNotebookError
        jupytext cannot read it.
    """
    jupytext = _jupytext(relpath)
    try:
        return jupytext.reads(text, fmt=suffix.lstrip("."))
    except Exception as e:  # a YAML header or a cell jupytext cannot read: name the file
        raise MalformedNotebookError(relpath, f"jupytext cannot read it ({type(e).__name__}: {e})") from None


def read_text_notebook(path: Path, relpath: str | None = None) -> Any:
    """The notebook (an nbformat node) of the text notebook at ``path``.

    Raises
    ------
    MissingDependencyError
        jupytext is not installed.
    MalformedNotebookError
        The file cannot be read, is not UTF-8, or is not one jupytext reads.
    """
    relpath = relpath or path.name
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise MalformedNotebookError(relpath, f"it cannot be read ({e.strerror})") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MalformedNotebookError(relpath, f"it is not UTF-8 text ({e})") from None
    return text_to_notebook(text, path.suffix, relpath)


def read_text_notebook_spec(path: Path, name: str, relpath: str) -> TaskSpec:
    """Read the text notebook ``path`` into a :class:`TaskSpec`, as its ``.ipynb`` would be.

    Raises
    ------
    MissingDependencyError, MalformedNotebookError, InvalidDeclarationError
    """
    from nbflow.project.notebook import spec_from_json

    return spec_from_json(read_text_notebook(path, relpath), path, name, relpath)
