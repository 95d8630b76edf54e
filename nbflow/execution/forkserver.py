"""The kernel template: a process that has imported ipykernel (and the ``preload`` modules)
once, and forks a brand-new kernel process for each notebook attempt.

Run as ``python -m nbflow.execution.forkserver SOCKET [MODULE ...]`` by
:class:`nbflow.execution.fork.KernelTemplate`, never by hand. It imports nothing of
nbflow's beyond this file, so it holds no thread, no ZMQ context and no event loop when it
forks (each is checked before it says it is ready).

The protocol, all JSON lines:

* on stdout, once: ``{"ready": pid, ...}`` or ``{"refused": message}`` (a preload module
  that left a thread running, say); then stdout is closed;
* its stdin is the lifeline: when the runner's end closes (the runner exited, or was
  killed), every kernel it forked is killed with its process group, and it exits;
* on its Unix socket, one connection per kernel: the runner sends
  ``{"argv", "env", "cwd", "log"}``; the answer is ``{"pid": pid}`` (or ``{"error": ...}``),
  and later ``{"exit": wait status}`` when that kernel has exited.

In the child, before ipykernel's own start-up, everything a fresh ``python -m
ipykernel_launcher`` would have set is set: its own session and process group, stdio to
the kernel log, the working directory, the environment, ``sys.argv`` and ``sys.path[0]``,
fresh seeds for ``random`` (Python reseeds it at fork) and NumPy's global generator, and a
parent-death signal so that it never outlives the template.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import importlib.util
import json
import os
import selectors
import signal
import socket
import sys
import threading
from typing import Any

#: what ipykernel's start-up imports, imported once here instead of in every kernel
KERNEL_MODULES = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.comm",
    "ipykernel.iostream",
    "ipykernel.heartbeat",
    "ipykernel.debugger",
    "ipykernel.eventloops",
    "ipykernel.displayhook",
    "ipykernel.kernelbase",
    "IPython.core.interactiveshell",
    "IPython.core.completer",
    "IPython.core.magics",
    "IPython.core.history",
    "IPython.core.display",
    "IPython.core.formatters",
    "IPython.core.debugger",
    "matplotlib_inline.backend_inline",
    "comm",
    "jupyter_client.session",
    "jupyter_client.connect",
    "zmq.eventloop.zmqstream",
    "tornado.ioloop",
    "anyio",
    "IPython.core.completerlib",
    "IPython.core.logger",
    "IPython.core.oinspect",
    "IPython.extensions.storemagic",
    "IPython.utils.wildcard",
    "sqlite3",
    "faulthandler",
    "runpy",
    "tornado.platform.asyncio",
)
#: Linux's prctl(2) options: a signal to a process when its parent exits; a process's name
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
#: the process name (``ps -o comm``, ``top``, psutil's ``name()``) of a forked kernel and of
#: the template: their command line is the template's, ``python -m nbflow.execution.forkserver``
KERNEL_NAME = b"nbflow-kernel"
TEMPLATE_NAME = b"nbflow-template"


class Refused(Exception):
    """The template cannot safely fork after this preload.

    ``leave_out``: the module to leave out of ``preload`` and start again without (its
    native threads may be fork-safe or not: nbflow cannot tell); None: the settings are
    refused as they are.
    """

    def __init__(self, message: str, leave_out: str | None = None) -> None:
        super().__init__(message)
        self.leave_out = leave_out


def native_threads() -> int:
    """Threads of this process, those started by C libraries included (Linux)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def load(kernel_modules: tuple[str, ...], preload: list[str], native_ok: frozenset[str]) -> dict[str, int]:
    """Import ipykernel's start-up modules, then each ``preload`` module, checking that no
    thread is left running; the native threads each preload module started (allowed for the
    ``native_ok`` ones, whose libraries stop and restart their pools around a fork).

    Raises
    ------
    Refused
        A module started a Python thread, or an unlisted module a native one, or one
        created a ZMQ context: a fork would copy a process whose other threads vanish.
    """
    for name in kernel_modules:
        try:
            importlib.import_module(name)
        except ImportError:
            continue  # an optional part this ipykernel does not have
    started: dict[str, int] = {}
    for name in preload:
        before = native_threads()
        try:
            importlib.import_module(name)
        except Exception as e:
            raise Refused(f"preload module {name!r} could not be imported: {type(e).__name__}: {e}") from None
        python = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        if python:
            raise Refused(
                f"preload module {name!r} started {len(python)} thread(s) at import ({', '.join(python)}); "
                "a process with threads cannot be forked safely. Take it out of `preload` "
                '(the notebooks still import it themselves), or set kernel_start = "fresh".'
            )
        added = native_threads() - before
        if added > 0:
            if name.partition(".")[0] not in native_ok:
                raise Refused(
                    f"preload module {name!r} started {added} native thread(s) at import, and it is not known "
                    "to stop them around a fork: it is not preloaded (the notebooks import it themselves)",
                    leave_out=name,
                )
            started[name] = added
    _check_quiet()
    return started


