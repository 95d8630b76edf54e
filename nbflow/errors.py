"""nbflow's exceptions: one root, structured subclasses, messages a user can act on.

Every error a user can cause (a bad notebook, a bad declaration, a bad command) is an
:class:`NbflowError`; the CLI prints its message and exits with code 2. A task that fails
while running is not an exception of this module: it is a recorded state.
"""

from __future__ import annotations

from collections.abc import Sequence


def _rebuild(cls: type[NbflowError], state: dict) -> NbflowError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, err._message())
    return err


class NbflowError(Exception):
    """Root of every error nbflow raises on purpose."""

    #: the CLI's exit code for this error: 2 means "the pipeline or the command is invalid"
    exit_code = 2

    def _message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self):  # structured errors cross process boundaries (executors)
        return (_rebuild, (self.__class__, dict(self.__dict__)))


class ValidationProblem(NbflowError):
    """One problem found while validating a pipeline; several are gathered into
    a :class:`PipelineValidationError`."""

    #: the file the problem is in, relative to the pipeline folder when known
    path: str | None = None


class MalformedNotebookError(ValidationProblem):
    """A task file (a notebook, a SQL file, ``nbflow_tasks.py``) that cannot be read, or a
    declaration in it that is not valid.

    ``what`` is what the file is meant to be ("notebook", "SQL task": its kind's noun), set
    by whoever knows: the discovery of the file, or the raiser. Unset, "task file".
    """

    def __init__(self, path: str, reason: str, *, what: str | None = None) -> None:
        self.path = path
        self.reason = reason
        self.what = what
        super().__init__(self._message())

    def _message(self) -> str:
        return f"{self.path} is not a valid {getattr(self, 'what', None) or 'task file'}: {self.reason}"


class InvalidDeclarationError(MalformedNotebookError):
    """An ``upstream`` or ``product`` declaration that is not a literal of the right shape."""

    def __init__(self, path: str, reason: str, cell: int | None = None) -> None:
        self.cell = cell
        super().__init__(path, reason)

    def _message(self) -> str:
        where = self.path if self.cell is None else f"{self.path}, cell {self.cell}"
        return f"{where}: {self.reason}"


class UnknownUpstreamError(ValidationProblem):
    """A task declares an upstream that is not a task of the pipeline."""

    def __init__(self, notebook: str, upstream: str, known: Sequence[str], path: str | None = None) -> None:
        self.notebook = notebook
        self.upstream = upstream
        self.known = sorted(known)
        self.path = path
        super().__init__(self._message())

    def _message(self) -> str:
        import difflib

        where = self.path or self.notebook
        msg = f"{where} declares upstream {self.upstream!r}, which is not a task of this pipeline."
        close = difflib.get_close_matches(self.upstream, self.known, n=1, cutoff=0.6)
        if close:
            msg += f" Did you mean {close[0]!r}?"
        shown = ", ".join(self.known[:20]) + (", ..." if len(self.known) > 20 else "")
        return msg + f" Known tasks: {shown or '(none)'}."


class CycleError(ValidationProblem):
    """The upstream declarations form a loop; ``cycle`` lists it in order, first name repeated last."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"Cycle in upstreams: {' -> '.join(self.cycle)}. "
            "Remove one of these upstream declarations to break the loop."
        )


class DuplicateTaskError(ValidationProblem):
    """Two tasks resolve to one name."""

    def __init__(self, name: str, sources: Sequence[str]) -> None:
        self.name = name
        self.sources = list(sources)
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"Two tasks are named {self.name!r} ({' and '.join(self.sources)}). "
            "Task names must be unique (ignoring case); rename one of the notebooks."
        )


class OutsideFolderError(ValidationProblem):
    """A notebook or folder reached through a symbolic link that leads outside the folder
    nbflow may read here (a Jupyter server's root)."""

    def __init__(self, path: str, folder: str) -> None:
        self.path = path
        self.folder = folder
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"{self.path} is a symbolic link leading outside {self.folder}, the folder this server serves; "
            "it is not read here. Run the pipeline from a terminal, or serve a folder that holds its target."
        )


