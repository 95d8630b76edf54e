"""Kernels for notebook attempts: started robustly, shut down off the critical path.

* Each kernel listens on IPC sockets in a private temp folder, so parallel starts never
  race for TCP ports ("address already in use").
* The kernel process's own stdout/stderr go to a file, not to the user's terminal.
* A bounded number start at once (a start under heavy load is what times out), and a
  failed start is tried once more; that retry is not a task attempt.
* IPython history stays in memory, so parallel kernels don't lock one history file.
* Shutdown is asked for and then left to a background reaper: the next task does not
  wait for the old kernel to exit. A kernel that does not exit gets SIGTERM, then SIGKILL
  (its whole process group), as jupyter_client's own shutdown does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

log = logging.getLogger("nbflow.execution")

#: seconds a kernel may take to start and answer
KERNEL_START_TIMEOUT = 60.0
#: seconds a kernel gets to exit after a shutdown request, then again after SIGTERM
SHUTDOWN_GRACE = 2.5


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

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return getattr(self.provisioner, "process", None)

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the kernel and everything it started."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            if sys.platform != "win32":
                os.killpg(process.pid, sig)
            else:
                process.kill()
        except (ProcessLookupError, PermissionError):
            pass


class KernelLauncher:
    """Starts kernels (bounded, retried once) and reaps them in the background."""

    def __init__(self, max_concurrent_starts: int) -> None:
        self._slots = threading.Semaphore(max_concurrent_starts)
        self._closing = threading.Event()
        self._reapers: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(
        self,
        kernel_name: str,
        cwd: str,
        output: IO[bytes],
        on_kernel: Callable[[IPCKernelManager | None], None] = lambda km: None,
        cancelled: Callable[[], bool] = lambda: False,
        env: dict[str, str] | None = None,
    ) -> tuple[IPCKernelManager, Any]:
        """A started kernel that has answered, and a client with its channels open.

        The kernel process's output goes to ``output``. ``on_kernel`` is told of the kernel as
        soon as its process exists (so that a cancel can kill it); a cancelled start is not
        tried again.

        Raises
        ------
        KernelStartError
            Two starts in a row failed.
        """
        errors: list[str] = []
        for _try in range(2):
            if cancelled():
                raise KernelStartError("the run was stopped before the kernel started")
            km = IPCKernelManager(kernel_name=kernel_name)
            client = None
            with self._slots:
                try:
                    run_sync(km.start_kernel)(
                        cwd=cwd,
                        stdout=output,
                        stderr=output,
                        extra_arguments=["--HistoryManager.hist_file=:memory:"],
                        **({"env": env} if env is not None else {}),
                    )
                    on_kernel(km)
                    client = km.client()
                    client.start_channels()
                    run_sync(client.wait_for_ready)(timeout=KERNEL_START_TIMEOUT)
                    client.allow_stdin = False
                    return km, client
                except Exception as e:  # a failed start: clean up, try once more
                    errors.append(f"{type(e).__name__}: {e}")
                    log.warning("kernel %r failed to start (%s); trying again", kernel_name, errors[-1])
                    if client is not None:
                        client.stop_channels()
                    self._kill_now(km)
        raise KernelStartError(f"the kernel {kernel_name!r} did not start: {'; then '.join(errors)}")

    def _kill_now(self, km: IPCKernelManager) -> None:
        km.signal_group(signal.SIGKILL)
        self._cleanup(km)

    @staticmethod
    def _cleanup(km: IPCKernelManager) -> None:
        try:
            asyncio.run(km._async_cleanup_resources())
        except Exception as e:  # leftovers in a temp folder are not worth failing for
            log.debug("kernel cleanup: %s", e)

    def shutdown(self, km: IPCKernelManager) -> None:
        """Ask the kernel to exit, and let a background thread see that it does."""
        if km.process is not None and km.process.poll() is None:
            try:
                run_sync(km._async_request_shutdown)()
            except Exception as e:  # the kernel may be gone already; the reaper makes sure
                log.debug("shutdown request failed: %s", e)
        reaper = threading.Thread(target=self._reap, args=(km,), name="nbflow-kernel-reaper", daemon=True)
        with self._lock:
            self._reapers = [t for t in self._reapers if t.is_alive()]
            self._reapers.append(reaper)
        reaper.start()

    def _reap(self, km: IPCKernelManager) -> None:
        process = km.process
        if process is not None:
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None:
                    km.signal_group(sig)
                deadline = time.monotonic() + (0.2 if self._closing.is_set() else SHUTDOWN_GRACE)
                while process.poll() is None and time.monotonic() < deadline:
                    if self._closing.wait(0.02) and sig is None:
                        break  # closing: stop waiting politely
                if process.poll() is not None:
                    break
        self._cleanup(km)

    def close(self) -> None:
        """Wait for every kernel to be gone (hurrying those that linger)."""
        self._closing.set()
        with self._lock:
            reapers = list(self._reapers)
        for reaper in reapers:
            reaper.join()
