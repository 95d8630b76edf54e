"""Task kinds: what a notebook, SQL, Python, HTTP or MongoDB extract task is, and how one attempt of it runs.

:data:`KINDS` is the registry, by name. Everything outside a kind's own module asks the
kind (:func:`kind_of`) for its flags and methods; folder discovery asks the
:func:`file kinds <file_kinds>` by suffix (:func:`file_kind_for`), and the kind whether a file
is a task (:meth:`~nbflow.kinds.base.FileKind.is_task_file`), ``Pipeline.add_task``
and the reading of ``nbflow_tasks.py`` the :func:`code kinds <code_kinds>`. Adding a kind
is a module of its own (a :class:`~nbflow.kinds.base.FileKind` or
:class:`~nbflow.kinds.base.CodeKind`) and its line here.
"""

from __future__ import annotations

from pathlib import PurePath

from nbflow.errors import UnknownKindError
from nbflow.kinds.base import CodeKind, FileKind, TaskKind
from nbflow.kinds.http import HTTP
from nbflow.kinds.mongo import MONGO
from nbflow.kinds.notebook import NOTEBOOK
from nbflow.kinds.python import PYTHON
from nbflow.kinds.sql import SQL

__all__ = [
    "KINDS",
    "CodeKind",
    "FileKind",
    "TaskKind",
    "code_kind",
    "code_kinds",
    "file_kind_for",
    "file_kinds",
    "file_nouns",
    "kind_of",
]

#: every kind of task, by name
KINDS: dict[str, TaskKind] = {kind.name: kind for kind in (NOTEBOOK, SQL, PYTHON, HTTP, MONGO)}


def kind_of(name: str) -> TaskKind:
    """The kind named ``name`` (a spec's or a request's ``kind``).

    Raises
    ------
    UnknownKindError
        No kind has this name.
    """
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownKindError(name, list(KINDS)) from None


def file_kinds() -> dict[str, FileKind]:
    """The kinds whose tasks are files, by suffix (``".ipynb"``, ``".sql"``)."""
    return {suffix: kind for kind in KINDS.values() if isinstance(kind, FileKind) for suffix in kind.suffixes}


def file_kind_for(path: str | PurePath) -> tuple[FileKind, str] | None:
    """The file kind of the file ``path`` and the suffix it matched: the longest suffix it ends
    with (``report.j2.sql`` is a ``.j2.sql`` kind's, if one is registered, before ``.sql``'s);
    None if no file kind's."""
    name = path.name if isinstance(path, PurePath) else PurePath(path).name
    found: tuple[FileKind, str] | None = None
    for kind in KINDS.values():
        if isinstance(kind, FileKind):
            for suffix in kind.suffixes:
                if name.endswith(suffix) and len(name) > len(suffix) and (found is None or len(suffix) > len(found[1])):
                    found = kind, suffix
    return found


def file_nouns() -> list[str]:
    """The task files a folder may hold, kind by kind, for messages: ``["notebooks (*.ipynb; *.py,
    *.md with a Jupytext header)", "SQL tasks (*.sql)"]``."""
    return [_file_noun(kind) for kind in KINDS.values() if isinstance(kind, FileKind) and kind.suffixes]


def _file_noun(kind: FileKind) -> str:
    def stars(suffixes: list[str]) -> str:
        return ", ".join("*" + s for s in suffixes)

    checked = [s for s in kind.suffixes if s in kind.checked_suffixes]
    files = stars([s for s in kind.suffixes if s not in checked])
    if checked:
        files = "; ".join(filter(None, [files, f"{stars(checked)} {kind.checked_note}"]))
    return f"{kind.noun}s ({files})"


def code_kinds() -> dict[str, CodeKind]:
    """The kinds whose tasks are declared in code, by name."""
    return {name: kind for name, kind in KINDS.items() if isinstance(kind, CodeKind)}


def code_kind(name: str) -> CodeKind:
    """The kind named ``name``, one whose tasks are declared in code.

    Raises
    ------
    UnknownKindError
        No kind of tasks declared in code has this name.
    """
    kind = KINDS.get(name)
    if not isinstance(kind, CodeKind):
        raise UnknownKindError(name, list(code_kinds()))
    return kind