class MissingDependencyError(ValidationProblem):
    """A task file nbflow reads only with an optional dependency that is not installed."""

    def __init__(self, path: str, what: str, package: str, extra: str) -> None:
        self.path = path
        self.what = what
        self.package = package
        self.extra = extra
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"{self.path} is {self.what}, and reading it needs {self.package}, which is not installed: "
            f'pip install "nbflow[{self.extra}]"'
        )


class UnknownTaskError(NbflowError):
    """A task name given on the command line or in code that the pipeline does not have."""

    def __init__(self, name: str, known: Sequence[str], what: str = "task", context: str | None = None) -> None:
        self.name = name
        self.known = sorted(known)
        self.what = what
        self.context = context
        super().__init__(self._message())

    def _message(self) -> str:
        import difflib

        msg = f"No {self.what} named {self.name!r} in this pipeline."
        if self.context:
            msg = f"{self.context}: no {self.what} named {self.name!r} in this pipeline."
        close = difflib.get_close_matches(self.name, self.known, n=1, cutoff=0.6)
        if close:
            msg += f" Did you mean {close[0]!r}?"
        shown = ", ".join(self.known[:20]) + (", ..." if len(self.known) > 20 else "")
        return msg + f" Known: {shown or '(none)'}."


class ParameterError(ValidationProblem):
    """A parameter override that no notebook declares, or that is malformed."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(self._message())

    def _message(self) -> str:
        return self.message


class UnknownKernelError(ValidationProblem):
    """A notebook asks for a kernel that is not installed."""

    def __init__(self, path: str, kernel: str, installed: Sequence[str]) -> None:
        self.path = path
        self.kernel = kernel
        self.installed = sorted(installed)
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"{self.path} asks for the kernel {self.kernel!r}, which is not installed here "
            f"(installed: {', '.join(self.installed) or 'none'}). Install it, or choose another kernel "
            "for the notebook in JupyterLab (Kernel > Change Kernel)."
        )


class InvalidSettingsError(ValidationProblem):
    """A setting (retries, timeout, alerts, ...) that is not valid, named with its file."""

    def __init__(self, path: str, key: str, reason: str) -> None:
        self.path = path
        self.key = key
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        return f"{self.path}: setting {self.key!r} {self.reason}" if self.key else f"{self.path} {self.reason}"


class PipelineValidationError(NbflowError):
    """Every problem found while validating a pipeline, reported at once."""

    def __init__(self, problems: Sequence[NbflowError]) -> None:
        self.problems = sorted(problems, key=str)
        super().__init__(self._message())

    def _message(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        lines = [f"{len(self.problems)} problems found:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class PipelineNotFoundError(NbflowError):
    """The pipeline folder does not exist or holds no notebooks."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        return f"{self.path}: {self.reason}"


class RunNotFoundError(NbflowError):
    """A run id (or 'the latest run') that the state store does not hold."""

    def __init__(self, store: str, run_id: str | None) -> None:
        self.store = store
        self.run_id = run_id
        super().__init__(self._message())

    def _message(self) -> str:
        if self.run_id is None:
            return f"No runs recorded in {self.store} yet. Start one with `nbflow run`."
        return f"No run {self.run_id!r} in {self.store}. `nbflow history` lists the recorded runs."


