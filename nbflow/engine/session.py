"""What one run of a pipeline holds while it goes on: its state store, its run lock, its executor.

A :class:`RunSession` is entered before the store is first read (a run plans from it, a
resumed run reads the run it resumes) and left when the run is over. It opens or makes
what it was not given, and closes exactly that, once, on every way out:

    with RunSession(root, store_path=..., lock_path=..., make_executor=...) as session:
        last = session.store.last_successes()
        result = session.run(dag, specs, settings, secrets, RunOptions(overrides))

The session knows nothing of :class:`~nbflow.pipeline.Pipeline`: it is given the folder,
the graph, the specs and settings, where the store and lock are, and how to make an executor.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from nbflow.core.dag import DAG
from nbflow.engine.runlock import RunLock
from nbflow.engine.runner import RunListener, Runner, RunResult, reap_stale_runs
from nbflow.errors import NbflowError, PipelineValidationError, WorkerCountError
from nbflow.execution.base import Executor
from nbflow.project.params import Overrides
from nbflow.project.settings import TaskSettings
from nbflow.project.specs import TaskSpec
from nbflow.store.base import AttemptRecord, RunStore, TaskRecord

logger = logging.getLogger("nbflow")


class ExecutorFactory(Protocol):
    """Makes the executor of a run: ``kind`` ``None`` is the project's own."""

    def __call__(
        self,
        kind: str | None = None,
        *,
        workers: int | None = None,
        warm_kernels: int | None = None,
        kernel_start: str | None = None,
    ) -> Executor: ...


@dataclass(frozen=True)
class RunOptions:
    """What one run is asked to do, once the caller has decided what it reuses."""

    #: the validated parameter overrides
    overrides: Overrides
    #: tasks that run at once (default: the executor's capacity, or the CPU count)
    workers: int | None = None
    #: the tasks asked for (the graph is already cut to them and their upstreams), recorded
    selected: Sequence[str] | None = None
    #: tasks that do not run, each with the earlier success it reuses (see :mod:`~nbflow.engine.incremental`)
    reuse: Mapping[str, AttemptRecord | TaskRecord] = field(default_factory=dict)
    #: why each task runs or not, recorded with it
    reasons: Mapping[str, str] = field(default_factory=dict)
    #: the run this one resumes
    resumed_from: str | None = None
    #: the schedule's date this run is for
    logical_date: str | None = None
    #: kernels started ahead of time by a local executor the session makes (None: the project's)
    warm_kernels: int | None = None
    #: how the session's executor starts kernels: ``fork`` or ``fresh`` (None: the project's)
    kernel_start: str | None = None
    listeners: Sequence[RunListener] = ()
    #: set from any thread, it stops the run as Ctrl-C does
    stop: threading.Event | None = None


def close_quietly(store: RunStore) -> None:
    """Close a store at the end of a run: a problem is a warning, not the run's failure."""
    try:
        store.close()
    except NbflowError as e:
        if e is not store.failure:  # that one stopped the run, and the run reports it
            logger.warning("nbflow: warning: %s", e)


