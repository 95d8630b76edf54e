"""Run one notebook attempt through papermill, in a fresh kernel.

papermill parameterizes the notebook (its injected-parameters cell), executes it with
nbclient and writes the executed notebook cell by cell. nbflow plugs in as a papermill
engine (``nbflow``) so that the kernel comes from nbflow's :class:`KernelLauncher`
(robust parallel starts, shutdown off the critical path; see ``kernels.py``).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nbclient.exceptions import DeadKernelError
from papermill.engines import NBClientEngine, papermill_engines
from papermill.exceptions import PapermillExecutionError

from nbflow import states
from nbflow.execution.base import (
    AttemptControl,
    AttemptOutcome,
    TaskRequest,
    request_redactor,
    secret_values,
    stopped_outcome,
    utcnow,
)
from nbflow.execution.base import kernel_log_path as base_kernel_log_path
from nbflow.execution.kernels import KERNEL_START_TIMEOUT, IPCKernelManager, KernelLauncher, KernelStartError
from nbflow.execution.logs import CappedLog, read_log_tail, strip_ansi
from nbflow.kinds.notebook.client import NbflowNotebookClient
from nbflow.kinds.notebook.spool import OutputSpool, first_error, write_notebook
from nbflow.kinds.python import redact_file
from nbflow.project.secrets import Redactor, injection_lines, kernel_env_name
from nbflow.project.settings import MAX_CELL_OUTPUT

ENGINE_NAME = "nbflow"

log = logging.getLogger("nbflow.execution")


class NbflowEngine(NBClientEngine):
    """papermill's nbclient engine, executing in a kernel nbflow starts and reaps, with
    nbflow's client (``client.py``: each cell's output capped at ``max_cell_output`` as it
    arrives, stream text to ``output_log``)."""

    @classmethod
    def execute_managed_notebook(  # type: ignore[override]
        cls,
        nb_man: Any,
        kernel_name: str,
        log_output: bool = False,
        start_timeout: float = KERNEL_START_TIMEOUT,
        execution_timeout: float | None = None,
        *,
        kernel_cwd: str,
        kernel_log: Path,
        launcher: KernelLauncher,
        on_kernel: Callable[[IPCKernelManager | None], None],
        cancelled: Callable[[], bool],
        secrets: Mapping[str, str] | None = None,
        secret_variables: Mapping[str, str] | None = None,
        redactor: Redactor | None = None,
        spool: OutputSpool | None = None,
        output_log: CappedLog | None = None,
        max_cell_output: int = MAX_CELL_OUTPUT,
        **_: Any,
    ) -> Any:
        if spool is not None:
            _spool_finished_cells(nb_man, spool)
        env = None
        redactor = redactor if redactor is not None else Redactor((secrets or {}).values())
        if redactor:
            _redact_saves(nb_man, redactor)
        if secrets:
            _inject_secrets(nb_man.nb, secrets, secret_variables)
            env = {**os.environ, **{kernel_env_name(k): v for k, v in secrets.items()}}
        km, kc = launcher.start(kernel_name, kernel_cwd, kernel_log, on_kernel, cancelled, env=env)
        client = NbflowNotebookClient(
            nb_man,
            max_cell_output=max_cell_output,
            output_log=output_log,
            redactor=redactor,
            km=km,
            kernel_name=kernel_name,
            timeout=execution_timeout,
            startup_timeout=start_timeout,
            log=log,
        )
        client.kc = kc
        nb_man.client = client
        try:
            return client.execute()
        finally:
            on_kernel(None)
            if client.kc is not None:
                client.kc.stop_channels()
            launcher.shutdown(km)


def _spool_finished_cells(nb_man: Any, spool: OutputSpool) -> None:
    """Write the notebook through the spool, and move each finished cell's outputs into it."""

    def save(**kwargs: Any) -> None:
        write_notebook(nb_man.nb, Path(nb_man.output_path), spool)
        # papermill autosaves a running cell when this is 30 s old: without it, at every message
        nb_man.last_save_time = nb_man.now()

    nb_man.save = save
    complete = nb_man.cell_complete

    def complete_and_stash(cell: Any, cell_index: int | None = None, **kwargs: Any) -> Any:
        result = complete(cell, cell_index=cell_index, **kwargs)
        client = getattr(nb_man, "client", None)
        display_ids = getattr(client, "_display_id_map", {}) if client is not None else {}
        # a cell whose display a later cell may update (display_id) keeps its outputs in memory
        if not any(cell_index in cells for cells in display_ids.values()):
            spool.stash(cell)
        return result

    nb_man.cell_complete = complete_and_stash


