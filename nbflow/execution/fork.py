"""Kernels forked from a warm template (``kernel_start = "fork"``), the runner's side.

A :class:`KernelTemplate` is one process per launcher (so per run, or per Dask worker)
that imported ipykernel and the ``preload`` modules once (:mod:`.forkserver`). Each
notebook attempt still gets its own new kernel process, forked from it: fresh globals,
its own connection file, ZMQ context, process group, working directory and environment.

It plugs into jupyter_client as a kernel provisioner (:class:`ForkProvisioner`): the
kernel manager, its connection file, its client and nbclient are the same as for a fresh
kernel; only the process comes from a fork instead of ``Popen``. A kernel the template
cannot make exactly as ``Popen`` would (another interpreter, another kernelspec such as
R's, an environment that changes how Python starts) is started fresh, automatically.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jupyter_client.provisioning.local_provisioner import LocalProvisioner

from nbflow.errors import KernelTemplateError

log = logging.getLogger("nbflow.execution")

#: seconds the template may take to import ipykernel and the preload modules
TEMPLATE_START_TIMEOUT = 120.0
#: preload modules whose native thread pools are stopped and restarted around a fork
#: (OpenBLAS and jemalloc register fork handlers), so they may leave such threads running
NATIVE_FORK_SAFE = frozenset({"numpy", "scipy", "pandas", "pyarrow", "sklearn", "polars"})
#: environment variables Python reads only as it starts: a kernel asked for with other
#: values than the template's is started fresh
STARTUP_VARIABLES = (
    "PYTHONHASHSEED",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSAFEPATH",
    "PYTHONOPTIMIZE",
    "PYTHONDEBUG",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONINSPECT",
    "PYTHONIOENCODING",
    "PYTHONNOUSERSITE",
    "PYTHONUSERBASE",
    "PYTHONUNBUFFERED",
    "PYTHONUTF8",
    "PYTHONWARNINGS",
    "PYTHONDEVMODE",
    "PYTHONMALLOC",
    "PYTHONFAULTHANDLER",
    "PYTHONTRACEMALLOC",
    "PYTHONPLATLIBDIR",
    "PYTHONSTARTUP",
    "PYTHONEXECUTABLE",
    "PYTHONINTMAXSTRDIGITS",
    "PYTHONNODEBUGRANGES",
    "PYTHONPYCACHEPREFIX",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "MALLOC_ARENA_MAX",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def fork_supported() -> bool:
    """Forking kernels needs a Unix with ``fork`` and Unix sockets (not Windows, not macOS's
    spawn-only frameworks); elsewhere every kernel starts fresh."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def split_command(cmd: Sequence[str], env: Mapping[str, str], python: str) -> tuple[tuple[str, ...], list[str]] | str:
    """A kernel command ``PYTHON [OPTIONS] -m ipykernel_launcher ARGS`` as its interpreter
    options and ipykernel's arguments, if a template running ``python`` with those options
    can fork that kernel; else why not (it is then started fresh)."""
    if not cmd:
        return "its kernelspec has no command"
    exe = cmd[0] if os.path.isabs(cmd[0]) else shutil.which(cmd[0], path=env.get("PATH"))
    if exe is None or os.path.realpath(exe) != os.path.realpath(python):
        return f"its kernelspec runs another program ({cmd[0]})"
    options: list[str] = []
    i = 1
    while i < len(cmd) and cmd[i] != "-m":
        option = cmd[i]
        if not option.startswith("-") or option in ("-c", "-"):
            return f"its kernelspec runs {option!r}, not ipykernel_launcher"
        options.append(option)
        if option in ("-X", "-W") and i + 1 < len(cmd):
            i += 1
            options.append(cmd[i])
        i += 1
    if cmd[i + 1 : i + 2] != ["ipykernel_launcher"]:
        return "its kernelspec does not start ipykernel_launcher"
    for name in STARTUP_VARIABLES:
        if env.get(name) != os.environ.get(name):
            return f"its environment sets {name}, which Python reads only as it starts"
    return tuple(options), list(cmd[i + 2 :])