class RunSession:
    """Owns the state store, the run lock and the executor of one run of the pipeline in ``root``.

    Parameters
    ----------
    root
        The pipeline folder.
    store_path
        Its state store, opened on first use of :attr:`store` unless ``store`` is given.
    lock_path
        Its run lock, taken by :meth:`run` and held until the session ends.
    store, executor
        Given ones are used and left open: their owner closes them.
    make_executor
        Makes the executor when none is given: the project's kind before the lock is
        taken (a cluster's capacity bounds the workers), a local one inside it.
    executor_kind
        The project's kind of executor.

    Leaving the session closes, once each and in this order, the executor it made, the
    store it opened (a problem is a warning) and the lock. While an error is on its way
    out, a problem closing the executor is a warning too, so that the error is the one seen.
    """

    def __init__(
        self,
        root: Path,
        *,
        store_path: Path,
        lock_path: Path,
        store: RunStore | None = None,
        executor: Executor | None = None,
        make_executor: ExecutorFactory | None = None,
        executor_kind: str = "local",
    ) -> None:
        self.root = root
        self.store_path = store_path
        self.lock_path = lock_path
        self.executor_kind = executor_kind
        self._store = store
        self._executor = executor
        self._make_executor = make_executor
        self._opened_store: RunStore | None = None
        self._made_executor: Executor | None = None
        self._lock: RunLock | None = None

    @property
    def given_executor(self) -> Executor | None:
        """The executor the caller gave (None: the session makes one, of ``executor_kind``)."""
        return self._executor

    def __enter__(self) -> RunSession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(failing=exc_type is not None)

    def close(self, failing: bool = False) -> None:
        """Close what the session opened (it can be entered again: nothing is left open)."""
        executor, self._made_executor = self._made_executor, None
        store, self._opened_store = self._opened_store, None
        lock, self._lock = self._lock, None
        try:
            if executor is not None:
                if self._executor is executor:
                    self._executor = None
                try:
                    executor.close()
                except Exception as e:
                    if not failing:
                        raise
                    logger.warning("nbflow: warning: the executor did not close: %s: %s", type(e).__name__, e)
        finally:
            try:
                if store is not None:
                    self._store = None
                    close_quietly(store)
            finally:
                if lock is not None:
                    lock.__exit__(None, None, None)

    @property
    def store(self) -> RunStore:
        """The state store: the one given, or the pipeline's own, opened now (once)."""
        if self._store is None:
            from nbflow.store.duckdb import DuckDBRunStore  # the database: only when a store is read

            self._store = self._opened_store = DuckDBRunStore(self.store_path)
        return self._store

    def _made(self, executor: Executor) -> Executor:
        self._executor = self._made_executor = executor
        return executor

    def _factory(self) -> ExecutorFactory:
        if self._make_executor is None:
            raise TypeError("RunSession.run needs an executor or make_executor")
        return self._make_executor

    def workers(self, requested: int | None, executor: Executor | None, runs_tasks: bool) -> int:
        """How many tasks run at once: ``requested`` (default: the executor's capacity, or the
        CPU count), never more than the executor's capacity.

        Raises
        ------
        PipelineValidationError
            Fewer than one.
        """
        from nbflow.executors.local import default_workers

        # an up-to-date run asks nothing of the executor (a cluster is started on first use)
        capacity = executor.capacity if executor is not None and runs_tasks else None
        workers = requested or capacity or default_workers()
        if capacity:  # more would only wait in the executor's queue while recorded "running"
            workers = min(workers, capacity)
        if workers < 1:
            raise PipelineValidationError([WorkerCountError(workers)])
        return workers

    def run(
        self,
        dag: DAG,
        specs: Mapping[str, TaskSpec],
        settings: Mapping[str, TaskSettings],
        secrets: Mapping[str, str],
        options: RunOptions,
        connections: Mapping[str, str] | None = None,
    ) -> RunResult:
        """Take the run lock, then run ``dag`` (checked and planned by the caller) and wait for it.

        Raises
        ------
        PipelineValidationError
            A bad worker count.
        PipelineBusyError
            Another process runs this pipeline.
        """
        runs_tasks = any(n not in options.reuse for n in dag.order)
        executor = self._executor
        # asked for only when the run sets it: a factory of an earlier signature keeps working
        start: dict[str, Any] = {"kernel_start": options.kernel_start} if options.kernel_start is not None else {}
        if executor is None and self.executor_kind != "local":
            executor = self._made(self._factory()(workers=options.workers, **start))
        workers = self.workers(options.workers, executor, runs_tasks)
        self._take_lock()
        store = self.store
        if executor is None:
            executor = self._made(self._factory()("local", workers=workers, warm_kernels=options.warm_kernels, **start))
        if runs_tasks:
            executor.check(self.root)
        reap_stale_runs(store)
        runner = Runner(
            root=self.root,
            specs=specs,
            dag=dag,
            store=store,
            executor=executor,
            workers=workers,
            listeners=options.listeners,
            settings=settings,
            secrets=secrets,
            connections=connections,
        )
        return runner.run(
            options.overrides,
            selected=options.selected,
            reuse=options.reuse,
            resumed_from=options.resumed_from,
            logical_date=options.logical_date,
            reasons=options.reasons,
            stop=options.stop,
        )

    def _take_lock(self) -> None:
        if self._lock is None:
            lock = RunLock(self.lock_path, self.root)
            lock.__enter__()
            self._lock = lock