def _execute(request: TaskRequest, spool: OutputSpool, **engine_kwargs: Any) -> None:
    """papermill's ``execute_notebook``, with the executed notebook written through ``spool``.

    Load, inject the parameters (papermill's injected-parameters cell), execute with the
    ``nbflow`` engine, and on a cell error mark the notebook as papermill does and raise
    :class:`PapermillExecutionError`.
    """
    import nbformat
    from papermill.execute import (
        ERROR_ANCHOR_MSG,
        ERROR_MARKER_TAG,
        ERROR_MESSAGE_TEMPLATE,
        prepare_notebook_metadata,
        remove_error_markers,
    )
    from papermill.parameterize import parameterize_notebook

    from nbflow.kinds.notebook.load import load_notebook

    input_path, output_path = str(request.source), str(request.output_notebook)
    nb = load_notebook(input_path)  # an .ipynb, or a Jupytext text notebook
    if request.parameters:
        nb = parameterize_notebook(
            nb, request.parameters, False, kernel_name=request.kernel_name, engine_name=ENGINE_NAME
        )
    nb = prepare_notebook_metadata(nb, input_path, output_path, False)
    nb = remove_error_markers(nb)
    nb = papermill_engines.execute_notebook_with_engine(
        ENGINE_NAME,
        nb,
        input_path=input_path,
        output_path=output_path,
        kernel_name=request.kernel_name,
        progress_bar=False,
        log_output=False,
        spool=spool,
        **engine_kwargs,
    )
    error = first_error(nb, spool)
    if error is not None:
        message = nbformat.v4.new_markdown_cell(ERROR_MESSAGE_TEMPLATE % str(error.exec_count))
        anchor = nbformat.v4.new_markdown_cell(ERROR_ANCHOR_MSG)
        for cell in (message, anchor):
            cell.metadata["tags"] = [ERROR_MARKER_TAG]
        nb.cells.insert(error.cell_index, anchor)
        nb.cells.insert(0, message)
    write_notebook(nb, request.output_notebook, spool)
    if error is not None:
        raise error


def _inject_secrets(nb: Any, secrets: Mapping[str, str], variables: Mapping[str, str] | None = None) -> None:
    """Add the lines that read the secrets to the injected-parameters cell (made if missing)."""
    import nbformat

    language = nb.metadata.get("kernelspec", {}).get("language") or nb.metadata.get("language_info", {}).get("name")
    lines = "\n".join(injection_lines(secrets, variables, language=language or "python"))
    cells = nb.cells
    for cell in cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.source = cell.source.rstrip("\n") + "\n" + lines
            return
    cell = nbformat.v4.new_code_cell(f"# Parameters\n{lines}")
    cell.metadata["tags"] = ["injected-parameters"]
    cell.metadata["papermill"] = {}
    after = next((i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])), -1)
    cells.insert(after + 1, cell)


#: executed notebooks larger than this are not signed: signing holds the whole notebook in memory
SIGN_LIMIT = 8 * 2**20


#: one notary per worker thread: making one opens its signature database (and reads the
#: secret) each time, and its SQLite connection belongs to the thread that made it
_notaries = threading.local()


def sign_notebook(path: Path) -> None:
    """Sign the executed notebook with the user's Jupyter notary, as running it in JupyterLab
    would: nbflow ran it, so its HTML, JavaScript and widget outputs are shown when opened.
    Best effort: a notary that cannot write leaves the notebook untrusted, the attempt as it was."""
    import nbformat
    from nbformat.sign import NotebookNotary

    try:
        if path.stat().st_size > SIGN_LIMIT:  # signing reads the whole notebook into memory
            return
        nb = nbformat.read(path, as_version=4)
        notary = getattr(_notaries, "notary", None)
        if notary is None:
            notary = _notaries.notary = NotebookNotary()
        notary.sign(nb)
    except Exception as e:  # noqa: BLE001 - a notary that cannot write (a locked or read-only database) costs trust only
        logging.getLogger("nbflow").warning("nbflow: warning: could not sign %s (%s: %s)", path, type(e).__name__, e)


def _redact_file(path: Path, redactor: Redactor) -> None:
    """A last pass over the executed notebook as saved: every output, data and metadata (atomically)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    redactor.notebook(nb)
    write_notebook(nb, path)


def _each(*steps: Callable[[], object]) -> OSError | None:
    """Run every step, even after one fails with an OSError (a full disk); the first such error."""
    first = None
    for step in steps:
        try:
            step()
        except OSError as e:
            first = first or e
    return first


def _redact_saves(nb_man: Any, redactor: Redactor) -> None:
    """Redact the notebook's outputs each time papermill writes it (this notebook manager only)."""
    save = nb_man.save

    def redacting_save(**kwargs: Any) -> Any:
        redactor.notebook(nb_man.nb, merge_streams=False)
        return save(**kwargs)

    nb_man.save = redacting_save


