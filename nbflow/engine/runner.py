"""One run of a pipeline: plan the attempts, drive the executor, record everything.

The path of data: the runner asks the :class:`~nbflow.core.ready.ReadyQueue` for ready
tasks, builds a :class:`~nbflow.execution.base.TaskRequest` for each (the parameters to
inject, where the executed notebook and log go), submits it to the executor, and records
every state change in the store and tells the listeners (progress display, widgets).
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nbflow import __version__, states
from nbflow.core.dag import DAG
from nbflow.core.ready import ReadyQueue
from nbflow.engine.environment import capture, checksums
from nbflow.engine.incremental import fingerprints, reused_task
from nbflow.engine.requests import product_paths, product_targets, resolve_product, task_request
from nbflow.engine.retry import decide
from nbflow.errors import NbflowError, RunNotFoundError
from nbflow.execution.base import AttemptOutcome, Executor, KernelNeed, TaskRequest, utcnow
from nbflow.executors.attempt import may_take_warm_kernel
from nbflow.kinds import kind_of
from nbflow.paths import StateDir
from nbflow.project.params import Overrides
from nbflow.project.settings import TaskSettings
from nbflow.project.specs import TaskSpec
from nbflow.store.base import AttemptRecord, RunRecord, RunStore, TaskRecord
from nbflow.views.text import counts_text


def new_run_id() -> str:
    """Sortable and unique: ``20261125-143012-a1b2c3``."""
    return utcnow().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


class RunListener(Protocol):
    """Told about a run as it happens. Methods take keyword arguments only; ignore the rest."""

    def on_run_start(self, *, run: RunRecord, tasks: Mapping[str, TaskRecord], **_: Any) -> None: ...

    def on_task(self, *, run: RunRecord, task: TaskRecord, **_: Any) -> None: ...

    def on_run_end(self, *, run: RunRecord, tasks: Mapping[str, TaskRecord], **_: Any) -> None: ...


@dataclass
class RunResult:
    """What a run did: its record and each task's final state."""

    run: RunRecord
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    #: what stopped the run from outside its tasks (the store could not be written: a full disk)
    problem: NbflowError | None = None

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def state(self) -> str:
        return self.run.state

    @property
    def ok(self) -> bool:
        return self.run.state == states.SUCCESS

    @property
    def states(self) -> dict[str, str]:
        return {name: t.state for name, t in self.tasks.items()}

    @property
    def exit_code(self) -> int:
        """0 all tasks succeeded, 1 a task failed, 130 interrupted."""
        return {states.SUCCESS: 0, states.INTERRUPTED: 130}.get(self.run.state, 1)

    def __repr__(self) -> str:
        return f"<RunResult {self.run_id} {self.state}: {counts_text(self.tasks)}>"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale_runs(store: RunStore) -> list[str]:
    """Mark as ``interrupted`` the runs whose process on this host died without finishing."""
    reaped = []
    host = socket.gethostname()
    for run in store.list_runs(limit=20):
        if run.state != states.RUNNING or run.hostname != host or run.pid == os.getpid() or pid_alive(run.pid):
            continue
        now = utcnow()
        for task in store.get_tasks(run.run_id).values():
            if task.state in (states.RUNNING, states.UP_FOR_RETRY):
                task.state, task.ended_at = states.INTERRUPTED, now
                task.error = task.error or "Interrupted: the nbflow process running this task died"
                store.save_task(task)
        for attempt in store.get_attempts(run.run_id):
            if attempt.state == states.RUNNING:
                attempt.state, attempt.ended_at = states.INTERRUPTED, now
                attempt.error = "Interrupted: the nbflow process running this task died"
                store.save_attempt(attempt)
        run.state, run.ended_at = states.INTERRUPTED, now
        store.save_run(run)
        reaped.append(run.run_id)
    store.flush()
    return reaped


def load_run(store: RunStore, run_id: str | None) -> tuple[RunRecord, dict[str, TaskRecord]]:
    """A run (the latest when ``run_id`` is None) and its tasks.

    A run whose process died is first recorded ``interrupted``; a read-only store (a view's)
    is not written: the run is shown as it would be recorded.

    Raises
    ------
    RunNotFoundError
        No such run, or no run at all.
    """
    run = store.get_run(run_id) if run_id else store.latest_run()
    if run is None:
        raise RunNotFoundError(str(getattr(store, "path", "the state store")), run_id)
    if run.state == states.RUNNING and getattr(store, "read_only", False):
        return _as_reaped(run, store.get_tasks(run.run_id))
    if run.state == states.RUNNING and reap_stale_runs(store):
        run = store.get_run(run.run_id) or run
    return run, store.get_tasks(run.run_id)