def _check_quiet() -> None:
    """Refuse to fork with a ZMQ context or a running event loop in this process."""
    zmq = sys.modules.get("zmq")
    if zmq is not None and getattr(zmq.Context, "_instance", None) is not None:
        raise Refused("a ZMQ context exists in the kernel template (made by a preload module); it cannot be forked")
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise Refused("an event loop is running in the kernel template; it cannot be forked")


def _prctl(option: int, value: int | bytes) -> None:
    # not Linux: the lifeline still kills the kernels; their names stay the template's
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def become_kernel(
    request: dict[str, Any], template_pid: int, template_path0: str, launcher: str, imported_env: dict[str, str]
) -> None:
    """In the forked child: turn into the kernel a fresh ``python -m ipykernel_launcher`` would be.

    ``imported_env``: the variables the template's imports set (``debugpy`` sets one), which a
    fresh kernel's own imports would have set where its environment does not. Never returns.
    """
    code = 1
    try:
        os.setsid()
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        _prctl(PR_SET_NAME, KERNEL_NAME)
        if os.getppid() != template_pid:  # the template died before the signal was armed
            os._exit(1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for name, value in imported_env.items():
            os.environ.setdefault(name, value)
        argv = list(request["argv"])
        sys.argv = [launcher, *argv]
        sys.orig_argv = [sys.executable, "-m", "ipykernel_launcher", *argv]
        # ``python -m`` put the template's folder first on the path, as it would have put the
        # notebook's; ipykernel_launcher takes it out and IPython puts '' back (init_path)
        if sys.path and sys.path[0] == template_path0:
            del sys.path[0]
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            numpy.random.seed()  # from the OS's entropy, as a fresh import would
        gc.enable()  # the template's objects stay frozen: no collection here writes to their pages
        from ipykernel import kernelapp

        kernelapp.launch_new_instance()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


class Template:
    """The fork loop: accept a request, fork a kernel, report its pid and later its exit."""

    def __init__(self, listener: socket.socket, path0: str, launcher: str, imported_env: dict[str, str]) -> None:
        self.listener = listener
        self.path0 = path0
        self.launcher = launcher
        self.imported_env = imported_env
        self.pid = os.getpid()
        self.kernels: dict[int, socket.socket] = {}
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)

    def serve(self) -> None:
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self._wake_w)
        self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "lifeline")
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self._wake_r, selectors.EVENT_READ, "child")
        try:
            while True:
                for key, _ in self.selector.select():
                    if key.data == "lifeline":
                        if not os.read(sys.stdin.fileno(), 4096):
                            return
                    elif key.data == "accept":
                        self._accept()
                    elif key.data == "child":
                        try:
                            while os.read(self._wake_r, 4096):
                                pass
                        except BlockingIOError:
                            pass
                    self._reap()
        finally:
            self._kill_all()

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        try:
            conn.settimeout(10)
            request = json.loads(_read_line(conn))
            conn.settimeout(None)
        except (OSError, ValueError) as e:
            _send(conn, {"error": f"bad request: {e}"})
            conn.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as e:
            _send(conn, {"error": f"fork failed: {e}"})
            conn.close()
            return
        if pid == 0:
            self.listener.close()
            conn.close()
            for other in self.kernels.values():
                other.close()
            self.selector.close()
            signal.set_wakeup_fd(-1)
            os.close(self._wake_r)
            os.close(self._wake_w)
            become_kernel(request, self.pid, self.path0, self.launcher, self.imported_env)
        self.kernels[pid] = conn
        _send(conn, {"pid": pid})

    def _reap(self) -> None:
        while self.kernels:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.kernels.pop(pid, None)
            if conn is not None:
                _send(conn, {"exit": status})
                conn.close()

    def _kill_all(self) -> None:
        for pid in list(self.kernels):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            raise ValueError("the request ended early")
        data += chunk
    return data


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # the runner's end is gone; the lifeline tells the rest
        conn.sendall(json.dumps(message).encode() + b"\n")


def main(argv: list[str]) -> int:
    """``SOCKET NATIVE_OK MODULE...``: load, say ready (or refused), serve until the lifeline closes."""
    # no collection while loading (it would leave freed holes in pages the kernels share),
    # then everything loaded is frozen: the kernels' collections never touch it (gc docs)
    gc.disable()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle
    _prctl(PR_SET_NAME, TEMPLATE_NAME)
    path0 = sys.path[0] if sys.path else ""
    socket_path, native_ok, preload = argv[0], frozenset(filter(None, argv[1].split(","))), argv[2:]
    out = sys.stdout
    environ = dict(os.environ)
    try:
        started = load(KERNEL_MODULES, preload, native_ok)
    except Refused as e:
        out.write(json.dumps({"refused": str(e), "leave_out": e.leave_out}) + "\n")
        out.flush()
        return 2
    gc.freeze()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    spec = importlib.util.find_spec("ipykernel_launcher")
    launcher = (spec.origin if spec is not None else None) or "ipykernel_launcher.py"
    out.write(json.dumps({"ready": os.getpid(), "python": sys.executable, "native_threads": started}) + "\n")
    out.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # the runner reads no more of it
    imported_env = {k: v for k, v in os.environ.items() if environ.get(k) != v}
    Template(listener, path0, launcher, imported_env).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
