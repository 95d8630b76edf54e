"""The local executor: each attempt in a thread of this process (a notebook's in a kernel on this machine)."""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from nbflow.execution.base import AttemptControl, AttemptOutcome, Executor, KernelNeed, StopReason, TaskRequest
from nbflow.executors.attempt import begin_attempt, needs_kernel
from nbflow.kinds import kind_of

if TYPE_CHECKING:
    from pathlib import Path

    from nbflow.execution.base import KernelStart
    from nbflow.execution.kernels import KernelLauncher


def default_workers() -> int:
    """How many tasks run at once by default: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


class LocalExecutor(Executor):
    """Runs attempts in threads of this process; a notebook's through papermill, in a kernel of its own.

    Parameters
    ----------
    workers
        Attempts that may run at once (the runner submits no more than this).
    max_concurrent_starts
        Kernels that may be starting at once; bounds the load that makes starts time out.
    warm_kernels
        Kernels started ahead of time for the tasks expected next (default 2; 0: none).
    kernel_start
        How notebook kernels start (default: forked from a template, no preload).
    """

    def __init__(
        self,
        workers: int | None = None,
        max_concurrent_starts: int | None = None,
        warm_kernels: int | None = None,
        kernel_start: KernelStart | None = None,
    ) -> None:
        self.workers = workers or default_workers()
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="nbflow-task")
        self._max_starts = max_concurrent_starts or max(2, default_workers())
        self._warm_kernels = warm_kernels
        self._kernel_start = kernel_start
        self._kernels: KernelLauncher | None = None
        self._lock = threading.Lock()
        self._controls: dict[str, dict[tuple[str, int], AttemptControl]] = defaultdict(dict)
        self._cancelled: set[str] = set()
        self._preloaded: set[str] = set()

    @property
    def _launcher(self) -> KernelLauncher:
        """Made on first use: a run with no notebook to execute never loads kernel machinery."""
        with self._lock:
            if self._kernels is None:
                from nbflow.execution.kernels import DEFAULT_WARM, KernelLauncher

                warm = DEFAULT_WARM if self._warm_kernels is None else self._warm_kernels
                self._kernels = KernelLauncher(self._max_starts, warm, self._kernel_start)
            return self._kernels

    @property
    def kernel_start(self) -> KernelStart:
        """How this executor's notebook kernels start."""
        from nbflow.execution.base import KernelStart

        return self._kernel_start or KernelStart()

    def check(self, root: Path) -> None:
        """With ``preload`` modules, start the kernel template now: a module that cannot be
        forked safely is refused (``KernelTemplateError``, exit 2) before anything runs."""
        start = self._kernel_start
        if start is not None and start.mode == "fork" and start.preload:
            self._launcher.prepare()

    def submit(self, request: TaskRequest) -> Future[AttemptOutcome]:
        key = (request.task, request.attempt)
        control = AttemptControl()
        with self._lock:
            self._controls[request.run_id][key] = control
            if request.run_id in self._cancelled:
                control.stop(StopReason.INTERRUPTED)
        if request.kind not in self._preloaded:
            # imported here, in the runner's thread, not first in a worker thread: a Ctrl-C or
            # SIGTERM that lands in an import there leaves its module lock held, and the run hangs
            kind_of(request.kind).preload()
            self._preloaded.add(request.kind)
        attempt = begin_attempt(request, self._launcher if needs_kernel(request) else None, control)

        def work() -> AttemptOutcome:
            try:
                return attempt()
            finally:
                with self._lock:
                    self._controls[request.run_id].pop(key, None)

        return self._pool.submit(work)

    def anticipate(self, needs: Sequence[KernelNeed]) -> None:
        if needs or self._kernels is not None:
            self._launcher.anticipate(needs)

    def cancel(self, run_id: str) -> None:
        if self._kernels is not None:
            self._kernels.anticipate([])
        with self._lock:
            self._cancelled.add(run_id)
            controls = list(self._controls[run_id].values())
        for control in controls:
            control.stop(StopReason.INTERRUPTED)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._kernels is not None:
            self._kernels.close()
