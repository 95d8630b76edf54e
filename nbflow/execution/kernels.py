"""Kernels for notebook attempts: started robustly, shut down off the critical path.

* Each kernel listens on IPC sockets in a private temp folder, so parallel starts never
  race for TCP ports ("address already in use").
* The kernel process's own stdout/stderr go to a file, not to the user's terminal.
* A bounded number start at once (a start under heavy load is what times out), and a
  failed start is tried once more; that retry is not a task attempt.
* IPython history stays in memory, so parallel kernels don't lock one history file.
* Kernels can be started ahead of time: told which kernels the next tasks will want
  (:meth:`KernelLauncher.anticipate`), the launcher keeps up to ``warm`` of them starting
  or idle, so a task takes a kernel that is already up. Each is still used by one task
  only; none is started when memory is short, and those no longer wanted are stopped.
* A kernel is ready when it has answered ``kernel_info`` on shell *and* its iopub stream
  carried that request's ``idle`` status: then no output can be missed. (jupyter_client's
  ``wait_for_ready`` also waits for 0.2 s of iopub silence, on every start.)
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
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from queue import Empty
from typing import IO, Any

import zmq
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

from nbflow.errors import KernelStartError
from nbflow.execution.base import KernelNeed, KernelStart
from nbflow.execution.fork import ForkProvisioner, KernelTemplates, fork_supported

log = logging.getLogger("nbflow.execution")

#: seconds a kernel may take to start and answer
KERNEL_START_TIMEOUT = 60.0
#: seconds a kernel gets to exit after a shutdown request, then again after SIGTERM
SHUTDOWN_GRACE = 2.5
#: no kernel is started ahead of time while less memory than this is available
WARM_MIN_AVAILABLE = 1 << 30
#: kernels started ahead of time by default (starting or idle, at most)
DEFAULT_WARM = 2


def close_thread_event_loop() -> None:
    """Close the event loop that nbclient's sync wrappers left in this thread (a new one is made next time)."""
    import asyncio
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            return
    if loop.is_running() or loop.is_closed():
        return
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
        asyncio.set_event_loop(None)


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


async def wait_until_ready(client: Any, timeout: float) -> None:
    """Return once the kernel answers on shell and its iopub stream is live."""
    deadline = time.monotonic() + timeout
    while True:
        msg_id = client.kernel_info()
        reply = await _next_for(client.shell_channel, msg_id, min(1.0, max(0.01, deadline - time.monotonic())))
        if reply is not None and await _next_for(client.iopub_channel, msg_id, 0.25, idle=True) is not None:
            client._handle_kernel_info_reply(reply)
            return
        if not await client._async_is_alive():
            raise RuntimeError("the kernel died before it answered")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the kernel did not answer within {timeout:g}s")


