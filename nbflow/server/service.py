"""What the JupyterLab panel asks of nbflow, apart from HTTP: one object per server.

Every path comes from the browser, relative to the server's root directory, and is
resolved (symlinks too) and refused unless it stays inside that root; so is every file
nbflow reads or writes for it (the folder's settings and tasks file, its ``_nbflow/``
state, the notebooks, a log file the store names). Runs go to a separate ``nbflow run``
process, so the server stays responsive and a server restart loses nothing: the run
records itself in the pipeline's state store as from a terminal.

Looking is never running: the GET routes (``dag``, ``status``, ``log``, ``grid``, ``timeline``,
``trend``, ``inputs``, ``info``) run no
code of the folder (``nbflow_tasks.py`` is read with ``ast``, never imported; nothing is
unpickled) and write nothing into it (no cache, no state folder, a read-only store).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbflow import __version__, states
from nbflow.errors import (
    ChildRunFailedError,
    InvalidRequestError,
    NbflowError,
    NotAPipelineFolderError,
    NotATaskError,
    OutsideFolderError,
    PathOutsideRootError,
    PipelineValidationError,
    RunNotFoundError,
    RunNotGoingOnError,
    UnknownTaskError,
    ValidationProblem,
)
from nbflow.paths import StateDir, is_inside
from nbflow.views.json import panel_run_json

#: what nbflow reads or writes in a pipeline folder, besides its notebooks: each must stay inside the root
OWN_PATHS = (
    "nbflow.toml",
    "pyproject.toml",
    "nbflow_tasks.py",
    *(own.as_posix() for own in StateDir("").own_paths()),
)


class NbflowService:
    """The panel's operations on the pipelines below ``root``."""

    #: seconds a run request waits for the new run's record (and for an early error)
    START_WAIT_S = 15.0

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    # -- paths -------------------------------------------------------------------------

    def resolve(self, path: str, must_be_dir: bool = True) -> Path:
        """The absolute path of ``path`` (relative to the root), refused if it leaves the root.

        Raises
        ------
        PathOutsideRootError, NotAPipelineFolderError
        """
        if not isinstance(path, str) or "\x00" in path:
            raise InvalidRequestError("'path' must be a text path relative to the server's root.")
        if Path(path).is_absolute() or path.startswith("~"):
            raise PathOutsideRootError(path)
        full = (self.root / path).resolve()
        if full != self.root and self.root not in full.parents:
            raise PathOutsideRootError(path)
        if must_be_dir and not full.is_dir():
            raise NotAPipelineFolderError(path)
        return full

    def pipeline_folder(self, path: str) -> Path:
        """:meth:`resolve` a pipeline folder, and refuse it if a file nbflow reads or writes
        there (settings, ``nbflow_tasks.py``, ``_nbflow/`` and its store) leads outside the root.

        Raises
        ------
        PathOutsideRootError, NotAPipelineFolderError
        """
        folder = self.resolve(path)
        for name in OWN_PATHS:
            own = folder / name
            if own.is_symlink() and not is_inside(own, self.root):
                raise PathOutsideRootError(f"{path.rstrip('/')}/{name}" if path.strip("/") else name)
        return folder

    def relative(self, path: str | os.PathLike[str] | None) -> str | None:
        """A path as the browser knows it (relative to the root), or None outside the root."""
        if not path:
            return None
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return None

    # -- the DAG -----------------------------------------------------------------------

    def dag(self, path: str, direction: str = "LR") -> dict[str, Any]:
        """The pipeline in ``path``: its tasks, edges, the SVG layout, declared parameters, problems.

        ``direction``: ``LR`` or ``TB`` (the panel, in a narrow sidebar, asks for ``TB``).
        """
        if direction not in ("LR", "TB"):
            raise InvalidRequestError("'direction' must be LR or TB.")
        from nbflow.pipeline import Pipeline
        from nbflow.views.live import declared_parameters
        from nbflow.views.svg import layout

        folder = self.pipeline_folder(path)
        try:  # looking: nbflow_tasks.py is read, not run; nothing is written
            pipeline = Pipeline.from_dir(folder, save_cache=False, within=self.root)
        except PipelineValidationError as e:
            return {"path": path, "ok": False, "problems": [self._problem(p, folder) for p in e.problems]}
        drawing = layout(pipeline.dag, rankdir=direction)
        return {
            "path": path,
            "ok": True,
            "problems": [],
            "tasks": [
                {
                    "name": name,
                    "path": self.relative(spec.path),
                    "kind": spec.kind,
                    "upstream": list(pipeline.dag.upstreams[name]),
                    "loaded": name not in pipeline.not_loaded,
                }
                for name, spec in ((n, pipeline.specs[n]) for n in pipeline.dag.order)
            ],
            "code": self._code(pipeline),
            "edges": [list(e) for e in pipeline.dag.edges],
            "svg": drawing.svg,
            "layout": drawing.engine,
            "note": drawing.note,
            "parameters": declared_parameters(pipeline.specs),
        }

    def _code(self, pipeline: Any) -> dict[str, Any] | None:
        """The folder's tasks defined in code, as a view knows them: read, not loaded."""
        from nbflow.pipeline import TASKS_FILE

        if not (pipeline.root / TASKS_FILE).is_file():
            return None
        return {
            "file": self.relative(pipeline.root / TASKS_FILE),
            "loaded": pipeline.code_loaded,
            "complete": not pipeline.code_unread,
            "note": pipeline.code_note,
        }

    def _problem(self, problem: NbflowError, folder: Path) -> dict[str, Any]:
        where = problem.path if isinstance(problem, ValidationProblem) else None
        return {"message": str(problem), "path": self.relative(folder / where) if where else None}

    # -- status and history ------------------------------------------------------------

    def status(self, path: str, run_id: str | None = None, since: str | None = None) -> dict[str, Any]:
        """The run shown (latest, or ``run_id``) with its tasks, and the history.

        ``since`` is the ``token`` of an earlier answer: if the store has not changed since,
        the answer is only ``{"changed": false, "token": ...}`` (a few ``stat`` calls).
        """
        from nbflow.store.reader import StoreReader
        from nbflow.store.watch import store_stamp
        from nbflow.views.live import task_paint

        folder = self.pipeline_folder(path)
        state_path = StateDir(folder).store
        token = hashlib.sha256(json.dumps([store_stamp(state_path), run_id]).encode()).hexdigest()[:16]
        if since is not None and since == token:
            return {"changed": False, "token": token}
        snap = StoreReader(state_path).read(run_id)
        if run_id and snap.run is None:
            raise RunNotFoundError(str(state_path), run_id)
        tasks = {}
        for name, t in snap.tasks.items():
            state, colour, note = task_paint(t)
            tasks[name] = {
                "state": state,
                "colour": colour,
                "note": note,
                "attempts": t.attempts,
                "duration_s": t.duration_s,
                "error": t.error,
                "output_notebook": self.relative(t.output_notebook),
                "reason": t.reason,  # why it ran or was skipped ("up to date since run ...")
            }
        return {
            "changed": True,
            "token": token,
            "run": panel_run_json(snap.run) if snap.run else None,
            "tasks": tasks,
            "runs": [panel_run_json(r) for r in snap.runs],
            "colours": states.COLOURS,
        }

    def log(
        self,
        path: str,
        task: str,
        run_id: str | None = None,
        attempt: int | None = None,
        offset: int | None = None,
    ) -> dict[str, Any]:
        """A task's output, error and traceback in a run (the latest), and its executed notebook.

        ``offset`` (an earlier answer's): only the output after it, read from the running
        attempt's log file from there on (a follower appends it). ``complete``: the attempt
        has ended and everything was read; ``restart``: ``text`` is not a continuation (a new
        attempt began, or only the store's tail is left) and replaces what the follower shows.
        """
        from nbflow.history import follow_log, open_store

        if offset is not None and offset < 0:
            raise InvalidRequestError("'offset' must be an earlier answer's offset.")
        folder = self.pipeline_folder(path)
        store = open_store(folder, read_only=True)
        try:
            piece = follow_log(store, task, run_id, attempt, offset, within=self.root)
        finally:
            store.close()
        record = piece.attempt
        answer = {
            "task": task,
            "run_id": record.run_id,
            "attempt": record.attempt,
            "state": record.state,
            "text": piece.text,
            "error": record.error,
            "traceback": record.traceback,
            "output_notebook": self.relative(record.output_notebook),
            "offset": piece.offset,
            "complete": piece.complete,
        }
        if offset is not None:
            answer["restart"] = piece.restart
        return answer

    # -- monitoring --------------------------------------------------------------------

    def _upstreams(self, folder: Path) -> dict[str, list[str]]:
        """Each task's upstreams in the DAG's order, as the folder declares them now (read, never run)."""
        from nbflow.history import declared_upstreams

        return declared_upstreams(folder, within=self.root)

    def grid(self, path: str, limit: int = 25) -> dict[str, Any]:
        """The ``limit`` newest runs x the pipeline's tasks, each cell a task's state in a run."""
        from nbflow.history import open_store, run_grid

        folder = self.pipeline_folder(path)
        order = list(self._upstreams(folder))
        with open_store(folder, read_only=True) as store:
            return run_grid(store, order, limit)

    def timeline(self, path: str, run_id: str | None = None) -> dict[str, Any]:
        """A run's (the latest by default) attempts on a time line: waiting, kernel start, running.

        Raises
        ------
        RunNotFoundError
        """
        from nbflow.history import open_store, run_timeline
        from nbflow.views.timeline import timeline_json

        folder = self.pipeline_folder(path)
        upstreams = self._upstreams(folder)
        with open_store(folder, read_only=True) as store:
            return timeline_json(run_timeline(store, folder, run_id, upstreams, within=self.root))

    def trend(self, path: str, task: str, limit: int = 50) -> dict[str, Any]:
        """The ``limit`` latest attempts of ``task`` across runs, oldest first, with their durations.

        Raises
        ------
        UnknownTaskError
            The pipeline has no such task and no run recorded one.
        """
        from nbflow.history import open_store, task_trend

        folder = self.pipeline_folder(path)
        order = list(self._upstreams(folder))
        with open_store(folder, read_only=True) as store:
            answer = task_trend(store, task, limit)
        if not answer["points"] and task not in order:
            raise UnknownTaskError(task, order)
        return answer

    # -- running -----------------------------------------------------------------------

    def start_run(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        only: Sequence[str] | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        """Start ``nbflow run`` on ``path`` in its own process; returns once the run is recorded.

        Raises
        ------
        PipelineBusyError
            Another run of this folder is going on.
        InvalidRequestError
            ``params`` is not a mapping of names.
        ChildRunFailedError
            The process ended before its run was recorded: the request or the pipeline is
            invalid (a bad parameter, a validation problem), or it crashed.
        """
        from nbflow.engine.runlock import RunLock

        folder = self.pipeline_folder(path)
        params = dict(params or {})
        if not all(isinstance(k, str) and k for k in params):
            raise InvalidRequestError("'params' must map parameter names to values.")
        with RunLock(StateDir(folder).lock, folder):  # busy? say so now, not from the process
            pass
        command = [sys.executable, "-m", "nbflow", "run", str(folder), "--no-progress"]
        for key, value in params.items():
            command += ["-p", f"{key}={json.dumps(value)}"]
        for name in only or ():
            command += ["--only", str(name)]
        if force:
            command.append("--force")
        logs = StateDir(folder).panel_runs
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        with open(log_path, "wb") as out:
            process = subprocess.Popen(
                command,
                cwd=folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives a server restart; Stop sends it SIGINT
            )
        threading.Thread(target=process.wait, name=f"nbflow-run-{process.pid}", daemon=True).start()  # reaps it
        return {"pid": process.pid, "log": self.relative(log_path), **self._wait_for_run(folder, process, log_path)}

    def _wait_for_run(self, folder: Path, process: subprocess.Popen[bytes], log_path: Path) -> dict[str, Any]:
        from nbflow.store.reader import StoreReader

        reader = StoreReader(StateDir(folder).store)
        deadline = time.monotonic() + self.START_WAIT_S
        while time.monotonic() < deadline:
            snap = reader.read()
            for run in snap.runs:
                if run.pid == process.pid:
                    return {"run_id": run.run_id}
            code = process.poll()
            if code is not None:
                raise ChildRunFailedError(code, log_path.read_text(errors="replace"))
            time.sleep(0.05)
        return {"run_id": None}

    def stop(self, path: str, run_id: str) -> dict[str, Any]:
        """Ask the process running ``run_id`` to stop (SIGINT, as Ctrl-C): its kernels end, the run is interrupted.

        Raises
        ------
        RunNotFoundError, RunNotGoingOnError
        """
        from nbflow.engine.runlock import lock_holder
        from nbflow.engine.runner import pid_alive
        from nbflow.store.reader import StoreReader

        folder = self.pipeline_folder(path)
        run = StoreReader(StateDir(folder).store).read(run_id).run  # written ahead counts too
        if run is None:
            raise RunNotFoundError(str(StateDir(folder).store), run_id)
        if run.state != states.RUNNING or run.hostname != socket.gethostname() or not pid_alive(run.pid):
            raise RunNotGoingOnError(f"Run {run_id} is not going on here (it is {run.state}).")
        if lock_holder(StateDir(folder).lock) != run.pid:  # the store's pid is only data: check it
            raise RunNotGoingOnError(
                f"Run {run_id} is not going on here: process {run.pid} does not run this pipeline."
            )
        os.kill(run.pid, signal.SIGINT)
        return {"run_id": run_id, "stopping": True}

    # -- editing -----------------------------------------------------------------------

    def edit_upstream(
        self, path: str, task: str, add: str | None = None, remove: str | None = None, direction: str = "LR"
    ) -> dict[str, Any]:
        """Add or remove one upstream of ``task``, in its notebook's parameters cell; returns the new DAG.

        Raises
        ------
        UnknownTaskError, UnknownUpstreamError, CycleError
            Nothing is written.
        """
        from nbflow.kinds import kind_of
        from nbflow.kinds.discovery import discover, task_name
        from nbflow.project.edit import changed_upstream, check_upstream_change, write_upstream

        folder = self.pipeline_folder(path)
        if add is None and remove is None:
            raise InvalidRequestError("Say which upstream to 'add' or 'remove'.")
        found = discover(folder, within=self.root)
        for problem in found.problems:  # a notebook through a symlink leading outside: refused, never read
            where = problem.path if isinstance(problem, OutsideFolderError) else None
            if where and (task == task_name(folder, folder / where) or task.startswith(f"{where}/")):
                raise PathOutsideRootError(f"{path.rstrip('/')}/{where}")
        specs = {s.name: s for s in found.specs}
        if task not in specs:
            raise UnknownTaskError(task, sorted(specs))
        spec = specs[task]
        if not is_inside(spec.path, self.root):
            raise PathOutsideRootError(f"{path.rstrip('/')}/{spec.relpath}")
        if not kind_of(spec.kind).upstream_editable:
            raise NbflowError(f"{spec.relpath} is not a notebook; edit its upstream declaration in the file.")
        upstream = changed_upstream(spec.upstream, add, remove)
        check_upstream_change(task, upstream, {n: s.upstream for n, s in specs.items()}, spec.relpath)
        write_upstream(spec.path, upstream, spec.relpath)
        return self.dag(path, direction)

    # -- authoring ---------------------------------------------------------------------

    def inputs(self, notebook: str, task: str | None = None, path: str | None = None) -> dict[str, Any]:
        """What a run would inject into ``notebook`` now, for the notebook's own kernel.

        The pipeline folder and the task are found from the notebook (the nearest settings
        file, not above the root) unless ``path`` and ``task`` are given. Paths in the answer
        are relative to the root where they are inside it; ``code`` keeps the absolute paths a
        run injects. Nothing is run and nothing is written.

        Raises
        ------
        PathOutsideRootError, NotATaskError, UnknownTaskError
        """
        from nbflow.authoring.inputs import find_task, task_inputs

        source = self.resolve(notebook, must_be_dir=False)
        if not source.is_file():
            raise NotATaskError(notebook, "the server's root", "there is no such file")
        if (task is None) != (path is None):
            raise InvalidRequestError("Give both 'task' and 'path' (the pipeline folder), or neither.")
        if task is not None and path is not None:
            folder, name = self.pipeline_folder(path), task
        else:
            folder, name = find_task(source, stop=self.root)
            self.pipeline_folder(self._relative_inside(folder))
        answer = task_inputs(folder, name, within=self.root).to_json()
        for key in ("folder", "notebook", "cwd", "parameters"):
            answer[key] = self._relative_paths(answer[key])
        return answer

    def debug(self, path: str, task: str, run_id: str | None = None) -> dict[str, Any]:
        """Write the debug notebook of ``task``'s latest failed attempt (in ``run_id``, or the
        latest run where it failed) under the pipeline's ``_nbflow/debug/``; say where it is.

        Raises
        ------
        PathOutsideRootError, UnknownTaskError, NoFailedAttemptError, RunNotFoundError
        """
        from nbflow.authoring.debug import prepare_debug

        folder = self.pipeline_folder(path)
        debug = prepare_debug(folder, task, run_id, within=self.root)
        answer = debug.to_json()
        answer["path"] = self._relative_inside(debug.path)
        for key in ("cwd", "executed_notebook"):
            answer[key] = self._relative_paths(answer.get(key))
        return answer

    def _relative_inside(self, path: Path) -> str:
        """``path`` relative to the root; refused (403) if it is not inside it."""
        relative = self.relative(path)
        if relative is None:
            raise PathOutsideRootError(str(path))
        return relative

    def _relative_paths(self, value: Any) -> Any:
        """``value`` with every absolute path inside the root made relative to it, as the browser knows paths."""
        if isinstance(value, dict):
            return {key: self._relative_paths(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._relative_paths(item) for item in value]
        if isinstance(value, Path) or (isinstance(value, str) and value.startswith(os.sep) and "\n" not in value):
            relative = self.relative(value)
            return relative if relative is not None else str(value)
        return value

    def info(self) -> dict[str, Any]:
        return {"version": __version__, "root": str(self.root)}
