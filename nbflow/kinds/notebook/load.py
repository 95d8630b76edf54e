"""The notebook an attempt runs, loaded from its source: an ``.ipynb`` by papermill, a Jupytext
text notebook (``.py``, ``.md``) through jupytext into the same nbformat node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbflow.project.textnotebook import is_text_notebook_suffix, read_text_notebook


def load_notebook(path: str) -> Any:
    """The notebook at ``path`` as papermill's ``load_notebook_node`` gives it: its papermill
    metadata, every cell with ``tags`` and ``papermill`` metadata.

    A text notebook's executed copy is a plain ``.ipynb``: the Jupytext metadata (its text
    format, its pairing) is left out, so opening the copy pairs it with no text file.

    Raises
    ------
    MissingDependencyError, MalformedNotebookError
        A text notebook, and jupytext is not installed or cannot read it.
    """
    from papermill.iorw import load_notebook_node

    if not is_text_notebook_suffix(path):
        return load_notebook_node(path)
    from papermill import __version__

    nb = read_text_notebook(Path(path))
    nb.metadata.pop("jupytext", None)
    nb.metadata.setdefault(
        "papermill", {"default_parameters": {}, "parameters": {}, "environment_variables": {}, "version": __version__}
    )
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
        cell.metadata.setdefault("papermill", {})
    return nb
