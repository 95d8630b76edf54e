"""The executor interface: run one attempt of one task somewhere, report how it went.

The runner decides *what* runs and *when* (order, concurrency, states, the store); an
executor only runs what it is given. The local executor runs notebooks in kernels on
this machine; others (a Dask cluster, ...) implement the same interface.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from nbflow import states
from nbflow.paths import AttemptPaths
from nbflow.project.secrets import Redactor
from nbflow.project.settings import MAX_CELL_OUTPUT


def utcnow() -> datetime:
    """Now, in UTC, without tzinfo (how the store keeps times)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


KERNEL_START_MODES = ("fork", "fresh")


@dataclass(frozen=True)
class KernelStart:
    """How notebook kernels start: ``fork`` (from a warm template) or ``fresh`` (a new interpreter)."""

    mode: str = "fork"
    #: modules the template imports once, so that no forked kernel pays for them
    preload: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in KERNEL_START_MODES:
            raise ValueError(f'kernel_start must be "fork" or "fresh" (got {self.mode!r})')


@dataclass(frozen=True)
class TaskRequest:
    """Everything needed to run one attempt of a task. Picklable."""

    run_id: str
    task: str
    attempt: int
    #: the task's file: a notebook, a ``.sql`` file, the ``nbflow_tasks.py`` of a task defined in code
    source: Path
    cwd: Path
    kernel_name: str
    #: injected into the task: overrides, ``upstream`` and ``product``
    parameters: dict[str, Any]
    #: where a kind that :attr:`writes a notebook <nbflow.kinds.base.TaskKind.writes_notebook>` writes it
    output_notebook: Path
    log_path: Path
    #: files the task declared; an attempt that does not write them fails
    products: tuple[Path, ...] = ()
    #: products that are URIs (``s3://`` objects, ``table://`` tables); checked the same way
    targets: tuple[str, ...] = ()
    #: the project's connections: name -> the environment variable holding its URI (read where it runs)
    connections: dict[str, str] = field(default_factory=dict)
    #: seconds per cell before the attempt fails (None: no limit)
    cell_timeout: float | None = None
    #: seconds for the whole attempt; past it the kernel is killed (None: no limit)
    timeout: float | None = None
    #: secret parameters: name -> the environment variable holding the value (read by the executor)
    secrets: dict[str, str] = field(default_factory=dict)
    #: the name of the task's kind in :data:`nbflow.kinds.KINDS` (what runs the attempt)
    kind: str = "notebook"
    #: a ``python`` task's function, or an ``http`` task's request settings
    target: Any = None
    #: characters of output each cell keeps in the executed notebook (the rest is counted)
    max_cell_output: int = MAX_CELL_OUTPUT


def secret_values(request: TaskRequest) -> dict[str, str]:
    """The request's secret parameters with their values, read from this process's environment."""
    import os

    return {name: os.environ.get(var, "") for name, var in request.secrets.items()}


def request_redactor(request: TaskRequest) -> Redactor:
    """What masks the request's secrets and its connections' credentials, wherever they show."""
    import os

    from nbflow.project.connections import connection_secrets

    return Redactor([*secret_values(request).values(), *connection_secrets(request.connections, os.environ)])


def kernel_log_path(request: TaskRequest) -> Path:
    """Where the kernel process of a notebook attempt writes its own output."""
    return AttemptPaths.of_log(request.log_path).kernel_log


@dataclass
class AttemptOutcome:
    """How an attempt ended."""

    state: str
    started_at: datetime
    ended_at: datetime
    error: str | None = None
    traceback: str | None = None
    #: the captured output's tail, capped (the log file holds more)
    log: str = ""
    #: the exception's name (``ValueError``, ``KernelDied``, ``TaskTimeout``, ...), for retry rules
    ename: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(
        cls, ename: str, message: str, started: datetime | None = None, traceback: str | None = None
    ) -> AttemptOutcome:
        """A failed attempt, its error ``"<ename>: <message>"``; ``started`` None: it failed as it started."""
        now = utcnow()
        return cls(states.FAILED, started or now, now, error=f"{ename}: {message}", traceback=traceback, ename=ename)

    @classmethod
    def interrupted(cls, message: str, started: datetime | None = None) -> AttemptOutcome:
        """An attempt stopped from outside (the run was stopped), its error ``"Interrupted: <message>"``."""
        now = utcnow()
        return cls(states.INTERRUPTED, started or now, now, error=f"Interrupted: {message}")


