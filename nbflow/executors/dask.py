"""The Dask executor: each attempt runs on a worker of a ``distributed`` cluster.

The runner (this process) still decides what runs and when, applies nbflow's retry rules
and is the only writer of the state store; a worker only runs one attempt and returns its
:class:`AttemptOutcome`. So:

* every attempt is its own Dask task with a unique key and ``pure=False`` (Dask would
  merge identical "pure" calls) and ``retries=0`` (nbflow retries, with its delays and rules);
* a worker lost mid-attempt is a failed attempt (``WorkerLost``), which nbflow's rules may
  retry: with the cluster nbflow starts, the scheduler is told not to resubmit it
  (``allowed-failures: 0``); on any other scheduler, an attempt that starts a second time
  finds the marker its first start left and fails at once instead of running again;
* a cancel sets a Dask ``Event`` for the run, which a thread beside each attempt on the
  worker watches: it kills the attempt's kernel (or process, or query) there;
* timeouts are kept on the worker, next to the kernel they kill.

Files: by default workers read the notebooks and write executed notebooks, logs and products
at the paths the runner gives, so they must see the pipeline folder, at the same path or at
``worker_root`` (a shared filesystem: NFS, a cluster's home folders, ...). :meth:`check`
asks every worker before anything runs. With ``shared_folder=False`` (``[dask]
shared_folder = false``) they need no folder of the runner's: each task's source goes with it,
it runs in a temporary folder on the worker, and its executed notebook and log come back
in the result (:mod:`nbflow.executors.shipping`); its products must then be URIs or absolute
paths on shared storage, which :meth:`check` makes sure of before anything runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from nbflow import states
from nbflow.errors import ExecutorUnavailableError
from nbflow.execution.base import (
    AttemptControl,
    AttemptOutcome,
    Executor,
    KernelNeed,
    KernelStart,
    StopReason,
    TaskRequest,
    utcnow,
)
from nbflow.executors.attempt import run_attempt
from nbflow.executors.shipping import (
    AttemptFiles,
    ShippedOutcome,
    ShippedTask,
    pack,
    pipeline_local_products,
    request_local_products,
    run_shipped,
    write_back,
)
from nbflow.kinds import KINDS, kind_of

log = logging.getLogger("nbflow.execution")

#: the ``ename`` of an attempt whose worker died under it (retry rules may name it)
WORKER_LOST = "WorkerLost"


# -- paths ---------------------------------------------------------------------------------


class PathMap:
    """Maps the pipeline folder's paths here to where the workers see that folder."""

    def __init__(self, local_root: Path, worker_root: str | os.PathLike[str] | None) -> None:
        self.local_root = Path(local_root).resolve()
        self.worker_root = Path(worker_root) if worker_root is not None else self.local_root

    def path(self, p: Path) -> Path:
        try:
            return self.worker_root / Path(p).resolve().relative_to(self.local_root)
        except ValueError:  # outside the pipeline folder: the same path everywhere
            return Path(p)

    def _value(self, v: Any) -> Any:
        if isinstance(v, str) and os.path.isabs(v):
            return str(self.path(Path(v)))
        if isinstance(v, Mapping):
            return {k: self._value(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(self._value(x) for x in v)
        return v

    def request(self, request: TaskRequest) -> TaskRequest:
        """``request`` with every path the worker uses (the injected ``upstream`` and
        ``product`` values too) moved under the worker's root."""
        if self.worker_root == self.local_root:
            return request
        params = dict(request.parameters)
        for name in ("upstream", "product"):
            if name in params:
                params[name] = self._value(params[name])
        return replace(
            request,
            source=self.path(request.source),
            cwd=self.path(request.cwd),
            output_notebook=self.path(request.output_notebook),
            log_path=self.path(request.log_path),
            products=tuple(self.path(p) for p in request.products),
            parameters=params,
        )


# -- on the worker ---------------------------------------------------------------------------

_launcher_lock = threading.Lock()
_launchers: dict[Any, Any] = {}


def _worker_launcher(nthreads: int, start: KernelStart | None = None) -> Any:
    """One kernel launcher per worker process and way of starting kernels (forked from the
    worker's own template, or fresh); it keeps a kernel warm per worker thread."""
    start = start or KernelStart()
    with _launcher_lock:  # one thread imports: concurrent first imports of jupyter_client break
        if start not in _launchers:
            for kind in KINDS.values():  # what kernel attempts need (papermill, ...), loaded once
                if kind.uses_kernel:
                    kind.preload()
            from nbflow.execution.kernels import KernelLauncher

            _launchers[start] = KernelLauncher(max_concurrent_starts=max(2, nthreads), warm=nthreads, start=start)
        return _launchers[start]


async def _prepare_on_worker(start: KernelStart, dask_worker: Any) -> None:
    """Run on every worker as the executor starts: load what kernel attempts need
    (:meth:`~nbflow.kinds.base.TaskKind.preload`: papermill, nbclient, jupyter_client for
    notebooks) off the worker's event loop."""
    import asyncio

    await asyncio.get_running_loop().run_in_executor(None, _worker_launcher, dask_worker.state.nthreads, start)


async def _anticipate_on_worker(needs: list[KernelNeed], start: KernelStart, dask_worker: Any) -> None:
    """Run on every worker: start (or drop) kernels for the tasks the runner expects next."""
    import asyncio

    launcher = _worker_launcher(dask_worker.state.nthreads, start)
    await asyncio.get_running_loop().run_in_executor(None, launcher.anticipate, needs)


def _lost_outcome(where: str, started: datetime | None = None) -> AttemptOutcome:
    return AttemptOutcome.failed(
        WORKER_LOST, f"the Dask worker running this attempt ({where}) died before it finished", started
    )


def attempt_on_worker(
    task: TaskRequest | ShippedTask, key: str, cancel_event: str, start: KernelStart | None = None
) -> AttemptOutcome | ShippedOutcome:
    """Run one attempt on this Dask worker; never raises for what the task does.

    A :class:`ShippedTask` (workers that share no folder with the runner) runs in a
    temporary folder here and returns a :class:`ShippedOutcome` (its files with it).
    Marks the attempt as started (a Dask ``Event``): if the scheduler starts this key
    again after its worker died, the attempt is reported failed instead of run twice.
    """
    from distributed import Event, get_client, get_worker

    worker = get_worker()
    client = get_client()
    started = Event(f"{key}-started", client=client)
    if started.is_set():
        lost = _lost_outcome("a worker before this one")
        return ShippedOutcome(lost, AttemptFiles()) if isinstance(task, ShippedTask) else lost
    started.set()

    control = AttemptControl()
    cancel = Event(cancel_event, client=client)
    if cancel.is_set():
        control.stop(StopReason.INTERRUPTED)
    done = threading.Event()

    def watch_cancel() -> None:
        while not done.is_set():
            try:
                if cancel.wait(timeout=0.5):
                    control.stop(StopReason.INTERRUPTED)
                    return
            except Exception:  # the scheduler is unreachable: keep running, try again
                done.wait(0.5)

    def run(request: TaskRequest) -> AttemptOutcome:
        if kind_of(request.kind).starts_process and multiprocessing.current_process().daemon:
            return AttemptOutcome.failed(
                "DaemonWorker",
                f"the Dask worker {worker.address} runs as a daemon process, which may not start the process a "
                f"{request.kind} task runs in; start the workers with DASK_DISTRIBUTED__WORKER__DAEMON=False",
            )
        outcome = run_attempt(request, _worker_launcher(worker.state.nthreads, start), control)
        outcome.extra["worker"] = worker.address
        return outcome

    watcher = threading.Thread(target=watch_cancel, name=f"nbflow-cancel-{key}", daemon=True)
    watcher.start()
    try:
        if isinstance(task, ShippedTask):
            return run_shipped(task, run)
        if not task.cwd.is_dir():
            return AttemptOutcome.failed(
                "SharedFilesystemError", f"the worker {worker.address} cannot see the folder {task.cwd}"
            )
        return run(task)
    finally:
        done.set()


def _temp_writable() -> bool:
    """Whether this worker can make the temporary folders shipped attempts run in."""
    import tempfile

    try:
        with tempfile.TemporaryDirectory(prefix="nbflow-check-"):
            return True
    except OSError:
        return False


def _visible(path: str) -> bool:
    return os.path.isdir(path)


# -- in the runner's process -------------------------------------------------------------------


class DaskExecutor(Executor):
    """Runs each attempt on a Dask worker.

    Parameters
    ----------
    scheduler
        The address of a running Dask scheduler (``tcp://host:8786``). None: start a
        ``LocalCluster`` of worker processes on this machine, bound to 127.0.0.1, for the
        executor's lifetime.
    workers
        With no ``scheduler``: the local cluster's worker processes (default: the CPU
        count), one task at a time each.
    worker_root
        Where workers see the pipeline folder, when not at the same path as here.
    shared_folder
        Whether the workers see the pipeline folder (here or at ``worker_root``). False: each
        task's source is sent with it, it runs in a temporary folder on its worker, its
        executed notebook and log come back with its outcome, and its products must be URIs
        or absolute paths outside the folder. None: the project's ``[dask] shared_folder``
        (read by :meth:`check`), true when ``worker_root`` is given.
    client
        An existing ``distributed.Client`` to use instead (it is not closed).
    connect_timeout
        Seconds to wait for the ``scheduler`` to answer.
    """

    def __init__(
        self,
        scheduler: str | None = None,
        *,
        workers: int | None = None,
        worker_root: str | os.PathLike[str] | None = None,
        client: Any = None,
        connect_timeout: float = 10.0,
        shared_folder: bool | None = None,
        kernel_start: KernelStart | None = None,
    ) -> None:
        if shared_folder is False and worker_root is not None:
            raise ExecutorUnavailableError(
                f"worker_root ({worker_root}) is where the Dask workers see a shared pipeline folder; "
                "it cannot go with shared_folder=False: leave out one of them"
            )
        try:
            import distributed  # noqa: F401
        except ImportError as e:
            raise ExecutorUnavailableError(
                "the Dask executor needs the `distributed` package: pip install 'nbflow[dask]'"
            ) from e
        self._scheduler, self._n_workers, self._connect_timeout = scheduler, workers, connect_timeout
        self._kernel_start = kernel_start or KernelStart()
        self._cluster: Any = None
        self._client = client
        self._own_client = client is None
        self._worker_root = worker_root
        self._shared = True if worker_root is not None else shared_folder
        self._paths: PathMap | None = None
        self._warming = False
        self._lock = threading.Lock()
        self._connecting = threading.Lock()
        self._futures: dict[str, Any] = {}
        self._events: dict[str, Any] = {}
        #: the attempts' "started" markers, cleared on the scheduler at close
        self._markers: list[str] = []

    @property
    def client(self) -> Any:
        """The ``distributed.Client``: connected (or its LocalCluster started) on first use,
        so a run with nothing to execute costs no cluster."""
        with self._connecting:
            if self._client is None:
                self._client = self._connect()
                with contextlib.suppress(Exception):  # a head start only
                    self._client.run(_prepare_on_worker, self._kernel_start, wait=False)
            return self._client

    def _connect(self) -> Any:
        import dask
        import distributed

        if self._scheduler is not None:
            try:
                return distributed.Client(self._scheduler, timeout=self._connect_timeout)
            except OSError as e:
                raise ExecutorUnavailableError(f"cannot reach the Dask scheduler at {self._scheduler}: {e}") from e
        from nbflow.executors.local import default_workers

        # Python function tasks run in a child process of the worker, which a daemon
        # process may not have (read by the nannies, also when they restart one)
        dask.config.set({"distributed.worker.daemon": False})
        # a task goes to an idle worker, never queues behind a busy one
        with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
            self._cluster = distributed.LocalCluster(
                n_workers=self._n_workers or default_workers(),
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                # a worker lost mid-attempt comes back as a failed attempt (nbflow's
                # retry rules apply), not resubmitted by the scheduler
                scheduler_kwargs={"allowed_failures": 0},
            )
        try:
            return distributed.Client(self._cluster)
        except BaseException:
            self._cluster.close()
            raise

    @property
    def scheduler_address(self) -> str:
        return str(self.client.scheduler.address)

    @property
    def capacity(self) -> int:
        """Tasks the cluster runs at once: its workers' threads."""
        info = self.client.scheduler_info()
        return max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))

    @property
    def shared_folder(self) -> bool:
        """Whether the workers see the pipeline folder (else tasks are shipped to them)."""
        return self._shared is not False

    def check(self, root: Path) -> None:
        self._paths = PathMap(root, self._worker_root)
        if self._shared is None:
            from nbflow.project.settings import load_project

            self._shared = load_project(Path(root)).dask.shared_folder
        if not self._shared:
            self._check_shipping(Path(root))
            return
        where = str(self._paths.worker_root)
        seen = self.client.run(_visible, where)
        if not seen:
            raise ExecutorUnavailableError(f"the Dask cluster at {self.scheduler_address} has no workers")
        blind = sorted(addr for addr, ok in seen.items() if not ok)
        if blind:
            raise ExecutorUnavailableError(
                f"Dask workers {', '.join(blind)} cannot see the pipeline folder at {where}. "
                "Workers read the notebooks and write executed notebooks and products there: "
                "share the folder with them (NFS, ...) and, if they see it at another path, "
                "give that path with --worker-root; or, if every product is a URI (s3://, table://), "
                "set shared_folder = false in the project's [dask] settings."
            )

    def _check_shipping(self, root: Path) -> None:
        """Before a run on workers that share no folder: every product must be reachable from a
        worker, and every worker must be able to make a temporary folder."""
        local = pipeline_local_products(root)
        if local:
            listed = "; ".join(f"{name} ({', '.join(values)})" for name, values in local.items())
            raise ExecutorUnavailableError(
                "the Dask workers share no folder with this machine ([dask] shared_folder = false), so a "
                f"task cannot write files in the pipeline folder, but these tasks declare such products: {listed}. "
                "Declare them as URIs (s3://bucket/key, table://connection/schema.table) or absolute paths on "
                "storage the workers share; or share the folder with the workers (shared_folder = true, and "
                "worker_root if they see it at another path)."
            )
        ready = self.client.run(_temp_writable)
        if not ready:
            raise ExecutorUnavailableError(f"the Dask cluster at {self.scheduler_address} has no workers")
        unable = sorted(addr for addr, ok in ready.items() if not ok)
        if unable:
            raise ExecutorUnavailableError(
                f"Dask workers {', '.join(unable)} cannot make a temporary folder to run tasks in: "
                "give them a writable TMPDIR"
            )

    def _event(self, run_id: str) -> str:
        from distributed import Event

        name = f"nbflow-cancel-{run_id}"
        with self._lock:
            if run_id not in self._events:
                self._events[run_id] = Event(name, client=self.client)
        return name

    def _shipped(self, request: TaskRequest) -> ShippedTask | AttemptOutcome:
        """What goes to a worker that shares no folder, or the outcome of an attempt that cannot go."""
        root = self._paths.local_root if self._paths is not None else request.cwd
        local = request_local_products(request, root)
        if local:  # declared in code at run time, so not seen by check()
            return AttemptOutcome.failed(
                "LocalProduct",
                f"the Dask workers share no folder with this machine, so {request.task} cannot write "
                f"{', '.join(map(str, local))}: declare its products as URIs or absolute paths on shared storage",
            )
        try:
            return pack(request)
        except OSError as e:
            return AttemptOutcome.failed(type(e).__name__, f"cannot read {request.source} to send it: {e}")

    def submit(self, request: TaskRequest) -> Future[AttemptOutcome]:
        result: Future[AttemptOutcome] = Future()
        task: TaskRequest | ShippedTask
        if self.shared_folder:
            task = (self._paths or PathMap(request.cwd, None)).request(request)
        else:
            shipped = self._shipped(request)
            if isinstance(shipped, AttemptOutcome):
                result.set_result(shipped)
                return result
            task = shipped
        key = f"nbflow-{request.run_id}-{request.task}-{request.attempt}-{uuid.uuid4().hex[:8]}"
        started = utcnow()
        dask_future = self.client.submit(
            attempt_on_worker,
            task,
            key,
            self._event(request.run_id),
            self._kernel_start,
            key=key,
            pure=False,
            retries=0,
        )
        with self._lock:
            self._futures[key] = dask_future

        def done(f: Any) -> None:
            try:
                outcome = self._returned(f.result(), request)
            except BaseException as e:  # noqa: BLE001 - every way a Dask task can end
                outcome = self._failure(e, started)
            finally:
                with self._lock:
                    self._futures.pop(key, None)
                    self._markers.append(f"{key}-started")
            result.set_result(outcome)

        dask_future.add_done_callback(done)
        return result

    @staticmethod
    def _returned(value: AttemptOutcome | ShippedOutcome, request: TaskRequest) -> AttemptOutcome:
        """The outcome a worker returned; a shipped attempt's files are written into the run folder here."""
        if not isinstance(value, ShippedOutcome):
            return value
        try:
            write_back(request, value.files)
        except OSError as e:  # a full disk, ...: this attempt fails, not the run
            return replace(value.outcome, state=states.FAILED, error=f"{type(e).__name__}: {e}", ename=type(e).__name__)
        return value.outcome

    @staticmethod
    def _failure(e: BaseException, started: datetime) -> AttemptOutcome:
        """The outcome of a Dask task that did not return one (never raises)."""
        import concurrent.futures
        import traceback as tb

        try:
            from distributed.scheduler import KilledWorker

            if isinstance(e, KilledWorker):
                worker = getattr(e, "last_worker", None)
                return _lost_outcome(getattr(worker, "address", None) or "unknown", started)
            if isinstance(e, (concurrent.futures.CancelledError, asyncio.CancelledError)):
                return AttemptOutcome.interrupted("the Dask task was cancelled", started)
            return AttemptOutcome.failed(type(e).__name__, str(e), started, "".join(tb.format_exception(e)))
        except Exception as inner:  # noqa: BLE001 - the runner must get an outcome whatever happens
            return AttemptOutcome.failed("DaskError", f"{type(e).__name__}: {inner}", started)

    def cancel(self, run_id: str) -> None:
        from distributed import Event

        try:
            Event(self._event(run_id), client=self.client).set()
        except Exception as e:  # the scheduler is gone: its workers' attempts end with it
            log.warning("could not tell the Dask workers to stop run %s: %s", run_id, e)

    def close(self) -> None:
        if self._client is None:  # never used: nothing was started
            return
        if self._warming:  # no kernel of this run stays behind on the workers
            with contextlib.suppress(Exception):
                self.client.run(_anticipate_on_worker, [], self._kernel_start)
            self._warming = False
        from distributed import Event

        with self._lock:
            events = list(self._events.values())
            self._events.clear()
            markers, self._markers = self._markers, []
        with contextlib.suppress(Exception):  # nothing of this run stays on a long-lived scheduler
            for event in events:
                event.clear()
            for name in markers:
                Event(name, client=self.client).clear()
        if self._own_client and self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
