"""The Python API: a :class:`Pipeline` of :class:`Task` objects, run with :meth:`Pipeline.run`."""

from __future__ import annotations

import contextlib
import os
import runpy
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Union

from nbflow import states
from nbflow.core.dag import DAG, build_dag, find_cycle
from nbflow.engine.incremental import ProductCheck, fingerprints, resume_plan, reused, source_hashes
from nbflow.engine.incremental import plan as make_plan
from nbflow.engine.requests import product_paths, product_targets, resolve_product
from nbflow.engine.runner import load_run
from nbflow.engine.session import RunOptions, RunSession
from nbflow.errors import (
    CycleError,
    DuplicateTaskError,
    InvalidSettingsError,
    MalformedNotebookError,
    NbflowError,
    PipelineNotFoundError,
    PipelineValidationError,
    RunStillRunningError,
    UnknownExecutorError,
    UnknownTaskError,
)
from nbflow.kinds import code_kind, code_kinds, file_nouns, kind_of
from nbflow.kinds.discovery import discover
from nbflow.paths import StateDir, is_inside
from nbflow.project import code as code_reading
from nbflow.project.code import CodeDeclarations, DeclaredTask
from nbflow.project.params import Overrides, validate_overrides, with_logical_date
from nbflow.project.settings import ProjectSettings, TaskSettings, load_project
from nbflow.project.specs import Product, TaskSpec
from nbflow.validation import check_connections, check_kernels, check_secrets, product_problems, target_problems

if TYPE_CHECKING:
    import threading

    from nbflow.engine.runner import RunListener, RunResult
    from nbflow.execution.base import Executor
    from nbflow.store.base import RunStore

TaskRefs = Union["Task", Sequence["Task"]]
#: a pipeline folder's file of tasks defined in code (functions, HTTP requests)
TASKS_FILE = "nbflow_tasks.py"
#: a tasks file larger than this is not read by views (only run)
_TASKS_FILE_MAX_BYTES = 4 * 1024 * 1024


class Task:
    """A task of a pipeline (of any kind); ``a >> b`` makes ``a`` an upstream of ``b``."""

    def __init__(self, pipeline: Pipeline, spec: TaskSpec) -> None:
        self.pipeline = pipeline
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def path(self) -> Path:
        return self.spec.path

    @property
    def upstream(self) -> tuple[str, ...]:
        """Declared upstreams and those added in code."""
        return self.pipeline.dag.upstreams[self.name]

    def set_upstream(self, *others: TaskRefs) -> None:
        for other in _flatten(others):
            self.pipeline.add_edge(other, self)

    def set_downstream(self, *others: TaskRefs) -> None:
        for other in _flatten(others):
            self.pipeline.add_edge(self, other)

    def __rshift__(self, other: TaskRefs) -> TaskRefs:
        self.set_downstream(other)
        return other

    def __lshift__(self, other: TaskRefs) -> TaskRefs:
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: TaskRefs) -> Task:  # [a, b] >> c
        self.set_upstream(other)
        return self

    def __rlshift__(self, other: TaskRefs) -> Task:  # [a, b] << c
        self.set_downstream(other)
        return self

    def __repr__(self) -> str:
        return f"<Task {self.name}>"


def _flatten(items: Iterable[Any]) -> list[Task]:
    out: list[Task] = []
    for item in items:
        if isinstance(item, Task):
            out.append(item)
        elif isinstance(item, (list, tuple, set)):
            out.extend(_flatten(item))
        else:
            raise TypeError(f"expected a Task or a list of Tasks, got {type(item).__name__}")
    return out


def read_declarations(source: str) -> CodeDeclarations:
    """What the source of a ``nbflow_tasks.py`` declares, read with ``ast`` (never run) by
    every kind declared in code (:func:`nbflow.kinds.code_kinds`)."""
    return code_reading.read_declarations(source, [kind.reader() for kind in code_kinds().values()])


def _read_tasks_file(hook: Path, within: Path | None) -> CodeDeclarations:
    """What ``nbflow_tasks.py`` declares, read as text (never run)."""
    if within is not None and not is_inside(hook, within):
        return CodeDeclarations(
            unread=[f"{TASKS_FILE} is a symbolic link leading outside {within}; it is not read here"]
        )
    try:
        if hook.stat().st_size > _TASKS_FILE_MAX_BYTES:
            return CodeDeclarations(unread=[f"{TASKS_FILE} is too large to read without running it"])
        source = hook.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        return CodeDeclarations(unread=[f"{TASKS_FILE} cannot be read ({e.strerror})"])
    return read_declarations(source)