class StoreError(NbflowError):
    """The state store file cannot be opened or written (not a DuckDB file, no permission, ...)."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"The state store {self.path} cannot be used ({self.detail}). If it is damaged, move it aside: "
            "nbflow starts a new one (the executed notebooks in _nbflow/runs stay where they are)."
        )


class DiskFullError(StoreError):
    """The disk holding the state store is full: nothing more of the run can be recorded."""

    exit_code = 1  # the run failed; the pipeline itself is valid

    def _message(self) -> str:
        return (
            f"The disk holding {self.path} is full ({self.detail}). The run was stopped and its kernels with it; "
            "what was recorded is kept. Free some space, then `nbflow resume` runs what did not finish."
        )


class StoreLockedError(NbflowError):
    """The state store stayed locked by another process for longer than the wait allowed."""

    def __init__(self, path: str, waited_s: float, detail: str) -> None:
        self.path = path
        self.waited_s = waited_s
        self.detail = detail
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"The state store {self.path} stayed locked by another process for {self.waited_s:g}s "
            f"({self.detail}). Try again when that process has finished."
        )


class PipelineBusyError(NbflowError):
    """Another process is running this pipeline."""

    def __init__(self, path: str, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"Another nbflow run is running the pipeline in {self.path} ({self.holder}). Wait for it to finish "
            "(`nbflow status` shows its progress) or stop it, then run again."
        )


class StateFolderError(NbflowError):
    """nbflow cannot write its own folder in the pipeline."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"nbflow cannot write its folder {self.path} ({self.reason}); a run records its state and executed "
            "notebooks there. Run a writable copy of the pipeline, or fix the folder's permissions."
        )


