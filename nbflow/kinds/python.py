"""The Python kind: a function declared in code, run in a forked child process.

A child process (forked, so the function needs no import path: one defined in a notebook
or a script works) can be killed by a cancel or a timeout like a kernel, and a crash in it
is an ordinary failed attempt. Its stdout and stderr go to the attempt's log. The function
gets ``upstream`` and ``product`` if its signature asks for them, and its parameters.

The process writes its output and its error raw (it reaches its connections through the
environment, and may print their URIs); once it ends, its log is rewritten masked and its
error is masked as it is read, so that no credential stays in the run folder.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import json
import os
import shutil
import sys
import traceback as tb
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbflow import states
from nbflow.execution.base import (
    AttemptControl,
    AttemptOutcome,
    TaskRequest,
    request_redactor,
    stopped_outcome,
    utcnow,
)
from nbflow.execution.logs import read_log_tail
from nbflow.kinds.base import CodeKind
from nbflow.paths import AttemptPaths
from nbflow.project.code import DeclaredTask, TaskCall, declared_task, function_defaults, literal
from nbflow.project.secrets import Redactor
from nbflow.project.specs import RESERVED_NAMES, Product, TaskSpec

if TYPE_CHECKING:
    from nbflow.execution.kernels import KernelLauncher


class PythonKind(CodeKind):
    """A Python function declared in code (``@pipeline.task``, ``add_task("python", name, func=f)``)."""

    name = "python"
    noun = "Python task"
    starts_process = True
    facade = "task"
    decorates = True
    arguments = frozenset({"func"})

    def declare_task(
        self,
        path: Path,
        name: str,
        arguments: Mapping[str, Any],
        *,
        upstream: Sequence[str] = (),
        product: Product = None,
        settings: Mapping[str, Any] | None = None,
    ) -> TaskSpec:
        """The spec of a function task (see :meth:`nbflow.Pipeline.task`), ``func`` in ``arguments``:
        its parameters are the arguments with a default; its code, the function's source."""
        func = arguments.get("func")
        if not callable(func):
            raise TypeError(f"the Python task {name!r} needs func=, the function it runs")
        sig = inspect.signature(func)
        defaults = {
            p.name: repr(p.default)
            for p in sig.parameters.values()
            if p.default is not p.empty and p.name not in RESERVED_NAMES
        }
        try:
            source = inspect.getsource(func)
        except (OSError, TypeError):
            source = func.__qualname__
        return self.declare(
            path,
            name,
            target=func,
            upstream=upstream,
            product=product,
            defaults=defaults,
            source=source,
            settings=settings,
        )

    def read_call(self, call: TaskCall) -> DeclaredTask | str:
        """``@pipeline.task(...)`` on a function, ``pipeline.task(...)(f)``, ``pipeline.task(f)``,
        ``pipeline.add_task("python", "name", func=f, ...)``; the parameters of a decorated
        function are its arguments with a literal default."""
        name: Any = call.name
        function_name = call.function_name
        if name is None and function_name is None and call.function is None:  # pipeline.task(f)
            if call.args and isinstance(call.args[0], ast.Name):
                function_name = call.args[0].id
            else:
                return "a task registered in a way read only by running it"
        if name is None:
            name = function_name
            if "name" in call.keywords:
                ok, name = literal(call.keywords["name"])
        if not isinstance(name, str) or not name:
            return "a task whose name is not a literal"
        defaults = function_defaults(call.function) if call.function is not None else {}
        return declared_task(self.name, name, call.keywords, defaults, call.line)

    def run(self, request: TaskRequest, control: AttemptControl, launcher: KernelLauncher | None) -> AttemptOutcome:
        return run_function(request, control)


#: the python kind (the registry's, :data:`nbflow.kinds.KINDS`)
PYTHON = PythonKind()


def call_arguments(func: Any, parameters: dict[str, Any]) -> dict[str, Any]:
    """The injected values the function's signature takes (all of them if it takes ``**kwargs``)."""
    sig = inspect.signature(func)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return dict(parameters)
    return {k: v for k, v in parameters.items() if k in sig.parameters}


