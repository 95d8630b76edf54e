"""What a task kind is: how its tasks are found or declared, what they need, how one attempt runs.

A kind is a small object in the registry (:data:`nbflow.kinds.KINDS`), looked up by the
name every :class:`~nbflow.project.specs.TaskSpec` and
:class:`~nbflow.execution.base.TaskRequest` carries. The rest of nbflow asks a kind's
flags and methods, never its name: adding a kind touches only its own module and the
registry. Importing a kind is cheap; what its attempts need (papermill, DuckDB) is
imported inside :meth:`TaskKind.run`.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nbflow.project.specs import ParametersDecl, Product, TaskSpec

if TYPE_CHECKING:
    from nbflow.execution.base import AttemptControl, AttemptOutcome, TaskRequest
    from nbflow.execution.kernels import KernelLauncher


class TaskKind(abc.ABC):
    """One kind of task. Subclass :class:`FileKind` or :class:`CodeKind`, not this."""

    #: the name tasks of this kind carry (``TaskSpec.kind``, ``TaskRequest.kind``)
    name: ClassVar[str]
    #: the file suffixes discovered as tasks of this kind; empty for kinds declared in code
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: an attempt runs in a Jupyter kernel: kernels are checked before a run, may be
    #: started ahead of time, and are recorded in the run's environment
    uses_kernel: ClassVar[bool] = False
    #: an attempt writes an executed notebook (the task's ``output_notebook``)
    writes_notebook: ClassVar[bool] = False
    #: the declared defaults are injected with the overrides: no code of the task's own holds them
    injects_defaults: ClassVar[bool] = False
    #: secret parameters may reach the task (they do through a kernel's environment)
    accepts_secrets: ClassVar[bool] = False
    #: an attempt starts a child process, which a daemon process (a Dask worker) may not
    starts_process: ClassVar[bool] = False
    #: the panel may rewrite the task's ``upstream`` declaration in its file
    upstream_editable: ClassVar[bool] = False

    @abc.abstractmethod
    def run(self, request: TaskRequest, control: AttemptControl, launcher: KernelLauncher | None) -> AttemptOutcome:
        """Run one attempt; never raises for anything the task does (that is the outcome).

        ``control`` stops it from another thread (a cancel, a timeout); ``launcher`` starts
        kernels, for kinds that :attr:`use one <uses_kernel>` (None for the others).
        """

    def __repr__(self) -> str:
        return f"<task kind {self.name}>"


class FileKind(TaskKind):
    """A kind whose tasks are files of a pipeline folder, found by :attr:`suffixes`."""

    @abc.abstractmethod
    def read(self, path: Path, name: str, relpath: str) -> TaskSpec:
        """The spec of the task file ``path`` (``relpath`` names it in messages). Never runs it.

        Raises
        ------
        MalformedNotebookError, InvalidDeclarationError
            The file cannot be read, or declares something of the wrong shape.
        """


class CodeKind(TaskKind):
    """A kind whose tasks are declared in code (``nbflow_tasks.py``, or a ``Pipeline`` in Python)."""

    def declare(
        self,
        path: Path,
        name: str,
        *,
        target: Any = None,
        upstream: Sequence[str] = (),
        product: Product = None,
        defaults: Mapping[str, str] | None = None,
        source: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> TaskSpec:
        """The spec of a task declared in the code file ``path`` (it runs in that file's folder,
        where its products resolve too).

        ``target`` is what :meth:`run` needs (a function, a request); None for a task read
        from a file that has not run. ``defaults`` are its parameters (name -> source of
        the literal), ``source`` what its code hash is taken from (None: no hash, not loaded).
        """
        return TaskSpec(
            name=name,
            path=path,
            relpath=f"<{self.name} task {name}>",
            kernel_name="-",
            language=self.name,
            params=ParametersDecl(dict(defaults or {}), tuple(upstream), True, product, product is not None),
            parameters_cell=None,
            source_hash=hashlib.sha256(source.encode()).hexdigest()[:16] if source is not None else "",
            settings=dict(settings or {}),
            kind=self.name,
            target=target,
        )
