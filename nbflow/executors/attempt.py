"""One attempt of one task, driven the same way by every executor and by ``single.run_one``.

An attempt is begun where it is submitted (a kernel started ahead of time is set aside
for it there, so that the next ``anticipate`` does not count that kernel as free, and
its timeout starts), then run wherever the executor runs it: its kind's ``run``, the
check of its declared products, then the cleanup. :func:`run_attempt` does both at once.

The products are checked here, once for every kind: each declared file must exist after a
successful attempt and must have been written by it (a file left exactly as it was, from
an earlier run, does not count), or the attempt fails with ``MissingProduct``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbflow import states
from nbflow.execution.base import (
    AttemptControl,
    AttemptOutcome,
    TaskRequest,
    kernel_log_path,
    request_redactor,
    start_timeout,
)
from nbflow.kinds import kind_of
from nbflow.project.targets import S3_SCHEME

if TYPE_CHECKING:
    from nbflow.execution.kernels import KernelLauncher


def needs_kernel(request: TaskRequest) -> bool:
    """Whether the attempt runs in a kernel (so it needs a :class:`KernelLauncher`)."""
    return kind_of(request.kind).uses_kernel


def may_take_warm_kernel(kind: str, has_secrets: bool) -> bool:
    """Whether a task of ``kind`` may run in a kernel started ahead of time: one that runs
    in a kernel, without secrets (they reach a kernel through the environment it starts with)."""
    return kind_of(kind).uses_kernel and not has_secrets


def _stamp(path: Path) -> tuple[int, int] | None:
    """(mtime, size) of ``path``, or None if it does not exist."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def unwritten_products(products: Sequence[Path], before: dict[Path, tuple[int, int] | None]) -> list[Path]:
    """The declared ``products`` that do not exist, or that the attempt left exactly as they were."""
    return [p for p in products if _stamp(p) is None or _stamp(p) == before.get(p)]


def _probe(request: TaskRequest, targets: Sequence[str]) -> contextlib.AbstractContextManager[Any]:
    if not targets:
        return contextlib.nullcontext()
    from nbflow.systems.targets import TargetProbe

    return TargetProbe(request.connections, os.environ)


def _in_process_connections(request: TaskRequest, uses_kernel: bool) -> contextlib.AbstractContextManager[Any]:
    """A task that runs in this process finds its project's connections with ``nbflow.connect``."""
    if uses_kernel or not request.connections:
        return contextlib.nullcontext()
    from nbflow.systems.connect import task_connections

    return task_connections(request.connections)


def _target_stamp(probe: Any, uri: str) -> str | None:
    try:
        return probe.stamp(uri)
    except Exception:  # not reachable now: the check after the attempt tells
        return None


def unwritten_targets(probe: Any, before: dict[str, str | None]) -> list[str]:
    """The product URIs that do not exist after the attempt, or objects it left as they were
    (a table counts as written when it exists)."""
    missing = []
    for uri, stamp in before.items():
        try:
            now = probe.stamp(uri)
        except Exception as e:  # noqa: BLE001 - any failure to look means it cannot be confirmed
            missing.append(f"{uri} (it could not be checked: {type(e).__name__})")
            continue
        if now is None or (uri.startswith(S3_SCHEME) and now == stamp):
            missing.append(uri)
    return missing


def _redacted(outcome: AttemptOutcome, request: TaskRequest) -> AttemptOutcome:
    """The outcome with secrets and connection credentials masked in its error, traceback and log."""
    if not (request.secrets or request.connections or any(k.startswith("AIRFLOW_CONN_") for k in os.environ)):
        return outcome
    redactor = request_redactor(request)
    if not redactor:
        return outcome
    return replace(
        outcome,
        error=redactor.text(outcome.error) if outcome.error else outcome.error,
        traceback=redactor.text(outcome.traceback) if outcome.traceback else outcome.traceback,
        log=redactor.text(outcome.log) if outcome.log else outcome.log,
    )


def begin_attempt(
    request: TaskRequest, launcher: KernelLauncher | None, control: AttemptControl
) -> Callable[[], AttemptOutcome]:
    """Begin an attempt here and now: claim its warm kernel, start its timeout. Returns what
    runs it (in any thread, once); that never raises for what the task does."""
    kind = kind_of(request.kind)
    if launcher is not None and may_take_warm_kernel(request.kind, bool(request.secrets)):
        launcher.claim(request.kernel_name, str(request.cwd), kernel_log_path(request))
    timer = start_timeout(control, request.timeout)

    def run() -> AttemptOutcome:
        try:
            try:
                for product in request.products:
                    product.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:  # a full disk, a folder it may not write: this attempt fails, not the run
                return AttemptOutcome.failed(type(e).__name__, str(e))
            before = {p: _stamp(p) for p in request.products}
            objects = [uri for uri in request.targets if uri.startswith(S3_SCHEME)]  # a table needs no "before"
            with _probe(request, objects) as probe:
                before_targets = {uri: _target_stamp(probe, uri) for uri in objects}
            with _in_process_connections(request, kind.uses_kernel):
                outcome = kind.run(request, control, launcher)
            missing: list[Path | str] = []
            if outcome.state == states.SUCCESS:
                missing = [*unwritten_products(request.products, before)]
                # a new probe: a connection opened before a long task may be gone by now
                with _probe(request, request.targets) as probe:
                    missing += unwritten_targets(probe, {uri: before_targets.get(uri) for uri in request.targets})
            if missing:
                error = f"MissingProduct: the {kind.noun} ran but did not write " + ", ".join(map(str, missing))
                outcome = replace(outcome, state=states.FAILED, error=error, ename="MissingProduct")
            return _redacted(outcome, request)
        finally:
            if timer is not None:
                timer.cancel()
            if kind.uses_kernel:  # nbclient's sync calls leave an event loop in this thread
                from nbflow.execution.kernels import close_thread_event_loop

                close_thread_event_loop()

    return run


def run_attempt(request: TaskRequest, launcher: KernelLauncher | None, control: AttemptControl) -> AttemptOutcome:
    """Run one attempt of ``request`` in this thread: warm kernel, timeout, its kind, cleanup.

    ``launcher`` is needed when :func:`needs_kernel`; ``control`` stops the attempt from
    another thread. Never raises for anything the task does.
    """
    return begin_attempt(request, launcher, control)()