class ForkedProcess:
    """A forked kernel, seen as a ``subprocess.Popen``: ``pid``, ``poll``, ``wait``, signals.

    The kernel is the template's child, not ours: its exit status comes from the template
    over this kernel's own connection.
    """

    stdin = stdout = stderr = None

    def __init__(self, conn: socket.socket, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._conn = conn
        self._buffer = b""
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        return self._check(0.0)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            code = self._check(0.5 if left is None else min(0.5, left))
            if code is not None:
                return code
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout or 0)

    def _check(self, timeout: float) -> int | None:
        with self._lock:
            if self.returncode is not None:
                return self.returncode
            if not select.select([self._conn], [], [], timeout)[0]:
                return None
            chunk = self._conn.recv(4096)
            self._buffer += chunk
            if b"\n" in self._buffer:
                status = json.loads(self._buffer.split(b"\n", 1)[0]).get("exit")
                self.returncode = os.waitstatus_to_exitcode(status) if isinstance(status, int) else -signal.SIGKILL
            elif not chunk:  # the template is gone, and took its kernels with it
                self.returncode = -signal.SIGKILL
            if self.returncode is not None:
                self._conn.close()
            return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class KernelTemplate:
    """The template process: started on first use, stopped by :meth:`close` (or with us)."""

    def __init__(self, preload: Sequence[str] = (), options: Sequence[str] = ()) -> None:
        self.preload = tuple(preload)
        #: the interpreter's options (``-Xfrozen_modules=off``, ...), as the kernelspec gives them
        self.options = tuple(options)
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._starting: subprocess.Popen[bytes] | None = None  # loading, not yet ready
        self._killed = False
        self._dir: str | None = None
        self._socket = ""
        self._refused: str | None = None
        #: why the template could not start (kernels then start fresh, without trying again)
        self._failed: str | None = None
        self.pid: int | None = None
        #: the native threads each preload module started (allowed: :data:`NATIVE_FORK_SAFE`)
        self.native_threads: dict[str, int] = {}
        #: why preload modules were left out (their native threads might not survive a fork)
        self.left_out: list[str] = []

    def start(self) -> None:
        """Start the template and wait until it has loaded.

        Raises
        ------
        KernelTemplateError
            A preload module cannot be forked safely (or could not be imported), or the
            template did not start (then it is not tried again: kernels start fresh). A
            template that was ready and has died since is started again.
        """
        with self._lock:
            while True:
                if self._refused is not None:
                    raise KernelTemplateError(self._refused, refused=True)
                if self._failed is not None:
                    raise KernelTemplateError(self._failed)
                if self._process is not None:
                    if self._process.poll() is None:
                        return
                    self._stopped(self._process)  # it died: its kernels with it; a new one
                    self._process = None
                    if self._dir is not None:
                        shutil.rmtree(self._dir, ignore_errors=True)
                leave_out = self._start_locked()
                if leave_out is None:
                    return
                # a module whose native threads may not survive a fork: fall back to not preloading it
                log.warning("nbflow: warning: %s", leave_out)
                self.left_out.append(leave_out)

    def _start_locked(self) -> str | None:
        """Start the template once; the message of a module it asks to leave out, if any."""
        self._dir = tempfile.mkdtemp(prefix="nbflow-template-")
        self._socket = os.path.join(self._dir, "s")
        with open(os.path.join(self._dir, "template.log"), "wb") as log_file:
            process = subprocess.Popen(
                [
                    sys.executable,
                    *self.options,
                    "-m",
                    "nbflow.execution.forkserver",
                    self._socket,
                    ",".join(sorted(NATIVE_FORK_SAFE)),
                    *self.preload,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                cwd=self._dir,
                start_new_session=True,
            )
        self._starting = process
        assert process.stdout is not None
        ready = select.select([process.stdout], [], [], TEMPLATE_START_TIMEOUT)[0]
        line = process.stdout.readline() if ready else b""
        process.stdout.close()
        self._starting = None
        try:
            message = json.loads(line) if line else {}
        except ValueError:
            message = {}
        if "ready" not in message:
            process.kill()
            self._stopped(process)
            detail = message.get("refused") or self._log_tail() or "it did not say it was ready"
            shutil.rmtree(self._dir, ignore_errors=True)
            if message.get("leave_out") in self.preload:
                self.preload = tuple(m for m in self.preload if m != message["leave_out"])
                return str(detail)
            if self._killed:
                raise KernelTemplateError("the kernel template was stopped")
            if "refused" in message:
                self._refused = detail
            else:
                self._failed = f"the kernel template did not start: {detail}"
                log.warning("nbflow: warning: %s; notebook kernels start fresh instead", self._failed)
            raise KernelTemplateError(self._failed or detail, refused="refused" in message)
        self._process = process
        self.pid = int(message["ready"])
        self.native_threads = dict(message.get("native_threads") or {})
        return None

    @staticmethod
    def _stopped(process: subprocess.Popen[bytes]) -> None:
        """Reap a template process that is gone (or killed) and close our end of its lifeline."""
        process.wait()
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()

    def _log_tail(self) -> str:
        try:
            with open(os.path.join(self._dir or "", "template.log"), "rb") as f:
                return f.read()[-2000:].decode(errors="replace").strip()
        except OSError:
            return ""

    def fork(self, argv: Sequence[str], env: Mapping[str, str], cwd: str, log_path: str) -> ForkedProcess:
        """A new kernel process running ipykernel with ``argv`` (what follows ``-m ipykernel_launcher``)."""
        self.start()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.settimeout(30)
            conn.connect(self._socket)
            request = {"argv": list(argv), "env": dict(env), "cwd": str(cwd), "log": str(log_path)}
            conn.sendall(json.dumps(request).encode() + b"\n")
            line = b""
            while not line.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    raise KernelTemplateError(f"the kernel template stopped answering ({self._log_tail()[-300:]})")
                line += chunk
            conn.settimeout(None)
            answer = json.loads(line)
        except (OSError, ValueError) as e:
            conn.close()
            raise KernelTemplateError(f"the kernel template did not fork a kernel: {e}") from e
        if "pid" not in answer:
            conn.close()
            raise KernelTemplateError(str(answer.get("error", answer)))
        return ForkedProcess(conn, int(answer["pid"]))

    def kill(self) -> None:
        """Stop the template now, loaded or not (one started early that no run took)."""
        self._killed = True
        for process in (self._starting, self._process):
            if process is not None:
                with contextlib.suppress(OSError):
                    process.kill()
        self.close()

    def close(self) -> None:
        """Stop the template; kernels it forked that are still running are killed with it."""
        with self._lock:
            process, self._process = self._process, None
            if process is not None:
                assert process.stdin is not None
                process.stdin.close()  # the lifeline: it kills its kernels and exits
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None


def kernel_options(kernel_name: str) -> tuple[str, ...] | None:
    """The interpreter options of ``kernel_name``'s kernelspec, if a template can fork its
    kernels (None: they start fresh)."""
    from jupyter_client.kernelspec import KernelSpecManager

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except Exception:
        return None
    argv = list(spec.argv)
    if argv and argv[0] in ("python", f"python{sys.version_info[0]}"):
        argv = [sys.executable, *argv[1:]]  # as jupyter_client's format_kernel_cmd does
    split = split_command(argv, {**os.environ, **(spec.env or {})}, sys.executable)
    return None if isinstance(split, str) else split[0]


_early_lock = threading.Lock()
#: templates started before their run asked, by (interpreter options, preload)
_early: dict[tuple[tuple[str, ...], tuple[str, ...]], KernelTemplate] = {}


def start_early(kernel_names: Iterable[str], preload: Sequence[str] = ()) -> None:
    """Start, in the background, the templates these kernels will be forked from, so that
    they have loaded by the time the run asks (the ``nbflow`` command calls it as soon as it
    has read the pipeline). The run's launcher takes them over; one that no run takes is
    killed when this process exits. Its failures show when a run uses it."""

    if not fork_supported():
        return
    templates = []
    for name in sorted(set(kernel_names)):  # registered now, so the run's launcher finds them
        options = kernel_options(name)
        if options is None:
            continue
        with _early_lock:
            key = (options, tuple(preload))
            if key not in _early:
                templates.append(_early.setdefault(key, KernelTemplate(preload, options)))

    def start() -> None:
        for template in templates:
            with contextlib.suppress(KernelTemplateError):
                template.start()

    if templates:
        threading.Thread(target=start, name="nbflow-kernel-template", daemon=True).start()


def _take_early(options: tuple[str, ...], preload: tuple[str, ...]) -> KernelTemplate | None:
    with _early_lock:
        return _early.pop((options, preload), None)


@atexit.register
def drop_early() -> None:
    """Kill the templates started early that no run took (called as a run ends, and at exit)."""
    with _early_lock:
        left = list(_early.values())
        _early.clear()
    for template in left:
        template.kill()


class KernelTemplates:
    """The templates of one launcher: one per set of interpreter options (most often one)."""

    def __init__(self, preload: Sequence[str] = ()) -> None:
        self.preload = tuple(preload)
        self._lock = threading.Lock()
        self._templates: dict[tuple[str, ...], KernelTemplate] = {}

    def get(self, options: Sequence[str]) -> KernelTemplate:
        with self._lock:
            key = tuple(options)
            if key not in self._templates:
                self._templates[key] = _take_early(key, self.preload) or KernelTemplate(self.preload, key)
            return self._templates[key]

    def for_kernel(self, kernel_name: str) -> KernelTemplate | None:
        """The template that would fork ``kernel_name``'s kernels (None: they start fresh)."""
        options = kernel_options(kernel_name)
        return None if options is None else self.get(options)

    def close(self) -> None:
        with self._lock:
            templates, self._templates = list(self._templates.values()), {}
        for template in templates:
            template.close()


class ForkProvisioner(LocalProvisioner):  # type: ignore[misc]
    """jupyter_client's local provisioner, whose kernel process is forked from a template
    when it can be (else started as usual, with ``Popen``)."""

    templates: KernelTemplates | None = None
    #: why the last launch started fresh (None: it was forked)
    fresh_because: str | None = None

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        env = dict(kwargs.get("env") or os.environ)
        env["JPY_PARENT_PID"] = str(os.getpid())  # as jupyter_client's launch_kernel sets it for a fresh kernel
        split = split_command(cmd, env, sys.executable) if self.templates is not None else "no template"
        reason = split if isinstance(split, str) else None
        if not isinstance(split, str) and self.templates is not None:
            options, argv = split
            try:
                process = self.templates.get(options).fork(
                    argv, env, str(kwargs.get("cwd") or os.getcwd()), _log_path(kwargs)
                )
            except KernelTemplateError as e:
                if e.refused:
                    raise
                reason = str(e)
            else:
                self.process = process  # type: ignore[assignment]
                self.pid = self.pgid = process.pid
                self.cwd = kwargs.get("cwd")
                self.fresh_because = None
                return self.connection_info
        self.fresh_because = reason
        log.debug("kernel started fresh: %s", reason)
        return await super().launch_kernel(cmd, **kwargs)


def _log_path(kwargs: Mapping[str, Any]) -> str:
    """The file the kernel's own output goes to (the ``stdout`` a fresh start would get)."""
    out = kwargs.get("stdout")
    name = getattr(out, "name", None)
    if isinstance(name, str):
        return name
    return os.devnull