def _as_reaped(run: RunRecord, tasks: dict[str, TaskRecord]) -> tuple[RunRecord, dict[str, TaskRecord]]:
    """A run whose process on this machine died, as :func:`reap_stale_runs` would record it
    (``interrupted``), without writing; any other run as it is."""
    if run.hostname != socket.gethostname() or pid_alive(run.pid):
        return run, tasks
    shown = {}
    for name, task in tasks.items():
        if task.state in (states.RUNNING, states.UP_FOR_RETRY):
            error = task.error or "Interrupted: the nbflow process running this task died"
            task = dataclasses.replace(task, state=states.INTERRUPTED, error=error)
        shown[name] = task
    return dataclasses.replace(run, state=states.INTERRUPTED), shown


def _never_submitted() -> Future[AttemptOutcome]:
    future: Future[AttemptOutcome] = Future()
    future.set_result(AttemptOutcome.interrupted("the run was stopped as this task started"))
    return future


def _outcome(future: Future[AttemptOutcome], attempt: AttemptRecord) -> AttemptOutcome:
    """The attempt's outcome; an executor that raised (a bug, a lost worker) fails the attempt, not the run."""
    try:
        return future.result()
    except Exception as e:  # executors should not raise; if one does, record it
        import traceback

        return AttemptOutcome.failed(
            "ExecutorError", f"{type(e).__name__}: {e}", attempt.started_at, "".join(traceback.format_exception(e))
        )


class _StopRequested(Exception):
    """The run's ``stop`` event was set."""


