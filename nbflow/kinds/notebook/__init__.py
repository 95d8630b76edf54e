"""The notebook kind: an ``.ipynb`` file run by papermill in a kernel, with nbflow's engine and client.

A Jupytext text notebook (a ``.py`` or ``.md`` file with a Jupytext header:
:mod:`nbflow.project.textnotebook`) is a notebook too, read and run through jupytext; a
``.py`` or ``.md`` file without that header is no task.

This module is the kind alone, cheap to import; what runs an attempt (papermill, nbclient,
jupyter_client: ``papermill.py``, ``client.py``, ``iopub.py``, ``spool.py``) is imported
by :meth:`NotebookKind.run` (or ahead of time by :meth:`NotebookKind.preload`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nbflow.kinds.base import FileKind
from nbflow.project.notebook import read_notebook_spec
from nbflow.project.specs import TaskSpec
from nbflow.project.textnotebook import TEXT_SUFFIXES, is_text_notebook, read_text_notebook_spec

if TYPE_CHECKING:
    from nbflow.execution.base import AttemptControl, AttemptOutcome, TaskRequest
    from nbflow.execution.kernels import KernelLauncher


#: the file the code kinds' tasks are declared in, never a notebook
TASKS_FILE = "nbflow_tasks.py"


class NotebookKind(FileKind):
    """A Jupyter notebook: its tagged ``parameters`` cell declares (:mod:`nbflow.project.notebook`).

    An ``.ipynb`` file, or a Jupytext text notebook (``.py``, ``.md``) with its header.
    """

    name = "notebook"
    noun = "notebook"
    suffixes = (".ipynb", *TEXT_SUFFIXES)
    checked_suffixes = TEXT_SUFFIXES
    checked_note = "with a Jupytext header"
    uses_kernel = True
    writes_notebook = True
    accepts_secrets = True  # through the kernel's environment, read by injected lines
    upstream_editable = True  # the `upstream = [...]` line of its parameters cell (project/edit.py)

    def is_task_file(self, path: Path) -> bool:
        # nbflow_tasks.py declares code tasks (the code kinds read it), whatever its header
        return path.name != TASKS_FILE and is_text_notebook(path)

    def read(self, path: Path, name: str, relpath: str) -> TaskSpec:
        if path.suffix in TEXT_SUFFIXES:
            return read_text_notebook_spec(path, name, relpath)
        return read_notebook_spec(path, name, relpath)

    def run(self, request: TaskRequest, control: AttemptControl, launcher: KernelLauncher | None) -> AttemptOutcome:
        from nbflow.kinds.notebook.papermill import run_notebook

        if launcher is None:  # a caller's mistake, not the task's: say so plainly
            raise TypeError("a notebook attempt needs a KernelLauncher")
        return run_notebook(request, launcher, control)

    def preload(self) -> None:
        import nbflow.kinds.notebook.papermill  # noqa: F401 - papermill, nbclient, jupyter_client


#: the notebook kind (the registry's, :data:`nbflow.kinds.KINDS`)
NOTEBOOK = NotebookKind()
