"""Run one notebook attempt through papermill, in a fresh kernel started robustly.

papermill parameterizes the notebook (its injected-parameters cell), executes it with
nbclient and writes the executed notebook cell by cell. nbflow plugs in as a papermill
engine (``nbflow``) to start the kernel itself:

* over IPC sockets in a private folder, so parallel starts never race for TCP ports;
* with the kernel process's own stdout/stderr sent to a file, not to the user's terminal;
* a bounded number at once, and once more if a start fails (not counted as an attempt);
* with IPython history in memory, so parallel kernels don't lock one history file.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import papermill
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import DeadKernelError
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.exceptions import PapermillExecutionError

from nbflow import states
from nbflow.execution.base import AttemptOutcome, TaskRequest, utcnow
from nbflow.execution.logs import CappedLog, strip_ansi

ENGINE_NAME = "nbflow"
#: seconds for a kernel to start and answer
KERNEL_START_TIMEOUT = 60.0

log = logging.getLogger("nbflow.execution")


class KernelStartError(RuntimeError):
    """A kernel did not start (twice in a row)."""


class IPCKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel listens on IPC sockets in a private temp folder."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ipc_dir = tempfile.mkdtemp(prefix="nbflow-kernel-")
        if sys.platform != "win32":
            self.transport = "ipc"
            self.ip = os.path.join(self._ipc_dir, "k")
        self.connection_file = os.path.join(self._ipc_dir, "connection.json")

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(self._ipc_dir, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources  # type: ignore[assignment]

    def kill_process_group(self) -> None:
        """Kill the kernel and whatever it started, at once (used to cancel)."""
        process = getattr(self.provisioner, "process", None)
        if process is None or process.poll() is not None:
            return
        try:
            if sys.platform != "win32":
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
        except (ProcessLookupError, PermissionError):
            pass


class NbflowEngine(NBClientEngine):
    """papermill's nbclient engine, with nbflow's kernel start (see the module doc)."""

    @classmethod
    def execute_managed_notebook(  # type: ignore[override]
        cls,
        nb_man: Any,
        kernel_name: str,
        log_output: bool = False,
        stdout_file: Any = None,
        stderr_file: Any = None,
        start_timeout: float = KERNEL_START_TIMEOUT,
        execution_timeout: float | None = None,
        *,
        kernel_cwd: str,
        kernel_log: Any,
        start_slots: threading.Semaphore,
        on_kernel: Callable[[IPCKernelManager | None], None],
        **_: Any,
    ) -> Any:
        client = PapermillNotebookClient(
            nb_man,
            kernel_name=kernel_name,
            kernel_manager_class=IPCKernelManager,
            timeout=execution_timeout,
            startup_timeout=start_timeout,
            log=log,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        cls._start_kernel(client, kernel_cwd, kernel_log, start_slots, on_kernel)
        try:
            return client.execute()
        finally:
            on_kernel(None)

    @staticmethod
    def _start_kernel(
        client: PapermillNotebookClient,
        cwd: str,
        kernel_log: Any,
        start_slots: threading.Semaphore,
        on_kernel: Callable[[IPCKernelManager | None], None],
    ) -> None:
        errors: list[str] = []
        for _try in range(2):
            with start_slots:
                client.km = client.create_kernel_manager()
                try:
                    client.start_new_kernel(cwd=cwd, stdout=kernel_log, stderr=kernel_log)
                    on_kernel(client.km)  # from here on the kernel can be cancelled
                    client.start_new_kernel_client()
                    return
                except Exception as e:  # a failed start: clean up, try once more
                    errors.append(f"{type(e).__name__}: {e}")
                    log.warning("kernel start failed (%s); trying again", errors[-1])
                    try:
                        client._cleanup_kernel()
                    except Exception:  # noqa: S110 - the kernel may never have existed
                        pass
                    client.km = None
                    client.kc = None
        raise KernelStartError(f"the kernel {client.kernel_name!r} did not start: {'; then '.join(errors)}")


_registered = threading.Lock()


def register_engine() -> None:
    """Make the ``nbflow`` engine known to papermill (idempotent)."""
    with _registered:
        if ENGINE_NAME not in papermill_engines._engines:
            papermill_engines.register(ENGINE_NAME, NbflowEngine)
    # papermill warns about parameters the parameters cell does not list (``upstream`` on
    # a root, say): nbflow validates parameters itself, so keep those out of users' output
    logging.getLogger("papermill").setLevel(logging.ERROR)


def _missing_products(request: TaskRequest) -> list[Path]:
    return [p for p in request.products if not p.exists()]


def run_notebook(
    request: TaskRequest,
    start_slots: threading.Semaphore,
    on_kernel: Callable[[IPCKernelManager | None], None],
    cancelled: Callable[[], bool] = lambda: False,
) -> AttemptOutcome:
    """Run one attempt; never raises for anything the notebook or its kernel does."""
    register_engine()
    started = utcnow()
    request.output_notebook.parent.mkdir(parents=True, exist_ok=True)
    for product in request.products:
        product.parent.mkdir(parents=True, exist_ok=True)
    output_log = CappedLog(request.log_path)
    kernel_log_path = request.log_path.with_suffix(".kernel.log")
    error = traceback = None
    state = states.SUCCESS
    try:
        with open(kernel_log_path, "wb") as kernel_log:
            papermill.execute_notebook(
                str(request.notebook),
                str(request.output_notebook),
                parameters=request.parameters,
                engine_name=ENGINE_NAME,
                kernel_name=request.kernel_name,
                progress_bar=False,
                log_output=False,
                stdout_file=output_log,
                stderr_file=output_log,
                start_timeout=KERNEL_START_TIMEOUT,
                execution_timeout=request.cell_timeout,
                kernel_cwd=str(request.cwd),
                kernel_log=kernel_log,
                start_slots=start_slots,
                on_kernel=on_kernel,
            )
        missing = _missing_products(request)
        if missing:
            state = states.FAILED
            error = "MissingProduct: the notebook ran but did not write " + ", ".join(map(str, missing))
    except PapermillExecutionError as e:
        state = states.FAILED
        error = f"{e.ename}: {e.evalue}" + (f" (In [{e.exec_count}])" if e.exec_count else "")
        traceback = strip_ansi("\n".join(e.traceback))
    except DeadKernelError as e:
        state = states.FAILED
        error = f"KernelDied: the kernel stopped while running the notebook ({e}); see {kernel_log_path.name}"
    except KernelStartError as e:
        state = states.FAILED
        error = f"KernelStartError: {e}; see {kernel_log_path.name}"
    except Exception as e:  # anything else ends this attempt, never the run
        import traceback as tb

        state = states.FAILED
        error = f"{type(e).__name__}: {e}"
        traceback = "".join(tb.format_exception(e))
    finally:
        log_tail = output_log.read_tail()
        output_log.close()
    if cancelled() and state != states.SUCCESS:
        state = states.INTERRUPTED
        error = "Interrupted: the run was stopped while this task was running"
    return AttemptOutcome(
        state=state,
        started_at=started,
        ended_at=utcnow(),
        error=error,
        traceback=traceback,
        log=log_tail,
    )