@dataclass(frozen=True)
class KernelNeed:
    """A kernel a task is expected to ask for soon (so an executor may start it early)."""

    kernel_name: str
    cwd: Path
    #: a folder of the run where a kernel started early writes its output until a task takes it
    scratch: Path

    @property
    def key(self) -> tuple[str, str]:
        return (self.kernel_name, str(self.cwd))


class StopReason(str, Enum):
    """Why an attempt was stopped from outside."""

    #: the run was stopped (Ctrl-C, the panel's Stop, a lost store)
    INTERRUPTED = "interrupted"
    #: the attempt ran past its task's ``timeout``
    TIMED_OUT = "timeout"


class AttemptControl:
    """Stops one attempt from another thread (a cancel, a timeout), whatever it is doing.

    The attempt attaches a way to kill what it runs (its kernel) as soon as that exists;
    a stop before then takes effect at the attach.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reason: StopReason | None = None
        self._kill: Callable[[], None] | None = None

    def attach(self, kill: Callable[[], None] | None) -> None:
        with self._lock:
            self._kill = kill
            stop_now = self.reason is not None and kill is not None
        if stop_now:
            kill()  # type: ignore[misc]

    def stop(self, reason: StopReason) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
            kill = self._kill
        if kill is not None:
            kill()

    @property
    def stopped(self) -> bool:
        return self.reason is not None


def start_timeout(control: AttemptControl, seconds: float | None) -> threading.Timer | None:
    """Stop the attempt as timed out after ``seconds`` (None: never); cancel the timer when it ends."""
    if seconds is None:
        return None
    timer = threading.Timer(seconds, control.stop, args=(StopReason.TIMED_OUT,))
    timer.daemon = True
    timer.start()
    return timer


def stopped_outcome(
    control: AttemptControl, request: TaskRequest, state: str, error: str | None, ename: str | None, stopped: str
) -> tuple[str, str | None, str | None]:
    """An attempt's (state, error, ename), accounting for a stop from outside: a timeout fails
    it (``TaskTimeout``), a cancel makes it ``interrupted``. ``stopped`` says what was stopped."""
    if state == states.SUCCESS or control.reason is None:
        return state, error, ename
    if control.reason is StopReason.TIMED_OUT:
        return (
            states.FAILED,
            f"TaskTimeout: the task ran longer than its timeout of {request.timeout:g}s; {stopped}",
            "TaskTimeout",
        )
    return states.INTERRUPTED, "Interrupted: the run was stopped while this task was running", None


class Executor(abc.ABC):
    """Runs task attempts. Implementations must be safe to call from one thread at a time."""

    @abc.abstractmethod
    def submit(self, request: TaskRequest) -> Future[AttemptOutcome]:
        """Start running ``request`` now; the future resolves to its outcome and never raises."""

    @abc.abstractmethod
    def cancel(self, run_id: str) -> None:
        """Stop every attempt of ``run_id`` as soon as possible; their outcomes say ``interrupted``."""

    @property
    def capacity(self) -> int | None:
        """Attempts this executor runs at once by itself (a cluster's threads); None: not bounded."""
        return None

    def check(self, root: Path) -> None:
        """Raise an ``NbflowError`` if this executor cannot run the pipeline in ``root``
        (called before the run starts; the default accepts every pipeline)."""

    def anticipate(self, needs: Sequence[KernelNeed]) -> None:
        """The kernels the next tasks will ask for, most likely first; the default ignores them.

        Called whenever the run's outlook changes; an executor may start some of them ahead
        of time and must drop those no longer listed.
        """

    def close(self) -> None:
        """Release resources (after every submitted future has resolved)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
