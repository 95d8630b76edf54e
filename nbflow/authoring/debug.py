"""A notebook that reproduces a failed attempt: its injected values, its working directory,
the cells before the failing one ready to run, the failing cell marked.

Built from the attempt's executed notebook (which holds the injected cell's literal
values); written under the pipeline's ``_nbflow/debug/``, never over the task's file.
Its ``metadata.nbflow.debug`` says what it reproduces and which cells to run
(``run_cells``: the working-directory cell and the code cells before the failing one, but
those tagged ``nbflow-skip``), so any front end can bring a kernel to the failure.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbflow import states
from nbflow.errors import NoFailedAttemptError, RunNotFoundError, StateFolderError, UnknownTaskError
from nbflow.paths import StateDir, is_inside
from nbflow.store.base import AttemptRecord, RunStore

#: the tag of the cell a debug notebook starts with: it sets the attempt's working directory
DEBUG_TAG = "nbflow-debug"
#: papermill's tag on the markdown cells it adds to a failed notebook (papermill's ERROR_MARKER_TAG)
ERROR_MARKER_TAG = "papermill-error-cell-tag"
#: cells not run in pipeline runs, nor here (the notebook kind's SKIP_TAG)
SKIP_TAG = "nbflow-skip"
#: a cell that may raise without failing the notebook (nbclient's allow-error tag)
RAISES_TAG = "raises-exception"


@dataclass(frozen=True)
class DebugNotebook:
    """A debug notebook written for one failed attempt."""

    task: str
    run_id: str
    attempt: int
    path: Path  # the debug notebook
    cwd: Path  # the working directory of the failed attempt
    failed_cell: int  # index, in the debug notebook, of the cell that failed
    kernel_name: str
    language: str
    #: indexes of the cells to run, in order, to reach the failure (the cwd cell first)
    run_cells: tuple[int, ...] = ()
    #: the attempt's executed notebook, which the debug notebook was made from
    executed_notebook: Path | None = None
    #: the attempt's recorded error ("ValueError: bad value (In [4])")
    error: str | None = None
    #: secret parameters -> the project's environment variable holding each (names, never values)
    secrets: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "run_id": self.run_id,
            "attempt": self.attempt,
            "path": str(self.path),
            "cwd": str(self.cwd),
            "failed_cell": self.failed_cell,
            "run_cells": list(self.run_cells),
            "kernel_name": self.kernel_name,
            "language": self.language,
            "executed_notebook": None if self.executed_notebook is None else str(self.executed_notebook),
            "error": self.error,
            "secrets": sorted(self.secrets),
        }


def prepare_debug(folder: Path, task: str, run_id: str | None = None, *, within: Path | None = None) -> DebugNotebook:
    """Write the debug notebook of ``task``'s latest failed attempt (in ``run_id``, or the
    latest run where it failed) and say where it is and which cell failed.

    ``within`` (a server's root): notebooks reached through symlinks leading outside it are
    not read (as :meth:`Pipeline.from_dir <nbflow.pipeline.Pipeline.from_dir>`).

    Raises
    ------
    UnknownTaskError
        Neither the pipeline nor any recorded run has a task of that name.
    RunNotFoundError
        ``run_id`` is not a recorded run.
    NoFailedAttemptError
        No failed attempt to reproduce, or one that cannot be (not a notebook task, its
        executed notebook gone or showing no failing cell).
    PipelineValidationError, PipelineNotFoundError
        The folder is not a valid pipeline.
    """
    import nbformat

    from nbflow.history import open_store
    from nbflow.kinds import kind_of
    from nbflow.pipeline import Pipeline

    pipeline = Pipeline.from_dir(folder, save_cache=False, within=within)  # nbflow_tasks.py is read, not run
    root = pipeline.root.resolve()
    spec = pipeline.specs.get(task)
    if spec is not None and not kind_of(spec.kind).writes_notebook:
        noun = kind_of(spec.kind).noun
        raise NoFailedAttemptError(
            task, run_id, f"it is a {noun}, not a notebook: `nbflow logs {task}` shows its error"
        )
    with open_store(root, read_only=True) as store:
        attempt = find_failed_attempt(store, task, run_id, known=list(pipeline.specs) if spec is None else None)
    executed = _executed_notebook(root, attempt)
    nb = nbformat.read(executed, as_version=4)
    language = _language(nb, spec.language if spec is not None else "python")
    kernel_name = str(nb.metadata.get("kernelspec", {}).get("name") or (spec.kernel_name if spec else "") or "")
    cwd = spec.folder.resolve() if spec is not None else _source_folder(nb, root)
    target = _debug_path(root, attempt)
    failed_cell, run_cells = make_debug_notebook(
        nb,
        cwd=cwd,
        language=language,
        meta={"task": task, "run_id": attempt.run_id, "attempt": attempt.attempt, "executed_notebook": str(executed)},
    )
    if failed_cell is None:
        raise NoFailedAttemptError(
            task,
            attempt.run_id,
            f"its executed notebook {executed} shows no failing cell ({attempt.error or 'no error recorded'})",
        )
    _write_atomic(nb, target)
    secrets = dict(pipeline.project.secrets)
    declared = set(spec.params.defaults) if spec is not None else set(secrets)
    return DebugNotebook(
        task=task,
        run_id=attempt.run_id,
        attempt=attempt.attempt,
        path=target,
        cwd=cwd,
        failed_cell=failed_cell,
        kernel_name=kernel_name,
        language=language,
        run_cells=run_cells,
        executed_notebook=executed,
        error=attempt.error,
        secrets={p: v for p, v in secrets.items() if p in declared},
    )


def find_failed_attempt(
    store: RunStore, task: str, run_id: str | None = None, known: list[str] | None = None
) -> AttemptRecord:
    """``task``'s last failed attempt in run ``run_id``, or in the newest run where it failed.

    ``known`` (the pipeline's tasks, given when ``task`` is not one of them): a task no
    recorded run has either is unknown.

    Raises
    ------
    RunNotFoundError, UnknownTaskError, NoFailedAttemptError
    """
    if run_id is not None:
        run = store.get_run(run_id)
        if run is None:
            raise RunNotFoundError(str(getattr(store, "path", "the state store")), run_id)
        runs = [run]
    else:
        runs = store.list_runs()
    seen = False
    for run in runs:
        attempts = store.get_attempts(run.run_id, task)
        seen = seen or bool(attempts)
        failed = [a for a in attempts if a.state == states.FAILED]
        if failed:
            return failed[-1]
    if known is not None and not seen:
        raise UnknownTaskError(task, known)
    return _no_failure(store, task, run_id, runs)


def _no_failure(store: RunStore, task: str, run_id: str | None, runs: list[Any]) -> AttemptRecord:
    if run_id is None:
        raise NoFailedAttemptError(task, None, "no run recorded yet" if not runs else "it never failed")
    tasks = store.get_tasks(run_id)
    state = tasks[task].state if task in tasks else None
    raise NoFailedAttemptError(task, run_id, f"its state there: {state}" if state else "it was not part of that run")


def _executed_notebook(root: Path, attempt: AttemptRecord) -> Path:
    """The attempt's executed notebook: where the store says, if that is inside the pipeline
    folder (the store's word is not trusted with a path), else where the state folder's layout
    puts it (a pipeline folder moved since)."""
    recorded = Path(attempt.output_notebook) if attempt.output_notebook else None
    laid_out = StateDir(root).attempt(attempt.run_id, attempt.task, attempt.attempt).notebook
    for path in (recorded, laid_out):
        if path is not None and path.is_file() and is_inside(path, root):
            return path
    shown = recorded or laid_out
    raise NoFailedAttemptError(
        attempt.task, attempt.run_id, f"its executed notebook {shown} is gone from the pipeline folder"
    )


def _debug_path(root: Path, attempt: AttemptRecord) -> Path:
    """``_nbflow/debug/<run_id>/<task>.ipynb``, its folder made, refused if it leads outside ``root``."""
    state = StateDir(root)
    target = state.debug / attempt.run_id / f"{attempt.task}.ipynb"
    try:
        state.ensure()
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StateFolderError(str(state.path), e.strerror or str(e)) from e
    if not is_inside(target.parent, root):
        raise StateFolderError(str(target.parent), "it leads outside the pipeline folder")
    return target


def _language(nb: Any, default: str) -> str:
    meta = nb.metadata
    return str(meta.get("kernelspec", {}).get("language") or meta.get("language_info", {}).get("name") or default)


def _source_folder(nb: Any, root: Path) -> Path:
    """The folder of the notebook the attempt ran (papermill's ``input_path``), if inside
    ``root``; else ``root``: for a task no longer in the folder."""
    source = nb.metadata.get("papermill", {}).get("input_path")
    if source and is_inside(Path(source).parent, root):
        return Path(source).parent.resolve()
    return root


def cwd_code(language: str, cwd: Path) -> str | None:
    """The code that makes ``cwd`` the kernel's working directory, in ``language`` (None: unknown)."""
    lang = language.lower()
    if lang == "python":
        return f"import os\nos.chdir({str(cwd)!r})"
    if lang == "r":
        return f"setwd({json.dumps(str(cwd), ensure_ascii=False)})"
    if lang == "julia":
        return f"cd({json.dumps(str(cwd), ensure_ascii=False)})"
    return None


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags") or [])


def failing_cell(cells: list[Any]) -> int | None:
    """The index of the cell the attempt failed in: papermill's ``failed`` (or a cell left
    ``running``: a timeout, a dead kernel), else the first error output not allowed by a
    ``raises-exception`` tag."""
    status = [c.get("metadata", {}).get("papermill", {}).get("status") for c in cells]
    for wanted in ("failed", "running"):
        if wanted in status:
            return status.index(wanted)
    for i, cell in enumerate(cells):
        errors = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
        if cell.cell_type == "code" and errors and RAISES_TAG not in _tags(cell):
            return i
    return None


def make_debug_notebook(
    nb: Any, *, cwd: Path, language: str, meta: dict[str, Any]
) -> tuple[int | None, tuple[int, ...]]:
    """Turn an executed notebook into its debug notebook, in place: error markers out, a
    working-directory cell first, the cells before the failing one cleared and listed to
    run (not those tagged ``nbflow-skip``), the failing cell's outputs kept;
    ``metadata.nbflow.debug`` = ``meta`` with ``failed_cell``, ``run_cells`` and ``cwd``.

    Returns the failing cell's index and the cells to run (``(None, ())``: no failing cell).
    """
    from nbformat.v4 import new_code_cell, new_markdown_cell

    cells = [c for c in nb.cells if ERROR_MARKER_TAG not in _tags(c)]
    failed = failing_cell(cells)
    if failed is None:
        return None, ()
    code = cwd_code(language, cwd)
    first = new_code_cell(code) if code is not None else new_markdown_cell(f"Run this notebook's kernel in `{cwd}`.")
    first.metadata["tags"] = [DEBUG_TAG]
    run_cells: list[int] = [0] if code is not None else []
    for i, cell in enumerate(cells):
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if i >= failed or cell.cell_type != "code":
            continue
        cell.execution_count = None
        if SKIP_TAG in _tags(cell):
            continue  # keeps its note: not run in pipeline runs, nor here
        cell.outputs = []
        run_cells.append(i + 1)
    nb.cells = [first, *cells]
    _ensure_ids(nb)
    debug = {**meta, "failed_cell": failed + 1, "run_cells": run_cells, "cwd": str(cwd)}
    nb.metadata.setdefault("nbflow", {})["debug"] = debug
    return failed + 1, tuple(run_cells)


def _ensure_ids(nb: Any) -> None:
    """Every cell with an id (nbformat 4.5), as the inserted cell has one."""
    from nbformat.corpus.words import generate_corpus_id

    nb.nbformat_minor = max(int(nb.get("nbformat_minor", 0)), 5)
    for cell in nb.cells:
        if not cell.get("id"):
            cell["id"] = generate_corpus_id()


def _write_atomic(nb: Any, path: Path) -> None:
    """Write ``nb`` to ``path`` whole or not at all."""
    import nbformat

    text = nbformat.writes(nb)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")  # one per writer
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