def _placeholder(root: Path, task: DeclaredTask) -> TaskSpec:
    """The spec of a task read from ``nbflow_tasks.py``: no target, no code hash (nothing of
    it has run); its upstreams become edges one by one (see ``Pipeline._declare_edges``)."""
    return code_kind(task.kind).declare(root / TASKS_FILE, task.name, product=task.product, defaults=task.defaults)


def _products(spec: TaskSpec) -> tuple[Path, ...]:
    """The paths of a task's declared products (its files)."""
    return product_paths(resolve_product(spec))


class _Node(NamedTuple):
    """A task as the graph is built from it: its name and the upstreams it is checked with."""

    name: str
    upstream: tuple[str, ...]


class Pipeline:
    """A validated DAG of tasks (notebooks, SQL files, tasks defined in code) rooted at a folder.

    Parameters
    ----------
    root
        The pipeline folder (state and executed notebooks go in its ``_nbflow/``).
    specs
        The task files; their declared upstreams must name tasks of this pipeline, of any kind.
    code
        What the folder's ``nbflow_tasks.py`` declares, read without running it: its tasks
        are listed (in :attr:`not_loaded`) until :meth:`load_code` runs the file, which a
        run does first. They are listed before the graph is validated, so a file's upstream
        may name one. While the reading is not complete, an upstream naming no task listed
        is left out of the graph (noted in :attr:`code_unread`): only running the file tells.

    Raises
    ------
    PipelineValidationError
        Duplicate names, unknown upstreams or a cycle, all listed.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        specs: Iterable[TaskSpec],
        problems: Sequence[NbflowError] = (),
        *,
        code: CodeDeclarations | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        found: list[NbflowError] = list(problems)
        self.specs: dict[str, TaskSpec] = {}
        for spec in specs:
            if spec.name in self.specs:
                found.append(DuplicateTaskError(spec.name, [self.specs[spec.name].relpath, spec.relpath]))
            else:
                self.specs[spec.name] = spec
        found.extend(self._check_products())
        #: the folder's nbflow_tasks.py while it has not been run (None once loaded, or without one)
        self.tasks_file: Path | None = self.root / TASKS_FILE if code is not None else None
        #: tasks listed from reading nbflow_tasks.py, not loaded: their code has not run
        self.not_loaded: set[str] = set()
        #: what reading nbflow_tasks.py could not tell without running it
        self.code_unread: list[str] = list(code.unread) if code is not None else []
        #: whether tasks may still appear that are not listed (nbflow_tasks.py was not read
        #: whole, or is running): meanwhile an upstream naming no task is left out of the graph
        self._open = code is not None and not code.complete
        self.settings = self._load_settings(found, code)
        self._extra_edges: list[tuple[str, str]] = []
        self._declared_edges: list[tuple[str, str]] = []  # read from nbflow_tasks.py, not loaded
        if code is not None:  # every task is listed before any upstream is checked
            self._list_code_tasks(code)
        self.dag: DAG = self._build(found)
        self.tasks = {name: Task(self, spec) for name, spec in self.specs.items()}
        if code is not None:
            self._declare_edges(code)

    def _build(self, problems: Sequence[NbflowError] = ()) -> DAG:
        """The graph of every task, whatever its kind: declared upstreams and edges added in
        code, validated together (with earlier ``problems``).

        Raises
        ------
        PipelineValidationError
            Every unknown upstream and a cycle, with ``problems``.
        """
        nodes = [_Node(s.name, self._checked_upstream(s)) for s in self.specs.values()]
        files = {n: s.relpath for n, s in self.specs.items() if kind_of(s.kind).suffixes}
        return build_dag(nodes, self._edges(), problems=problems, paths=files)

    def _checked_upstream(self, spec: TaskSpec) -> tuple[str, ...]:
        """``spec``'s upstreams the graph checks: all of them, but while tasks may still appear
        (see :attr:`_open`) only those that name a task."""
        if not self._open:
            return spec.upstream
        return tuple(up for up in spec.upstream if up in self.specs)

    def _load_settings(self, problems: list[NbflowError], code: CodeDeclarations | None) -> dict[str, TaskSettings]:
        """Each task's settings: the project's, then the notebook's own (problems are gathered)."""

        try:
            self.project = load_project(self.root)
        except InvalidSettingsError as e:
            problems.append(e)
            self.project = ProjectSettings()
        settings: dict[str, TaskSettings] = {}
        for name, spec in self.specs.items():
            try:
                settings[name] = self.project.for_task(name, spec.settings, spec.relpath)
            except InvalidSettingsError as e:
                problems.append(e)
        unknown = self._unknown_project_tasks(code)
        if unknown:
            problems.append(
                InvalidSettingsError(str(self.project.source), f"tasks.{unknown[0]}", "names no task of this pipeline")
            )
        return settings

    def _unknown_project_tasks(self, code: CodeDeclarations | None = None) -> list[str]:
        """``[tasks.x]`` tables naming no task (unknowable while code that was not read may define x)."""
        if code is not None and not code.complete:
            return []
        declared = {t.name for t in code.tasks} if code is not None else set()
        return sorted(set(self.project.tasks) - set(self.specs) - declared)

    def _notifiers(self, store: RunStore) -> list[Any]:
        """The alert sender for the project's channels, if it has any."""
        from nbflow.engine.alerts import Notifier, channels_for

        channels = channels_for(self.project)
        if not channels:
            return []
        return [Notifier(channels, self.settings, self.project.defaults.alert_on, store)]

    @contextlib.contextmanager
    def _product_probe(self) -> Iterator[Callable[[TaskSpec], Sequence[ProductCheck]]]:
        """What a plan asks of each task's products (``exists()``): its files, and its objects
        and tables through one probe (one client per system, closed after the plan)."""
        if not any(product_targets(resolve_product(spec)) for spec in self.specs.values()):
            yield _products
            return
        from nbflow.systems.targets import RemoteProduct, TargetProbe

        with TargetProbe(self.project.connections, os.environ) as probe:
            yield lambda spec: [
                *_products(spec),
                *(RemoteProduct(uri, probe) for uri in product_targets(resolve_product(spec))),
            ]

    def _check_products(self) -> list[NbflowError]:
        """Products may be anywhere but in nbflow's own folder."""
        return [problem for spec in self.specs.values() for problem in self._product_problems(spec)]

    def _product_problems(self, spec: TaskSpec) -> list[NbflowError]:
        return product_problems(self.root, spec) + target_problems(spec)

    @classmethod
    def from_dir(
        cls,
        path: str | os.PathLike[str] = ".",
        *,
        load_code: bool = False,
        save_cache: bool = True,
        within: Path | None = None,
    ) -> Pipeline:
        """Discover and validate every notebook below ``path``.

        The folder's ``nbflow_tasks.py`` is user code: it is read (with ``ast``), not run,
        unless ``load_code``; its tasks are listed in :attr:`not_loaded` meanwhile. A run
        (:meth:`run`, :meth:`resume`, :meth:`plan`) loads it first. ``save_cache=False``
        writes nothing into the folder (views); ``within`` (a server's root) leaves out
        notebooks reached through symlinks leading outside it, as problems.

        Raises
        ------
        PipelineNotFoundError
            ``path`` is not a folder.
        PipelineValidationError
            Every malformed notebook and bad declaration, at once (with ``load_code``: also
            an error raised by ``nbflow_tasks.py``).
        """
        found = discover(path, save_cache=save_cache, within=within)
        hook = found.root / TASKS_FILE
        if not found.specs and not found.problems and not hook.is_file():
            nouns = [f"no {noun}" for noun in file_nouns()]
            listed = " and ".join([", ".join(nouns[:-1]), nouns[-1]] if len(nouns) > 2 else nouns)
            raise PipelineNotFoundError(str(path), f"holds {listed or 'no task files'}")
        code = _read_tasks_file(hook, within) if hook.is_file() else None
        pipeline = cls(found.root, found.specs, found.problems, code=code)
        if load_code:
            pipeline.load_code()
        return pipeline

    @property
    def code_note(self) -> str | None:
        """What a view says of the tasks defined in code while they are not loaded (None once they are)."""
        if self.tasks_file is None:
            return None
        text = f"{TASKS_FILE} defines tasks in code; nbflow has not run it (it runs when the pipeline runs)."
        if self.not_loaded:
            names = sorted(self.not_loaded)
            text += f" Listed from reading it, not loaded: {', '.join(names)}."
        if self.code_unread:
            more = len(self.code_unread) - 3
            text += " Not read without running it: " + "; ".join(self.code_unread[:3])
            text += f"; and {more} more." if more > 0 else "."
        return text

    @property
    def code_loaded(self) -> bool:
        """Whether every task is loaded: the folder has no ``nbflow_tasks.py``, or it has run."""
        return self.tasks_file is None

    def load_code(self) -> None:
        """Run the folder's ``nbflow_tasks.py`` (once): its ``setup(pipeline)`` adds the tasks
        defined in code, replacing those listed from reading it. A run calls this first.

        Raises
        ------
        PipelineValidationError
            The file raised, has no ``setup``, or defines an invalid task; or, with its tasks
            added, an upstream (of a task of any kind) names no task, or the graph has a
            cycle. The pipeline is left as it was.
        """
        hook = self.tasks_file
        if hook is None:
            return
        saved = (
            dict(self.specs),
            dict(self.settings),
            dict(self.tasks),
            self.dag,
            list(self._extra_edges),
            list(self._declared_edges),
            set(self.not_loaded),
            self._open,
        )
        try:
            self._load_tasks_file(hook)
        except BaseException:
            (
                self.specs,
                self.settings,
                self.tasks,
                self.dag,
                self._extra_edges,
                self._declared_edges,
                self.not_loaded,
                self._open,
            ) = saved
            self.tasks_file = hook
            raise

    def _load_tasks_file(self, hook: Path) -> None:
        """Run the folder's ``nbflow_tasks.py``: its ``setup(pipeline)`` adds tasks defined in code."""

        for name in self.not_loaded:  # what was read is replaced by what the code adds
            del self.specs[name], self.settings[name], self.tasks[name]
        stashed = [e for e in self._extra_edges if not self.not_loaded.isdisjoint(e)]
        self._extra_edges = [e for e in self._extra_edges if e not in stashed]
        self._declared_edges, self.not_loaded, self.tasks_file = [], set(), None
        self._open = True  # while setup runs, a file's upstream may name a task it has yet to add
        self.dag = self._build()
        try:
            namespace = runpy.run_path(str(hook), run_name="nbflow_tasks")
            setup = namespace.get("setup")
            if not callable(setup):
                raise MalformedNotebookError(TASKS_FILE, "it defines no setup(pipeline) function", what="tasks file")
            setup(self)
            for up, down in stashed:  # edges added (in code) to tasks listed before loading
                self.add_edge(up, down)
        except NbflowError:
            raise
        except Exception as e:  # the user's code: name the file and the error
            raise PipelineValidationError(
                [MalformedNotebookError(TASKS_FILE, f"it raised {type(e).__name__}: {e}", what="tasks file")]
            ) from e
        self._open = False
        self.dag = self._build()  # every task is known now: each upstream must name one
        unknown = self._unknown_project_tasks()
        if unknown:
            raise PipelineValidationError(
                [
                    InvalidSettingsError(
                        str(self.project.source), f"tasks.{unknown[0]}", "names no task of this pipeline"
                    )
                ]
            )

    # -- tasks read from nbflow_tasks.py, not loaded ------------------------------------------
    #
    # What cannot be listed (a duplicate name, an unknown upstream, a cycle) is noted, never
    # raised: only running the file can tell for sure (a task inside an `if` is read as if
    # always there).

    def _list_code_tasks(self, code: CodeDeclarations) -> None:
        """List the tasks read from ``nbflow_tasks.py``, before the graph is built: a task
        file's upstream may name one. Their own upstreams come later (:meth:`_declare_edges`)."""
        for task in code.tasks:
            problem = self._add_placeholder(_placeholder(self.root, task))
            if problem:
                self.code_unread.append(f"line {task.line}: {task.name}: {problem}")
                self._open = True  # the file may define a task of this name after all

    def _add_placeholder(self, spec: TaskSpec) -> str | None:
        if spec.name.casefold() in {n.casefold() for n in self.specs}:
            return "another task has this name"
        try:
            settings = self.project.for_task(spec.name, {}, spec.relpath)
        except NbflowError as e:
            return str(e)
        problems = self._product_problems(spec)
        if problems:
            return str(problems[0])
        self.specs[spec.name], self.settings[spec.name] = spec, settings
        self.not_loaded.add(spec.name)
        return None

    def _declare_edges(self, code: CodeDeclarations) -> None:
        """Add the edges ``nbflow_tasks.py`` declares (its tasks' upstreams, ``a >> b``) to
        the graph of every listed task, one by one; note those that cannot be added.
        While the reading is not complete, note the upstreams of task files left out."""
        for task in code.tasks:
            if task.name not in self.not_loaded:
                continue
            for up in task.upstream:
                if up not in self.specs:
                    self.code_unread.append(f"line {task.line}: {task.name}'s upstream {up!r} is not a task")
                else:
                    self._add_declared_edge(up, task.name)
        for up, down in code.edges:
            if up in self.specs and down in self.specs:
                self._add_declared_edge(up, down)
            else:
                self.code_unread.append(f"the edge {up} -> {down} names a task that is not listed")
        for spec in self.specs.values():
            for up in spec.upstream:
                if up not in self.specs:
                    self.code_unread.append(
                        f"{spec.relpath} declares upstream {up!r}, which is no task listed; {TASKS_FILE} may define it"
                    )

    def _add_declared_edge(self, up: str, down: str) -> None:
        if up in self.dag.upstreams[down]:
            return
        candidate = {n: list(u) for n, u in self.dag.upstreams.items()}
        candidate[down].append(up)
        cycle = find_cycle(candidate)
        if cycle:
            self.code_unread.append(f"the edge {up} -> {down} would close the cycle {' -> '.join(cycle)}")
            return
        self._declared_edges.append((up, down))
        self.dag = self._build()

    def _edges(self) -> list[tuple[str, str]]:
        return [*self._declared_edges, *self._extra_edges]

    # -- tasks defined in code ------------------------------------------------------------

    def task(
        self,
        func: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        upstream: Sequence[str] = (),
        product: Product = None,
        **settings: Any,
    ) -> Any:
        """Make a Python function a task (``@pipeline.task(upstream=["clean"], product="out.json")``).

        The function is called with ``upstream`` and ``product`` (resolved like a notebook's)
        if its signature names them, and with its parameters: the arguments that have a
        default, overridable with ``-p``/``params``. ``settings`` are task settings
        (``retries``, ``timeout``, ``trigger_rule``, ``alert_on``, ...). It runs in its own
        process, in the pipeline folder.
        """

        def register(f: Callable[..., Any]) -> Callable[..., Any]:
            self.add_task("python", name or f.__name__, func=f, upstream=upstream, product=product, **settings)
            return f

        return register(func) if func is not None else register

    def http_task(
        self,
        name: str,
        url: str,
        *,
        method: str = "GET",
        expect_status: int = 200,
        headers: Mapping[str, str] | None = None,
        upstream: Sequence[str] = (),
        product: str | None = None,
        params: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> Task:
        """An HTTP request as a task: ``method url`` must answer ``expect_status``; the response
        body is saved to ``product``. ``params`` (overridable with ``-p``) go in the query string
        of a GET/DELETE/HEAD, or in the JSON body with the upstreams' products otherwise."""
        request = {"url": url, "method": method, "expect_status": expect_status, "headers": headers, "params": params}
        return self.add_task("http", name, upstream=upstream, product=product, **request, **settings)

    def mongo_task(
        self,
        name: str,
        *,
        connection: str,
        collection: str,
        product: str,
        database: str | None = None,
        filter: Mapping[str, Any] | None = None,
        projection: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        params: Mapping[str, Any] | None = None,
        upstream: Sequence[str] = (),
        **settings: Any,
    ) -> Task:
        """A MongoDB extract as a task: the documents of ``collection`` matching ``filter``
        (with ``projection``), read from the connection ``connection`` (its URI's database, or
        ``database``) ``batch_size`` at a time (default 1000), written to the ``.parquet``
        ``product`` (a path or ``s3://bucket/key.parquet``). ``params`` (overridable with ``-p``)
        replace the filter values that are exactly ``"$param:NAME"`` (as given) or
        ``"$date:NAME"`` (read as an ISO date or time, UTC unless it says)."""
        extract = {
            "connection": connection,
            "collection": collection,
            "database": database,
            "filter": filter,
            "projection": projection,
            "batch_size": batch_size,
            "params": params,
        }
        return self.add_task("mongo", name, upstream=upstream, product=product, **extract, **settings)

    def add_task(
        self,
        kind: str,
        name: str,
        /,
        *,
        upstream: Sequence[str] = (),
        product: Product = None,
        **declaration: Any,
    ) -> Task:
        """Add the task ``name`` of ``kind``, any kind declared in code (``python``, ``http``, or
        one registered in :data:`nbflow.kinds.KINDS`): ``pipeline.add_task("http", "rates",
        url=..., product="rates.json", retries=2)``.

        ``declaration`` holds the kind's own arguments (its ``arguments``: ``func`` for
        ``python``; ``url``, ``method``, ``params``, ... for ``http``) and task settings
        (``retries``, ``timeout``, ...). :meth:`task` and :meth:`http_task` are this for their
        kinds. In ``nbflow_tasks.py``, a call with a literal kind, name, ``upstream`` and
        ``product`` is listed by views without running the file.

        Raises
        ------
        UnknownKindError
            No kind declared in code is named ``kind``.
        TypeError
            An argument the kind needs is missing, or of the wrong type.
        PipelineValidationError
            A duplicate name, bad settings, an argument's value the kind refuses, an unknown
            upstream or a cycle; nothing is added.
        """
        code = code_kind(kind)
        arguments = {k: v for k, v in declaration.items() if k in code.arguments}
        settings = {k: v for k, v in declaration.items() if k not in code.arguments}
        spec = code.declare_task(
            self.root / TASKS_FILE, name, arguments, upstream=upstream, product=product, settings=settings
        )
        return self._add_code_task(spec)

    def _add_code_task(self, spec: TaskSpec) -> Task:
        """Add a task declared in code (its file is the folder's ``nbflow_tasks.py``, where it runs).

        Raises
        ------
        PipelineValidationError
            A duplicate name, bad settings, an unknown upstream or a cycle; nothing is added.
        """
        name = spec.name
        if name.casefold() in {n.casefold() for n in self.specs}:
            raise PipelineValidationError(
                [DuplicateTaskError(name, [self.specs[name].relpath if name in self.specs else name, spec.relpath])]
            )
        self.specs[name] = spec
        try:
            task_settings = self.project.for_task(name, spec.settings, spec.relpath)
            dag = self._build(self._product_problems(spec))
        except NbflowError as e:
            del self.specs[name]  # nothing else was changed yet
            raise e if isinstance(e, PipelineValidationError) else PipelineValidationError([e]) from None
        self.dag, self.settings[name] = dag, task_settings
        self.tasks[name] = Task(self, spec)
        return self.tasks[name]

    def __getitem__(self, name: str) -> Task:
        try:
            return self.tasks[name]
        except KeyError:
            raise UnknownTaskError(name, list(self.tasks)) from None

    def __iter__(self):
        return (self.tasks[name] for name in self.dag.order)

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        return f"<Pipeline {self.root} ({len(self)} tasks)>"

    def add_edge(self, upstream: Task | str, downstream: Task | str) -> None:
        """Make ``upstream`` an upstream of ``downstream``, as if declared.

        Raises
        ------
        UnknownTaskError
            Either is not a task of this pipeline.
        CycleError
            The edge would close a loop (the edge is not added).
        """
        up = upstream.name if isinstance(upstream, Task) else upstream
        down = downstream.name if isinstance(downstream, Task) else downstream
        for task in (upstream, downstream):
            if isinstance(task, Task) and task.pipeline is not self:
                raise UnknownTaskError(task.name, list(self.tasks), what="task in this pipeline")
        for name in (up, down):
            if name not in self.specs:
                raise UnknownTaskError(name, list(self.specs))
        if up in self.dag.upstreams[down]:
            return
        candidate = {n: list(u) for n, u in self.dag.upstreams.items()}
        candidate[down].append(up)
        cycle = find_cycle(candidate)
        if cycle:
            raise CycleError(cycle)
        self._extra_edges.append((up, down))
        self.dag = self._build()

    def validate_params(self, params: Mapping[str, Any] | None) -> Overrides:
        """Parse and check overrides (``{"name": v, "task.name": v}``) against the notebooks."""
        overrides = Overrides.from_mapping(params)
        validate_overrides(overrides, self.specs, secrets=self.project.secrets)
        return overrides

    def validate_secrets(self, names: Iterable[str]) -> None:
        """Every secret a (named) task declares must be set in the environment.

        Raises
        ------
        PipelineValidationError
            Naming each missing environment variable and who needs it.
        """
        names = list(names)
        check_secrets(self.specs, names, self.project.secrets)
        check_connections(self.specs, names, self.project.connections)

    def validate_kernels(self, names: Iterable[str] | None = None) -> None:
        """Check that every (named) task's kernel is installed.

        Raises
        ------
        PipelineValidationError
            Listing each notebook whose kernel is missing.
        """
        check_kernels(self.specs, names if names is not None else self.specs)

    @property
    def state_path(self) -> Path:
        """The DuckDB file holding this pipeline's runs."""
        return StateDir(self.root).store

    def widget(self, *, poll_interval: float = 0.2) -> Any:
        """The live dashboard of this pipeline (an ipywidget; display it, or end a cell with it).

        See :func:`nbflow.show`, which also reads the notebooks again before each run.
        """
        from nbflow.widgets import Dashboard

        return Dashboard(self, poll_interval=poll_interval)

    def open_store(self) -> RunStore:
        """The pipeline's state store (the DuckDB file in ``_nbflow/``)."""
        from nbflow.store.duckdb import DuckDBRunStore

        return DuckDBRunStore(self.state_path)

    def _session(self, store: RunStore | None = None, executor: Executor | None = None) -> RunSession:
        """What a run (or a plan) holds: the store and executor given, or its own, and the run lock."""
        return RunSession(
            self.root,
            store_path=self.state_path,
            lock_path=StateDir(self.root).lock,
            store=store,
            executor=executor,
            make_executor=self.make_executor,
            executor_kind=self.project.executor,
        )

    def resume(
        self,
        run_id: str | None = None,
        workers: int | None = None,
        *,
        store: RunStore | None = None,
        executor: Executor | None = None,
        listeners: Sequence[RunListener] = (),
        stop: threading.Event | None = None,
    ) -> RunResult:
        """Run again what did not succeed in an earlier run (the latest by default), with its parameters.

        A task is reused (recorded ``up_to_date``) when it succeeded in that run, its notebook's
        code is unchanged, its declared products still exist, and every upstream is reused too.
        The folder's ``nbflow_tasks.py`` is loaded first (see :meth:`load_code`).

        Raises
        ------
        RunNotFoundError
            No such run.
        RunStillRunningError
            The run is still going on.
        """
        self.load_code()
        with self._session(store, executor) as session:
            earlier, earlier_tasks = load_run(session.store, run_id)
            if earlier.state == states.RUNNING:
                raise RunStillRunningError(earlier.run_id, earlier.pid)
            dag = self.dag.subset(earlier.selected) if earlier.selected else self.dag
            hashes = source_hashes(session.store, earlier)
            with self._product_probe() as products:
                decisions = resume_plan(dag, self.specs, earlier.run_id, earlier_tasks, hashes, products)
            options = RunOptions(
                self.validate_params(earlier.params),
                workers,
                earlier.selected,
                reuse=reused(decisions),
                reasons={n: d.reason for n, d in decisions.items()},
                resumed_from=earlier.run_id,
                logical_date=earlier.logical_date,
                listeners=listeners,
                stop=stop,
            )
            return self._run(session, options)

    def run(
        self,
        params: Mapping[str, Any] | None = None,
        workers: int | None = None,
        only: Sequence[str] | None = None,
        force: bool = False,
        *,
        store: RunStore | None = None,
        executor: Executor | None = None,
        listeners: Sequence[RunListener] = (),
        logical_date: str | None = None,
        force_tasks: Sequence[str] = (),
        warm_kernels: int | None = None,
        stop: threading.Event | None = None,
        kernel_start: str | None = None,
    ) -> RunResult:
        """Run the pipeline (or the ``only`` tasks and what they need) and wait for it.

        Tasks that are up to date (see :meth:`plan`) are not run again: they are recorded
        ``up_to_date``, with the reason. The folder's ``nbflow_tasks.py`` is loaded first
        (see :meth:`load_code`).

        Parameters
        ----------
        params
            Overrides: ``{"name": value}`` for every notebook that declares ``name``,
            ``{"task.name": value}`` for one task.
        workers
            Tasks that run at once (default: the CPU count).
        only
            Run these tasks and their upstreams.
        force
            Run every selected task, up to date or not.
        force_tasks
            Run these tasks (and so what depends on them) even if up to date.
        logical_date
            The schedule's date this run is for (recorded; passed as ``logical_date`` to the
            notebooks that declare it).
        warm_kernels
            Kernels started ahead of time for the tasks expected next (default: the
            project's ``warm_kernels``, 2); 0 starts each kernel when its task starts.
        kernel_start
            ``"fork"``: notebook kernels are forked from a template process that imported
            ipykernel (and the project's ``preload`` modules) once; ``"fresh"``: each
            starts a new interpreter (default: the project's ``kernel_start``, ``"fork"``).
        stop
            Set it (from any thread) to stop the run as Ctrl-C does: running kernels are
            killed, the run is recorded ``interrupted``. For runs in a background thread.

        Raises
        ------
        PipelineValidationError
            A bad override; nothing runs.
        """
        self.load_code()
        params = with_logical_date(params, logical_date, self.specs.values())
        with self._session(store, executor) as session:
            decisions = self.plan(params, only, force, force_tasks, store=session.store)
            options = RunOptions(
                self.validate_params(params),
                workers,
                only,
                reuse=reused(decisions),
                reasons={n: d.reason for n, d in decisions.items()},
                logical_date=logical_date,
                warm_kernels=warm_kernels,
                kernel_start=kernel_start,
                listeners=listeners,
                stop=stop,
            )
            return self._run(session, options)

    def plan(
        self,
        params: Mapping[str, Any] | None = None,
        only: Sequence[str] | None = None,
        force: bool = False,
        force_tasks: Sequence[str] = (),
        *,
        store: RunStore | None = None,
    ) -> dict[str, Any]:
        """What a run would do: for each task, whether it runs and why (``nbflow run --dry-run``).

        Like a run, it loads the folder's ``nbflow_tasks.py`` first (its tasks' code is part
        of their fingerprints).

        Raises
        ------
        PipelineValidationError
            A bad override; UnknownTaskError: an unknown ``force_tasks`` name.
        """
        self.load_code()
        for name in force_tasks:
            if name not in self.specs:
                raise UnknownTaskError(name, list(self.specs), context="--force-task")
        overrides = self.validate_params(params)
        dag = self.dag.subset(only) if only else self.dag
        with self._session(store) as session:
            last = session.store.last_successes()
        prints = fingerprints(dag, self.specs, overrides)
        with self._product_probe() as products:
            return make_plan(dag, self.specs, prints, overrides, last, products, force=force, force_tasks=force_tasks)

    def make_executor(
        self,
        kind: str | None = None,
        *,
        workers: int | None = None,
        warm_kernels: int | None = None,
        scheduler: str | None = None,
        worker_root: str | None = None,
        kernel_start: str | None = None,
    ) -> Executor:
        """The executor for a run: ``kind`` (``local`` or ``dask``; default: the project's
        ``executor``), with the project's ``[dask]`` settings where these are not given.
        The caller closes it. A Dask cluster is reached (or started) on first use.
        Notebook kernels start as ``kernel_start`` says (default: the project's)."""
        from nbflow.execution.base import KernelStart
        from nbflow.executors.local import LocalExecutor

        start = KernelStart(kernel_start or self.project.kernel_start, self.project.preload)
        kind = kind or self.project.executor
        if kind == "dask":
            from nbflow.executors.dask import DaskExecutor

            return DaskExecutor(
                scheduler or self.project.dask.scheduler,
                workers=workers,
                worker_root=worker_root or self.project.dask.worker_root,
                kernel_start=start,
            )
        if kind != "local":
            raise UnknownExecutorError(kind)
        if warm_kernels is None:
            warm_kernels = self.project.warm_kernels
        return LocalExecutor(workers=workers, warm_kernels=warm_kernels, kernel_start=start)

    def _start_kernel_template_early(self, session: RunSession, options: RunOptions, to_run: list[str]) -> bool:
        """If this run forks kernels in this process, start loading their template while the
        run is checked and set up: the first notebook's kernel is forked sooner. Whether it did."""
        from nbflow.execution.base import KernelStart
        from nbflow.executors.local import LocalExecutor

        given = session.given_executor
        if given is None:
            local = session.executor_kind == "local"
            start = KernelStart(options.kernel_start or self.project.kernel_start, self.project.preload)
        else:
            local = isinstance(given, LocalExecutor)
            start = given.kernel_start if isinstance(given, LocalExecutor) else KernelStart("fresh")
        kernels = {self.specs[n].kernel_name for n in to_run if kind_of(self.specs[n].kind).uses_kernel}
        if not (local and start.mode == "fork" and kernels):
            return False
        from nbflow.execution.fork import start_early

        start_early(kernels, start.preload)
        return True

    def _run(self, session: RunSession, options: RunOptions) -> RunResult:
        """Check what the run needs (kernels, secrets), then run it in ``session``."""
        dag = self.dag.subset(options.selected) if options.selected else self.dag
        to_run = [n for n in dag.order if n not in options.reuse]
        early = bool(to_run) and self._start_kernel_template_early(session, options, to_run)
        try:
            if to_run:  # an up-to-date pipeline needs no kernel (nor the machinery to find one)
                self.validate_kernels(to_run)
            self.validate_secrets(to_run)
            listeners = [*options.listeners, *self._notifiers(session.store)]
            return session.run(
                dag,
                self.specs,
                self.settings,
                self.project.secrets,
                replace(options, listeners=listeners),
                connections=self.project.connections,
            )
        finally:
            if early:
                from nbflow.execution.fork import drop_early

                drop_early()