class Runner:
    """Runs a validated DAG of tasks once."""

    def __init__(
        self,
        root: Path,
        specs: Mapping[str, TaskSpec],
        dag: DAG,
        store: RunStore,
        executor: Executor,
        *,
        workers: int,
        listeners: Sequence[RunListener] = (),
        settings: Mapping[str, TaskSettings] | None = None,
        secrets: Mapping[str, str] | None = None,
        connections: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.secrets = dict(secrets or {})
        self.connections = dict(connections or {})
        self.settings = {name: (settings or {}).get(name) or TaskSettings() for name in dag.order}
        self.specs = specs
        self.dag = dag
        self.store = store
        self.executor = executor
        self.workers = max(1, workers)
        self.listeners = list(listeners)

    # -- recording ---------------------------------------------------------------------

    def _emit(self, event: str, **kwargs: Any) -> None:
        for listener in self.listeners:
            handler = getattr(listener, event, None)
            if handler is not None:
                handler(**kwargs)

    def _save_task(self, run: RunRecord, task: TaskRecord, outcome: AttemptOutcome | None = None) -> None:
        self.store.save_task(task)
        self._emit("on_task", run=run, task=task, outcome=outcome)

    def _checksums(self, spec: TaskSpec) -> dict[str, str]:
        """What a successful attempt wrote: its files' checksums, its objects' and tables'."""
        product = resolve_product(spec)
        found = checksums(product_paths(product))
        targets = product_targets(product)
        if targets:
            from nbflow.systems.targets import TargetProbe

            with TargetProbe(self.connections, os.environ) as probe:
                found.update(probe.checksums(targets))
        return found

    # -- planning ----------------------------------------------------------------------

    def _request(self, run_dir: Path, run_id: str, name: str, attempt: int, overrides: Overrides) -> TaskRequest:
        return task_request(
            self.specs,
            self.dag,
            self.settings,
            self.secrets,
            run_dir,
            run_id,
            name,
            attempt,
            overrides,
            self.connections,
        )

    def _anticipate(self, queue: ReadyQueue, run_dir: Path) -> None:
        """Tell the executor which kernels the next tasks will want (it may start them early)."""
        needs = []
        for name in queue.upcoming(self.workers + 4):
            spec = self.specs[name]
            if may_take_warm_kernel(spec.kind, any(p in spec.params.defaults for p in self.secrets)):
                needs.append(KernelNeed(spec.kernel_name, spec.folder, run_dir))
        self.executor.anticipate(needs)

    # -- the run -----------------------------------------------------------------------

    def run(
        self,
        overrides: Overrides,
        selected: Sequence[str] | None = None,
        run_id: str | None = None,
        reuse: Mapping[str, AttemptRecord | TaskRecord] | None = None,
        resumed_from: str | None = None,
        logical_date: str | None = None,
        reasons: Mapping[str, str] | None = None,
        stop: threading.Event | None = None,
    ) -> RunResult:
        """Run every task of the DAG; returns when all have finished or the run was interrupted.

        ``reuse`` maps tasks that need not run again to their earlier success (see
        :mod:`~nbflow.engine.incremental`); they are recorded ``up_to_date`` and their
        downstreams run.
        Setting ``stop`` (from any thread) interrupts the run as Ctrl-C does.
        """
        reuse = reuse or {}
        reasons = reasons or {}
        self._prints = fingerprints(self.dag, self.specs, overrides)
        run_id = run_id or new_run_id()
        state_dir = StateDir(self.root)
        state_dir.ensure()
        run_dir = state_dir.run(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        run = RunRecord(
            run_id=run_id,
            pipeline=str(self.root),
            state=states.RUNNING,
            started_at=utcnow(),
            params=overrides.as_dict(),
            workers=self.workers,
            selected=list(selected) if selected else None,
            nbflow_version=__version__,
            pid=os.getpid(),
            hostname=socket.gethostname(),
            resumed_from=resumed_from,
            logical_date=logical_date,
            environment=capture(
                {n: self.specs[n].source_hash for n in self.dag.order},
                {n: self.specs[n].kernel_name for n in self.dag.order if kind_of(self.specs[n].kind).uses_kernel},
                run_dir,
            ),
        )
        tasks = {name: TaskRecord(run_id, name, states.PENDING, reason=reasons.get(name)) for name in self.dag.order}
        queue = ReadyQueue(self.dag, {name: s.trigger_rule for name, s in self.settings.items()})
        launching: tuple[TaskRequest, AttemptRecord] | None = None
        for name, earlier in reuse.items():
            tasks[name] = reused_task(run_id, earlier, reasons.get(name))
            queue.finish(name, states.UP_TO_DATE)
        self.store.save_run(run)
        for task in tasks.values():
            self.store.save_task(task)
        self._emit("on_run_start", run=run, tasks=tasks)

        running: dict[Future[AttemptOutcome], tuple[TaskRequest, AttemptRecord]] = {}
        delayed: list[tuple[float, str]] = []  # (when, task): attempts waiting out their retry delay
        problem: NbflowError | None = None
        try:
            while True:
                if stop is not None and stop.is_set():
                    raise _StopRequested
                problem = self.store.failure
                if problem is not None:  # nothing more can be recorded: stop rather than run unrecorded
                    raise _StopRequested
                now = time.monotonic()
                while delayed and delayed[0][0] <= now:
                    queue.requeue(heapq.heappop(delayed)[1])
                while queue.has_ready() and len(running) < self.workers:
                    name = queue.pop_ready()
                    request = self._request(run_dir, run_id, name, tasks[name].attempts + 1, overrides)
                    launching = (request, self._start_attempt(run, tasks[name], request))
                    running[self.executor.submit(request)] = launching
                    launching = None
                self._anticipate(queue, run_dir)
                if not running and not delayed:
                    break
                pause = 0.5 if not delayed else max(0.0, min(0.5, delayed[0][0] - time.monotonic()))
                if not running:
                    if stop is not None:
                        stop.wait(pause)
                    else:
                        time.sleep(pause)
                    continue
                if stop is not None:
                    pause = min(pause, 0.1)
                done, _ = wait(list(running), timeout=pause, return_when=FIRST_COMPLETED)
                for future in done:
                    request, attempt = running.pop(future)
                    self._finish_attempt(run, tasks, queue, attempt, _outcome(future, attempt), delayed)
        except (KeyboardInterrupt, _StopRequested):
            if launching is not None and launching not in running.values():
                running[_never_submitted()] = launching  # recorded as running, never submitted
            self._interrupt(run, tasks, queue, running, delayed, because=problem)
        else:
            done_ok = states.TASK_OK | {states.SKIPPED}
            run.state = states.SUCCESS if all(t.state in done_ok for t in tasks.values()) else states.FAILED
        run.ended_at = utcnow()
        self.store.save_run(run)
        try:
            self.store.flush()
        except NbflowError as e:  # the run is over either way; its record waits in the store's queue
            if problem is None:
                logging.getLogger("nbflow").warning("nbflow: warning: %s", e)
        self._emit("on_run_end", run=run, tasks=tasks)
        return RunResult(run, tasks, problem)

    def _start_attempt(self, run: RunRecord, task: TaskRecord, request: TaskRequest) -> AttemptRecord:
        now = utcnow()
        task.state, task.attempts, task.started_at, task.ended_at, task.error = (
            states.RUNNING,
            request.attempt,
            now,
            None,
            None,
        )
        executed = str(request.output_notebook) if kind_of(request.kind).writes_notebook else None
        task.output_notebook = executed
        recorded = dict(request.parameters)
        recorded.update({p: f"[secret from ${var}]" for p, var in request.secrets.items()})
        attempt = AttemptRecord(
            run.run_id,
            task.task,
            request.attempt,
            states.RUNNING,
            now,
            parameters=recorded,
            kernel_name=request.kernel_name,
            source_hash=self.specs[task.task].source_hash,
            output_notebook=executed,
            log_path=str(request.log_path),
            fingerprint=self._prints.get(task.task),
        )
        self.store.save_attempt(attempt)
        self._save_task(run, task)
        return attempt

    def _finish_attempt(
        self,
        run: RunRecord,
        tasks: dict[str, TaskRecord],
        queue: ReadyQueue,
        attempt: AttemptRecord,
        outcome: AttemptOutcome,
        delayed: list[tuple[float, str]] | None = None,
    ) -> None:
        attempt.state, attempt.ended_at = outcome.state, outcome.ended_at
        attempt.error, attempt.traceback = outcome.error, outcome.traceback
        attempt.worker = outcome.extra.get("worker")
        if outcome.state == states.SUCCESS:  # what it wrote, for `nbflow diff`
            attempt.products = self._checksums(self.specs[attempt.task])
        self.store.save_attempt(attempt)
        self.store.save_log(run.run_id, attempt.task, attempt.attempt, outcome.log)
        task = tasks[attempt.task]
        task.ended_at, task.error = outcome.ended_at, outcome.error
        if outcome.state == states.FAILED and delayed is not None:
            decision = decide(self.settings[task.task], attempt.attempt, outcome.ename, outcome.error)
            if decision.retry:
                task.state = states.UP_FOR_RETRY
                task.error = f"{outcome.error} [attempt {attempt.attempt}; retrying in {decision.delay:g}s]"
                self._save_task(run, task, outcome=outcome)
                queue.retry_later(task.task)
                heapq.heappush(delayed, (time.monotonic() + decision.delay, task.task))
                return
        task.state = outcome.state
        self._save_task(run, task, outcome=outcome)
        for other_name, state in queue.finish(task.task, outcome.state):
            other = tasks[other_name]
            other.state = state
            if state == states.UPSTREAM_FAILED:
                other.error = f"upstream {task.task!r} {outcome.state}"
            else:
                other.error = f"skipped by its trigger rule {self.settings[other_name].trigger_rule!r}"
            self._save_task(run, other)

    #: seconds an interrupted run waits for its running tasks to stop
    STOP_WAIT_S = 30.0

    def _interrupt(
        self,
        run: RunRecord,
        tasks: dict[str, TaskRecord],
        queue: ReadyQueue,
        running: dict[Future[AttemptOutcome], tuple[TaskRequest, AttemptRecord]],
        delayed: list[tuple[float, str]],
        because: NbflowError | None = None,
    ) -> None:
        """Stop the running attempts (``because`` of a problem outside the tasks: the run fails)."""
        run.state = states.INTERRUPTED if because is None else states.FAILED
        self.executor.cancel(run.run_id)
        waiting = {name for _when, name in delayed} | {n for n, t in tasks.items() if t.state == states.UP_FOR_RETRY}
        why = "the run was stopped" if because is None else "the run was stopped: its state could not be recorded"
        for name in sorted(waiting):  # waiting to retry (its delay over or not): stopped as well
            tasks[name].state = states.INTERRUPTED
            tasks[name].error = f"Interrupted: {why} while this task waited to retry"
            queue.finish(name, states.INTERRUPTED)
            self._save_task(run, tasks[name])
        deadline = time.monotonic() + self.STOP_WAIT_S
        while running and time.monotonic() < deadline:
            try:
                done, _ = wait(list(running), timeout=max(0.0, deadline - time.monotonic()))
            except KeyboardInterrupt:
                continue  # a second Ctrl-C while kernels are being stopped: keep stopping them
            for future in done:
                _request, attempt = running.pop(future)
                self._finish_attempt(run, tasks, queue, attempt, _outcome(future, attempt))
        for _request, attempt in running.values():  # did not stop in time: recorded, not waited for
            outcome = AttemptOutcome.interrupted("did not stop in time", attempt.started_at)
            self._finish_attempt(run, tasks, queue, attempt, outcome)