async def _next_for(channel: Any, msg_id: str, timeout: float, idle: bool = False) -> dict[str, Any] | None:
    """The next message on ``channel`` answering ``msg_id`` (its ``idle`` status, if asked); None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            msg = await channel.get_msg(timeout=max(0.0, deadline - time.monotonic()))
        except Empty:
            return None
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if not idle or (msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle"):
            return msg


def _spawn(
    km: IPCKernelManager,
    cwd: str,
    output: IO[bytes],
    env: dict[str, str] | None = None,
    templates: KernelTemplates | None = None,
) -> None:
    """Start the kernel process (it answers later): output to ``output``, history in memory;
    forked from one of ``templates`` when given and the kernel can be."""
    if templates is not None:
        km.kernel_id = km.kernel_id or str(uuid.uuid4())
        provisioner = ForkProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
        provisioner.templates = templates
        km.provisioner = provisioner
    run_sync(km.start_kernel)(
        cwd=cwd,
        stdout=output,
        stderr=output,
        extra_arguments=["--HistoryManager.hist_file=:memory:"],
        **({"env": env} if env is not None else {}),
    )


class _Warm:
    """A kernel started ahead of time, before any task asked for it."""

    def __init__(self, need: KernelNeed, log_path: Path) -> None:
        self.key = need.key
        self.need = need
        self.log_path = log_path
        self.km: IPCKernelManager | None = None
        self.launched = threading.Event()
        self.dropped = False


def _memory_available() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # no figure: assume there is room
        return WARM_MIN_AVAILABLE


class KernelLauncher:
    """Starts kernels (bounded, retried once, some ahead of time) and reaps them in the background.

    Parameters
    ----------
    max_concurrent_starts
        Kernels that may be starting at once for tasks that asked for one.
    warm
        Kernels that may be started ahead of time (0: none).
    start
        How kernels start: forked from a template that imported ipykernel (and the
        ``preload`` modules) once, or each as a fresh interpreter (see :mod:`.fork`).
    """

    def __init__(self, max_concurrent_starts: int, warm: int = 0, start: KernelStart | None = None) -> None:
        self._slots = threading.Semaphore(max_concurrent_starts)
        self._closing = threading.Event()
        self._reapers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._warm_size = max(0, warm)
        self._warm: list[_Warm] = []
        self._claimed: dict[Path, _Warm] = {}
        self._serial = 0
        self.kernel_start = start or KernelStart()
        self._templates = (
            KernelTemplates(self.kernel_start.preload)
            if self.kernel_start.mode == "fork" and fork_supported()
            else None
        )
        self._prepared: set[str] = set()
        #: kernels started ahead of time; starts served by one of them; starts made on demand;
        #: kernels forked from the template; kernels started as a fresh interpreter
        self.counts = Counter[str]()

    def prepare(self, kernel_name: str = "python3") -> None:
        """Start the template that forks ``kernel_name``'s kernels now (if they are forked),
        so that a ``preload`` module that cannot be forked is refused before anything runs.

        Raises
        ------
        KernelTemplateError
            A ``preload`` module was refused (``refused`` is set), or the template failed.
        """
        template = self._templates.for_kernel(kernel_name) if self._templates is not None else None
        if template is not None:
            with self._lock:
                self._prepared.add(kernel_name)
            template.start()

    def _prepare_soon(self, kernel_names: set[str]) -> None:
        """Start the templates of these kernels in the background, once each (a failure
        shows at the first fork, which then starts the kernel fresh)."""
        with self._lock:
            todo = kernel_names - self._prepared
            self._prepared |= todo
        if self._templates is None or not todo:
            return

        def start() -> None:
            for name in sorted(todo):
                try:
                    template = self._templates.for_kernel(name)  # type: ignore[union-attr]
                    if template is not None:
                        template.start()
                except Exception as e:
                    log.debug("kernel template for %r: %s", name, e)

        threading.Thread(target=start, name="nbflow-kernel-template", daemon=True).start()

    def start(
        self,
        kernel_name: str,
        cwd: str,
        log_path: Path,
        on_kernel: Callable[[IPCKernelManager | None], None] = lambda km: None,
        cancelled: Callable[[], bool] = lambda: False,
        env: dict[str, str] | None = None,
    ) -> tuple[IPCKernelManager, Any]:
        """A started kernel that has answered, and a client with its channels open.

        The kernel process's output goes to ``log_path``. ``on_kernel`` is told of the kernel
        as soon as its process exists (so that a cancel can kill it); a cancelled start is
        not tried again. A kernel started ahead of time for this name and folder is taken
        if there is one (never when ``env`` is given).

        Raises
        ------
        KernelStartError
            Two starts in a row failed.
        """
        errors: list[str] = []
        with self._lock:
            warm = self._claimed.pop(log_path, None)
        if warm is None and env is None:
            warm = self._take((kernel_name, str(cwd)))
        if warm is not None:
            warm.launched.wait()
        if warm is not None and env is not None:
            self._drop(warm)
        elif warm is not None and warm.km is not None:
            km = warm.km
            try:
                os.replace(warm.log_path, log_path)
            except OSError as e:
                log.debug("kernel log of a warm kernel: %s", e)
            on_kernel(km)
            try:
                # its control socket was made in the thread that started it
                km._close_control_socket()
                km._connect_control_socket()
                client = self._connect(km)
                self._count("warm")
                return km, client
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}")
                log.warning("a kernel started ahead of time did not answer (%s); starting another", errors[-1])
                self._kill_now(km)
        for _try in range(2 - len(errors)):
            if cancelled():
                raise KernelStartError(kernel_name, errors, stopped=True)
            km = IPCKernelManager(kernel_name=kernel_name)
            with self._slots:
                try:
                    with open(log_path, "ab") as output:
                        _spawn(km, cwd, output, env, self._templates)
                    on_kernel(km)
                    client = self._connect(km)
                    self._count("on demand")
                    self._count_mode(km)
                    return km, client
                except Exception as e:  # a failed start: clean up, try once more
                    errors.append(f"{type(e).__name__}: {e}")
                    log.warning("kernel %r failed to start (%s); trying again", kernel_name, errors[-1])
                    self._kill_now(km)
        raise KernelStartError(kernel_name, errors)

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def _count_mode(self, km: IPCKernelManager) -> None:
        forked = isinstance(km.provisioner, ForkProvisioner) and km.provisioner.fresh_because is None
        self._count("forked" if forked else "fresh")

    @staticmethod
    def _connect(km: IPCKernelManager) -> Any:
        client = km.client()
        # no high-water mark on the client's sockets: a kernel's IOPub (a PUB socket) drops
        # messages, its ``idle`` among them, once the reader falls 1,000 behind; unbounded,
        # a flood waits in this process until it is read (see iopub.py: it is read fast)
        client.context.setsockopt(zmq.RCVHWM, 0)
        client.context.setsockopt(zmq.RECONNECT_IVL, 10)
        client.start_channels()
        try:
            run_sync(wait_until_ready)(client, KERNEL_START_TIMEOUT)
        except BaseException:
            client.stop_channels()
            raise
        client.allow_stdin = False
        return client

    # -- kernels started ahead of time ---------------------------------------------------

    def anticipate(self, needs: Sequence[KernelNeed]) -> None:
        """Keep kernels starting or idle for the first ``warm`` of ``needs``; stop the others."""
        if needs:
            self._prepare_soon({n.kernel_name for n in needs})
        wanted = list(needs[: self._warm_size]) if not self._closing.is_set() else []
        with self._lock:
            left = Counter(n.key for n in wanted)
            keep, drop = [], []
            for w in self._warm:
                if left[w.key] > 0:
                    left[w.key] -= 1
                    keep.append(w)
                else:
                    drop.append(w)
            have = Counter(w.key for w in keep)
            launch = []
            for need in wanted:
                if have[need.key] > 0:
                    have[need.key] -= 1
                elif _memory_available() >= WARM_MIN_AVAILABLE:
                    self._serial += 1
                    w = _Warm(need, need.scratch / f".warm-kernel-{os.getpid()}-{self._serial}.log")
                    keep.append(w)
                    launch.append(w)
            self._warm = keep
        for w in drop:
            self._drop(w)
        for w in launch:
            threading.Thread(target=self._launch, args=(w,), name="nbflow-kernel-warm", daemon=True).start()

    def _launch(self, w: _Warm) -> None:
        try:
            if w.dropped or self._closing.is_set():
                return
            km = IPCKernelManager(kernel_name=w.need.kernel_name)
            w.need.scratch.mkdir(parents=True, exist_ok=True)
            with self._slots, open(w.log_path, "wb") as output:
                _spawn(km, str(w.need.cwd), output, None, self._templates)
            w.km = km
            self._count("ahead")
            self._count_mode(km)
        except Exception as e:  # the task that wanted it starts its own
            log.debug("a kernel started ahead of time failed: %s", e)
        finally:
            w.launched.set()
            close_thread_event_loop()

    def claim(self, kernel_name: str, cwd: str, log_path: Path) -> None:
        """Set aside a kernel started ahead of time (if any) for the start that will log to ``log_path``.

        Called as a task is submitted, so that the next :meth:`anticipate` does not count
        that kernel as free for another task.
        """
        w = self._take((kernel_name, str(cwd)))
        if w is not None:
            with self._lock:
                self._claimed[log_path] = w

    def _take(self, key: tuple[str, str]) -> _Warm | None:
        with self._lock:
            for i, w in enumerate(self._warm):
                if w.key == key:
                    return self._warm.pop(i)
        return None

    def _drop(self, w: _Warm) -> None:
        w.dropped = True

        def stop() -> None:
            w.launched.wait()
            if w.km is not None:
                w.km.signal_group(signal.SIGTERM)
                self._reap(w.km)
            w.log_path.unlink(missing_ok=True)

        self._track(threading.Thread(target=stop, name="nbflow-kernel-reaper", daemon=True))

    def _track(self, thread: threading.Thread) -> None:
        with self._lock:
            self._reapers = [t for t in self._reapers if t.is_alive()]
            self._reapers.append(thread)
        thread.start()

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
        self._track(threading.Thread(target=self._reap, args=(km,), name="nbflow-kernel-reaper", daemon=True))

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
        """Stop the kernels no task took; wait for every kernel to be gone (hurrying those that linger)."""
        self.anticipate([])
        self._closing.set()
        with self._lock:
            unclaimed, self._claimed = list(self._claimed.values()), {}
        for w in unclaimed:
            self._drop(w)
        with self._lock:
            reapers = list(self._reapers)
        for reaper in reapers:
            reaper.join()
        if self._templates is not None:
            self._templates.close()