class NoScheduleError(NbflowError):
    """A command that runs a pipeline on its schedule (``scheduler``, ``backfill``) was given
    a pipeline whose settings have no ``schedule``."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(self._message())

    def _message(self) -> str:
        return f'{self.path} has no schedule: set schedule = "@daily" (or a cron line) in its nbflow.toml.'


class ExecutorOptionError(NbflowError):
    """Command-line options for where tasks execute that do not go together
    (``--scheduler`` with ``--executor local``, ``--worker-root`` without Dask)."""

    def __init__(self, option: str, conflicting: str | None = None) -> None:
        self.option = option
        self.conflicting = conflicting
        super().__init__(self._message())

    def _message(self) -> str:
        if self.conflicting:
            return f"{self.option} is for the Dask executor; it cannot be used with {self.conflicting}"
        return f"{self.option} is for the Dask executor: add --executor dask"


class KernelStartError(NbflowError):
    """A notebook's kernel did not start (twice in a row), or the run was stopped first.

    Raised and recorded inside a task's attempt (the task fails, the run goes on); it only
    reaches a user as the task's error.
    """

    exit_code = 1  # a task failed; the pipeline itself is valid

    def __init__(self, kernel: str, failures: Sequence[str] = (), stopped: bool = False) -> None:
        self.kernel = kernel
        self.failures = list(failures)
        self.stopped = stopped
        super().__init__(self._message())

    def _message(self) -> str:
        if self.stopped:
            return "the run was stopped before the kernel started"
        return f"the kernel {self.kernel!r} did not start: {'; then '.join(self.failures)}"


class KernelTemplateError(NbflowError):
    """The kernel template (``kernel_start = "fork"``) cannot be used.

    With ``refused`` (a ``preload`` module cannot be forked safely, or not imported) the
    project's settings are invalid and nothing runs (exit 2); otherwise the kernel that
    wanted it is started fresh instead.
    """

    def __init__(self, message: str, refused: bool = False) -> None:
        self.message = message
        self.refused = refused
        super().__init__(message)

    def _message(self) -> str:
        return self.message


class ExportError(NbflowError):
    """The pipeline cannot be written for another orchestrator (``nbflow export``) as asked."""


class AirflowIdClashError(ExportError):
    """Two task names that give the same Airflow task id."""

    def __init__(self, first: str, second: str, airflow_id: str) -> None:
        self.first = first
        self.second = second
        self.airflow_id = airflow_id
        super().__init__(self._message())

    def _message(self) -> str:
        return f"tasks {self.first!r} and {self.second!r} would both be Airflow task {self.airflow_id!r}; rename one"


class InvalidDagIdError(ExportError):
    """A DAG id that Airflow does not accept."""

    def __init__(self, dag_id: str) -> None:
        self.dag_id = dag_id
        super().__init__(self._message())

    def _message(self) -> str:
        return f"{self.dag_id!r} is not a valid Airflow dag id (letters, digits, '_', '.', '-')"


class AirflowTaskFailedError(NbflowError, RuntimeError):
    """A task of the pipeline, run by Airflow, failed. Airflow retries it as it would any
    exception; ``ename`` and ``error`` are nbflow's, for the task's ``retry_rules``.

    Raised inside Airflow only (a RuntimeError too, as it always was there).
    """

    exit_code = 1  # a task failed; the pipeline itself is valid

    def __init__(self, task: str, error: str, ename: str | None, traceback: str | None, notebook: str) -> None:
        self.task = task
        self.error = error
        self.ename = ename
        self.traceback = traceback
        self.notebook = notebook
        super().__init__(self._message())

    def _message(self) -> str:
        message = f"task {self.task} failed: {self.error}\nExecuted notebook: {self.notebook}"
        if self.traceback:
            message += "\n" + self.traceback.rstrip()
        return message


class StoreSchemaError(StoreError):
    """The state store file holds tables of another schema than this nbflow's: written by a
    newer nbflow, or by a development build from before the first release."""

    def __init__(self, path: str, found: str | None, expected: int, detail: str = "") -> None:
        self.found = found
        self.expected = expected
        super().__init__(path, detail)

    def _message(self) -> str:
        newer = self.found is not None and self.found.isdigit() and int(self.found) > self.expected
        what = f"schema {self.found}" if self.found is not None else "no schema version"
        if self.detail:
            what += f"; {self.detail}"
        aside = (
            f"move it aside (mv {self.path} {self.path}.old): nbflow starts a new one, the executed notebooks "
            "in _nbflow/runs stay where they are, and the old file still opens in any DuckDB client."
        )
        if newer:
            return (
                f"The state store {self.path} was written by a newer nbflow, or by a development build from before "
                f"the first release ({what}; this nbflow reads schema {self.expected}). Upgrade nbflow to use it, "
                f"or {aside}"
            )
        return (
            f"The state store {self.path} was written by a development build of nbflow from before the first "
            f"release ({what}; this nbflow reads schema {self.expected}). To go on, {aside}"
        )


class StoreReadOnlyError(NbflowError, RuntimeError):
    """A write to a state store opened read-only (a view's): views never write.

    A RuntimeError too, as it always was: a program error, not a user's.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(self._message())

    def _message(self) -> str:
        return f"the state store {self.path} was opened read-only (to be shown): nothing is written to it"


class StoreClosedError(NbflowError, RuntimeError):
    """A write to a state store after it was closed (a RuntimeError too, as it always was)."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(self._message())

    def _message(self) -> str:
        return f"the state store {self.path} is closed: nothing more is written to it"


class PathOutsideRootError(NbflowError):
    """A path from the browser that leads outside the folder the Jupyter server serves."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(self._message())

    def _message(self) -> str:
        return f"{self.path!r} is outside the folder this server serves."


class NotAPipelineFolderError(NbflowError):
    """A path from the browser that is not an existing folder."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(self._message())

    def _message(self) -> str:
        return f"{self.path!r} is not a folder on this server."


class NotATaskError(NbflowError):
    """A file that is not a task of the pipeline it was looked up in."""

    def __init__(self, path: str, folder: str, reason: str = "") -> None:
        self.path = path
        self.folder = folder
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"{self.path} is not a task of the pipeline in {self.folder}{why}."


class NoFailedAttemptError(NbflowError):
    """``nbflow debug`` on a task with no failed attempt (in the run asked for) to reproduce."""

    def __init__(self, task: str, run_id: str | None = None, reason: str = "") -> None:
        self.task = task
        self.run_id = run_id
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"in run {self.run_id}" if self.run_id else "in any recorded run"
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.task!r} has no failed attempt {where} to debug{why}."


class RunNotGoingOnError(NbflowError):
    """A stop asked for a run that is not going on (it has finished, or runs elsewhere)."""


class InvalidRequestError(NbflowError):
    """A request of the lab panel with an argument nbflow cannot use."""


class ChildRunFailedError(NbflowError):
    """The ``nbflow run`` process a request started ended before its run was recorded.

    Exit code 2 means the request or the pipeline is invalid (a bad parameter, a validation
    problem: :attr:`invalid`); any other code, that the process crashed.
    """

    def __init__(self, returncode: int, output: str) -> None:
        self.returncode = returncode
        self.output = output
        super().__init__(self._message())

    @property
    def invalid(self) -> bool:
        return self.returncode == 2

    def _message(self) -> str:
        text = self.output.strip()
        text = text.removeprefix("nbflow: error: ") if self.invalid else text[-2000:]
        return text or f"nbflow run exited with code {self.returncode} before the run started."


class UnknownKindError(NbflowError):
    """A task of a kind nbflow does not know (its spec names no kind of :data:`nbflow.kinds.KINDS`)."""

    def __init__(self, kind: str, known: Sequence[str]) -> None:
        self.kind = kind
        self.known = sorted(known)
        super().__init__(self._message())

    def _message(self) -> str:
        return f"No task kind named {self.kind!r}; nbflow knows {', '.join(self.known)}."


class ExecutorUnavailableError(NbflowError):
    """The executor cannot run this pipeline: no cluster, or workers that cannot see its files."""


class RunStillRunningError(NbflowError):
    """A run that cannot be resumed: its process is still running it."""

    def __init__(self, run_id: str, pid: int) -> None:
        self.run_id = run_id
        self.pid = pid
        super().__init__(self._message())

    def _message(self) -> str:
        return f"Run {self.run_id} is still running (process {self.pid}); wait for it or stop it first."


class UnknownExecutorError(NbflowError):
    """An executor nbflow does not know (``--executor``, or ``executor`` in ``nbflow.toml``)."""

    def __init__(self, kind: str, known: Sequence[str] = ("local", "dask")) -> None:
        self.kind = kind
        self.known = list(known)
        super().__init__(self._message())

    def _message(self) -> str:
        return f"unknown executor {self.kind!r}: " + " or ".join(f'"{k}"' for k in self.known)


class WorkerCountError(ValidationProblem):
    """A run asked to run fewer than one task at once (``--workers 0``)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        super().__init__(self._message())

    def _message(self) -> str:
        return f"workers must be at least 1 (got {self.workers})."


class UnknownConnectionError(ValidationProblem):
    """A task names a connection that neither the project settings nor the environment define."""

    def __init__(self, name: str, known: Sequence[str], used_by: str | None = None) -> None:
        self.name = name
        self.known = sorted(known)
        self.used_by = used_by
        self.path = used_by
        super().__init__(self._message())

    def _message(self) -> str:
        who = (
            f"{self.used_by} uses the connection {self.name!r}, which"
            if self.used_by
            else f"the connection {self.name!r}"
        )
        return (
            f"{who} is not defined. Known connections: "
            f"{', '.join(self.known) or '(none)'}. Define it in nbflow.toml ([connections] {self.name} = "
            f'"ENV_VAR") or set AIRFLOW_CONN_{self.name.upper()}.'
        )


class ConnectionVariableError(ValidationProblem):
    """A connection's environment variable is not set, or does not hold a URI nbflow can use.
    The message names the variable, never its value."""

    def __init__(self, name: str, variable: str, reason: str) -> None:
        self.name = name
        self.variable = variable
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"the connection {self.name!r} reads its URI from the environment variable {self.variable}, {self.reason}"
        )


class ClientUnavailableError(NbflowError):
    """A connection's client library is not installed, or the engine asked for does not exist."""
