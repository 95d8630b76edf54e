"""What a task kind is: how its tasks are found or declared, what they need, how one attempt runs.

A kind is a small object in the registry (:data:`nbflow.kinds.KINDS`), looked up by the
name every :class:`~nbflow.project.specs.TaskSpec` and
:class:`~nbflow.execution.base.TaskRequest` carries. The rest of nbflow asks a kind's
flags and methods, never its name: adding a kind touches only its own module and the
registry. Importing a kind is cheap; what its attempts need (papermill, DuckDB) is
imported inside :meth:`TaskKind.run` (or ahead of time by :meth:`TaskKind.preload`).
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nbflow.project.code import DeclaredTask, TaskCall, TaskReader, article, declared_task, literal
from nbflow.project.specs import ParametersDecl, Product, TaskSpec

if TYPE_CHECKING:
    from nbflow.execution.base import AttemptControl, AttemptOutcome, TaskRequest
    from nbflow.execution.kernels import KernelLauncher


class TaskKind(abc.ABC):
    """One kind of task. Subclass :class:`FileKind` or :class:`CodeKind`, not this."""

    #: the name tasks of this kind carry (``TaskSpec.kind``, ``TaskRequest.kind``)
    name: ClassVar[str]
    #: what one task of this kind is called in messages ("notebook", "SQL task")
    noun: ClassVar[str] = "task"
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
    #: whether its tasks can write a product that is a URI (an ``s3://`` object, a ``table://``
    #: table); an HTTP task saves its response to a file only
    writes_uri_products: ClassVar[bool] = True

    @abc.abstractmethod
    def run(self, request: TaskRequest, control: AttemptControl, launcher: KernelLauncher | None) -> AttemptOutcome:
        """Run one attempt; never raises for anything the task does (that is the outcome).

        ``control`` stops it from another thread (a cancel, a timeout); ``launcher`` starts
        kernels, for kinds that :attr:`use one <uses_kernel>` (None for the others).
        """

    def preload(self) -> None:
        """Import what :meth:`run` needs ahead of time, once, in a process about to run
        attempts (a Dask worker, as the executor starts): the first attempt does not pay
        for it, nor do concurrent first imports race. Nothing by default."""

    def __repr__(self) -> str:
        return f"<task kind {self.name}>"


class FileKind(TaskKind):
    """A kind whose tasks are files of a pipeline folder, found by :attr:`suffixes`.

    A file is the kind whose suffix it ends with, the longest when several do
    (``.j2.sql`` before ``.sql``), and a task unless the kind says otherwise
    (:meth:`is_task_file`); the task's name is its path without that suffix.
    """

    #: what one task file of this kind is called in messages ("x is not a valid <noun>",
    #: "holds no <noun>s"); a malformed file's :class:`~nbflow.errors.MalformedNotebookError`
    #: is worded with it
    noun: ClassVar[str] = "task file"

    #: the suffixes (of :attr:`suffixes`) whose files are tasks only when :meth:`is_task_file`
    #: says so (a ``.py`` file may be a helper module); the others' files always are
    checked_suffixes: ClassVar[tuple[str, ...]] = ()
    #: which files of :attr:`checked_suffixes` are tasks, for messages ("with a Jupytext header")
    checked_note: ClassVar[str] = "of this kind"

    def is_task_file(self, path: Path) -> bool:
        """Whether the file ``path``, which ends with one of :attr:`checked_suffixes`, is a task of
        this kind; False skips it silently. Asked on every discovery (never for a file reached
        through a symbolic link leading outside the folder nbflow may read: that one is skipped),
        so it must be cheap: a look at the name or the file's first bytes. Yes by default.
        """
        return True

    @abc.abstractmethod
    def read(self, path: Path, name: str, relpath: str) -> TaskSpec:
        """The spec of the task file ``path`` (``relpath`` names it in messages). Never runs it.

        Raises
        ------
        MalformedNotebookError, InvalidDeclarationError
            The file cannot be read, or declares something of the wrong shape.
        """


class CodeKind(TaskKind):
    """A kind whose tasks are declared in code (``nbflow_tasks.py``, or a ``Pipeline`` in Python).

    Every code kind is declared with ``Pipeline.add_task(kind, name, /, upstream=...,
    product=..., **declaration)``, in Python and in ``nbflow_tasks.py`` alike: the keywords
    in :attr:`arguments` are the kind's own (given to :meth:`declare_task`), the others are
    task settings. A kind may also have a ``Pipeline`` method of its own, its :attr:`facade`
    (``task``, ``http_task``), a thin wrapper over ``add_task``. Reading ``nbflow_tasks.py``
    without running it, each declaration of the kind is handed to :meth:`read_call`.
    """

    #: the ``Pipeline`` method declaring a task of this kind, and the call read as one in
    #: ``nbflow_tasks.py`` (``pipeline.<facade>(...)``); None: only ``add_task`` declares one
    facade: ClassVar[str | None] = None
    #: the facade decorates a function (``@pipeline.task``): it returns the function, not the
    #: task, and ``@pipeline.<facade>``, ``pipeline.<facade>(...)(f)`` are read as declarations
    decorates: ClassVar[bool] = False
    #: the keyword arguments of its own a declaration takes (besides ``upstream`` and
    #: ``product``); the other keywords of ``add_task`` are task settings
    arguments: ClassVar[frozenset[str]] = frozenset()

    @abc.abstractmethod
    def declare_task(
        self,
        path: Path,
        name: str,
        arguments: Mapping[str, Any],
        *,
        upstream: Sequence[str] = (),
        product: Product = None,
        settings: Mapping[str, Any] | None = None,
    ) -> TaskSpec:
        """The spec of the task ``name`` declared in the code file ``path`` with the kind's own
        ``arguments`` (a subset of :attr:`arguments`, as given), usually through :meth:`declare`.

        Raises
        ------
        TypeError
            An argument the kind needs is missing, or of the wrong type.
        PipelineValidationError
            An argument's value is not one the kind can take.
        """

    def read_call(self, call: TaskCall) -> DeclaredTask | str:
        """The task one declaration in ``nbflow_tasks.py`` declares, read from its ``ast``
        (never run), or why it cannot be read that way.

        By default: the name ``add_task`` gives, or the facade's first argument (or its
        ``name=``); ``upstream`` and ``product`` literals; the defaults of
        :meth:`read_defaults`. Helpers: :func:`nbflow.project.code.literal`,
        :func:`~nbflow.project.code.declared_task`.
        """
        name = call.name
        if name is None:
            ok, name = literal(call.args[0] if call.args else call.keywords.get("name"))
        if not isinstance(name, str) or not name:
            return f"{article(self.noun)} whose name is not a literal"
        return declared_task(self.name, name, call.keywords, self.read_defaults(call), call.line)

    def read_defaults(self, call: TaskCall) -> dict[str, str]:
        """The parameters a declaration in ``nbflow_tasks.py`` gives its task, read from its
        ``ast`` (name -> the source of the literal default). None by default."""
        return {}

    def reader(self) -> TaskReader:
        """How ``nbflow_tasks.py`` is read for this kind (:func:`nbflow.project.code.read_declarations`)."""
        return TaskReader(self.name, self.read_call, self.facade, self.decorates, self.noun)

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
