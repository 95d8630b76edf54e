"""Task kinds: what a notebook, SQL, Python or HTTP task is, and how one attempt of it runs.

:data:`KINDS` is the registry, by name. Everything outside a kind's own module asks the
kind (:func:`kind_of`) for its flags and methods; folder discovery asks the
:func:`file kinds <file_kinds>` by suffix. Adding a kind is a module of its own (a
:class:`~nbflow.kinds.base.FileKind` or :class:`~nbflow.kinds.base.CodeKind`) and its
line here.
"""

from __future__ import annotations

from nbflow.errors import UnknownKindError
from nbflow.kinds.base import CodeKind, FileKind, TaskKind
from nbflow.kinds.http import HTTP
from nbflow.kinds.notebook import NOTEBOOK
from nbflow.kinds.python import PYTHON
from nbflow.kinds.sql import SQL

__all__ = ["KINDS", "CodeKind", "FileKind", "TaskKind", "code_kind", "file_kinds", "kind_of"]

#: every kind of task, by name
KINDS: dict[str, TaskKind] = {kind.name: kind for kind in (NOTEBOOK, SQL, PYTHON, HTTP)}


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


def code_kind(name: str) -> CodeKind:
    """The kind named ``name``, one whose tasks are declared in code.

    Raises
    ------
    UnknownKindError
        No kind of tasks declared in code has this name.
    """
    kind = KINDS.get(name)
    if not isinstance(kind, CodeKind):
        raise UnknownKindError(name, [k.name for k in KINDS.values() if isinstance(k, CodeKind)])
    return kind
