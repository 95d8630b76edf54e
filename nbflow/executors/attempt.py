"""One attempt of one task, driven the same way by every executor and by ``single.run_one``.

An attempt is begun where it is submitted (a kernel started ahead of time is set aside
for it there, so that the next ``anticipate`` does not count that kernel as free, and
its timeout starts), then run wherever the executor runs it: its kind's ``run``, then
the cleanup. :func:`run_attempt` does both at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from nbflow.execution.base import AttemptControl, AttemptOutcome, TaskRequest, kernel_log_path, start_timeout
from nbflow.kinds import kind_of

if TYPE_CHECKING:
    from nbflow.execution.kernels import KernelLauncher


def needs_kernel(request: TaskRequest) -> bool:
    """Whether the attempt runs in a kernel (so it needs a :class:`KernelLauncher`)."""
    return kind_of(request.kind).uses_kernel


def may_take_warm_kernel(kind: str, has_secrets: bool) -> bool:
    """Whether a task of ``kind`` may run in a kernel started ahead of time: one that runs
    in a kernel, without secrets (they reach a kernel through the environment it starts with)."""
    return kind_of(kind).uses_kernel and not has_secrets


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
            return kind.run(request, control, launcher)
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