def _child(func: Any, kwargs: dict[str, Any], cwd: str, log_path: str, result_path: str) -> None:
    code = 0
    try:
        os.chdir(cwd)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        # the parent's sys.stdout may not be fd 1 (a notebook's, a test runner's): use the log
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        try:
            func(**kwargs)
            result: dict[str, Any] = {"ok": True}
        except BaseException as e:  # everything the function raises is the task's failure
            result = {
                "ok": False,
                "ename": type(e).__name__,
                "evalue": str(e),
                "traceback": "".join(tb.format_exception(e)),
            }
        sys.stdout.flush()
        sys.stderr.flush()
        Path(result_path).write_text(json.dumps(result))
    except BaseException:
        code = 1
    finally:
        os._exit(code)  # never run the parent's cleanup in the child


#: characters of a file read at a time while it is masked
REDACT_CHUNK = 1 << 20


def redact_file(path: Path, redactor: Redactor, chunk: int = REDACT_CHUNK) -> None:
    """Mask the secrets in a text file that a process wrote, streamed a chunk at a time (a
    secret cut by a chunk's end is still found whole); replaced atomically, and only if it
    held a secret. Bytes that are not UTF-8 are kept as they were."""
    if not redactor:
        return
    scratch = path.with_name(f".{path.name}.masking")
    changed = False
    try:
        with (
            open(path, encoding="utf-8", errors="surrogateescape", newline="") as source,
            open(scratch, "w", encoding="utf-8", errors="surrogateescape", newline="") as masked,
        ):
            pending = ""
            while text := source.read(chunk):
                combined = pending + text
                redacted = redactor.text(combined)
                changed = changed or redacted != combined
                keep = redactor.partial_end(redacted)
                pending = redacted[len(redacted) - keep :] if keep else ""
                masked.write(redacted[: len(redacted) - keep])
            masked.write(pending)
        if changed:
            shutil.copymode(path, scratch)
            # a process still holding the file (one the task started) writes on to the old one
            os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


def _read_result(path: Path, redactor: Redactor) -> dict[str, Any] | None:
    """What the task's process handed back, its error masked; the file is removed once read."""
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    finally:
        path.unlink(missing_ok=True)
    if not isinstance(result, dict) or "ok" not in result:
        return None
    if redactor:
        for key in ("evalue", "traceback"):
            if isinstance(result.get(key), str):
                result[key] = redactor.text(result[key])
    return result


def run_function(request: TaskRequest, control: AttemptControl) -> AttemptOutcome:
    """Run one attempt of a function task; never raises for anything the function does."""
    import multiprocessing

    started = utcnow()
    request.log_path.parent.mkdir(parents=True, exist_ok=True)
    result_path = AttemptPaths.of_log(request.log_path).result
    result_path.unlink(missing_ok=True)
    kwargs = call_arguments(request.target, request.parameters)
    ctx = multiprocessing.get_context("fork")
    process = ctx.Process(
        target=_child, args=(request.target, kwargs, str(request.cwd), str(request.log_path), str(result_path))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork in a threaded process: the child only runs the task
        process.start()
    control.attach(process.kill)
    process.join()
    control.attach(None)
    state, error, traceback, ename = states.SUCCESS, None, None, None
    redactor = request_redactor(request)
    result = _read_result(result_path, redactor)
    problem = None
    if redactor and request.log_path.exists():
        try:
            redact_file(request.log_path, redactor)
        except OSError as e:  # a full disk: the log may still hold a secret, so this attempt fails
            problem = e
    if result is None:
        state, ename = states.FAILED, "ProcessDied"
        error = f"ProcessDied: the task's process ended with exit code {process.exitcode} before it finished"
    elif not result["ok"]:
        state, ename = states.FAILED, result["ename"]
        error, traceback = f"{result['ename']}: {result['evalue']}", result["traceback"]
    if problem is not None and state == states.SUCCESS:
        state, ename = states.FAILED, type(problem).__name__
        error = f"{ename}: the task's log could not be masked, so it was removed: {problem}"
    state, error, ename = stopped_outcome(control, request, state, error, ename, "its process was killed")
    try:
        log = read_log_tail(request.log_path) if request.log_path.exists() else ""
    except OSError:
        log = ""
    if problem is not None:  # its tail is masked on its way to the store; the raw file is not kept
        with contextlib.suppress(OSError):
            request.log_path.unlink(missing_ok=True)
    return AttemptOutcome(state, started, utcnow(), error=error, traceback=traceback, log=log, ename=ename)