_registered = threading.Lock()


def register_engine() -> None:
    """Make the ``nbflow`` engine known to papermill (idempotent)."""
    with _registered:
        if ENGINE_NAME not in papermill_engines._engines:
            papermill_engines.register(ENGINE_NAME, NbflowEngine)
    # papermill warns about parameters the parameters cell does not list (``upstream`` on
    # a root, say): nbflow validates parameters itself, so keep those out of users' output;
    # nbclient's own messages (a killed kernel, ...) end up in the attempt's recorded error
    logging.getLogger("papermill").setLevel(logging.ERROR)
    if not log.handlers:
        log.addHandler(logging.NullHandler())
        log.propagate = False
    try:
        from nbformat.warnings import MissingIDFieldWarning

        warnings.filterwarnings("ignore", category=MissingIDFieldWarning)
    except ImportError:
        pass


def run_notebook(
    request: TaskRequest, launcher: KernelLauncher, control: AttemptControl | None = None
) -> AttemptOutcome:
    """Run one attempt; never raises for anything the notebook or its kernel does.

    ``control`` lets another thread stop the attempt (a cancel, a timeout): its kernel is
    killed and the outcome says why.
    """
    register_engine()
    control = control or AttemptControl()
    started = utcnow()
    request.output_notebook.parent.mkdir(parents=True, exist_ok=True)
    secrets = secret_values(request)
    redactor = request_redactor(request)
    output_log = CappedLog(request.log_path, redact=redactor.text if redactor else None, holdback=redactor.longest)
    kernel_log_path = base_kernel_log_path(request)
    spool = OutputSpool(request.output_notebook.with_name(f".{request.output_notebook.name}.spool"))
    error = traceback = ename = None
    state = states.SUCCESS

    def on_kernel(km: IPCKernelManager | None) -> None:
        control.attach(None if km is None else lambda: km.signal_group(signal.SIGKILL))

    try:
        kernel_log_path.unlink(missing_ok=True)
        _execute(
            request,
            spool,
            output_log=output_log,
            max_cell_output=request.max_cell_output,
            start_timeout=KERNEL_START_TIMEOUT,
            execution_timeout=request.cell_timeout,
            kernel_cwd=str(request.cwd),
            kernel_log=kernel_log_path,
            launcher=launcher,
            on_kernel=on_kernel,
            cancelled=lambda: control.stopped,
            secrets=secrets,
            secret_variables=request.secrets,
            redactor=redactor,
        )
    except PapermillExecutionError as e:
        state, ename = states.FAILED, e.ename
        error = f"{e.ename}: {e.evalue}" + (f" (In [{e.exec_count}])" if e.exec_count else "")
        traceback = strip_ansi("\n".join(e.traceback))
    except DeadKernelError as e:
        state, ename = states.FAILED, "KernelDied"
        error = f"KernelDied: the kernel stopped while running the notebook ({e}); see {kernel_log_path}"
    except KernelStartError as e:
        state, ename = states.FAILED, "KernelStartError"
        error = f"KernelStartError: {e}; see {kernel_log_path}"
    except Exception as e:  # anything else ends this attempt, never the run
        import traceback as tb

        state, ename = states.FAILED, type(e).__name__
        error = f"{type(e).__name__}: {e}"
        traceback = "".join(tb.format_exception(e))
    finally:
        problem = _each(spool.close, output_log.close)
        if redactor and request.output_notebook.exists():
            masked_notebook = _each(lambda: _redact_file(request.output_notebook, redactor))  # always, first
            problem = problem or masked_notebook
        if problem is None and request.output_notebook.exists():  # trusted: its rich outputs render when opened
            sign_notebook(request.output_notebook)
        if redactor and kernel_log_path.exists():
            # the kernel's own output: what the notebook wrote to its file descriptors directly
            masked = _each(lambda: redact_file(kernel_log_path, redactor))
            if masked is not None:  # one that could not be masked is not kept
                _each(lambda: kernel_log_path.unlink(missing_ok=True))
            problem = problem or masked
        try:
            log_tail = read_log_tail(request.log_path)
        except OSError:
            log_tail = ""
    if problem is not None and state == states.SUCCESS:  # a full disk, say: the attempt's files are not whole
        state, ename = states.FAILED, type(problem).__name__
        error = f"{ename}: {problem}"
    state, error, ename = stopped_outcome(control, request, state, error, ename, "its kernel was stopped")
    return AttemptOutcome(
        state=state,
        started_at=started,
        ended_at=utcnow(),
        error=redactor.text(error) if error and redactor else error,
        traceback=redactor.text(traceback) if traceback and redactor else traceback,
        log=log_tail,
        ename=ename,
    )
