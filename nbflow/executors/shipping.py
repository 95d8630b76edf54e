"""Attempts on workers that share no folder with the runner: what goes with a task, what comes back.

With ``[dask] shared_folder = false`` the workers never read the pipeline folder:

* the runner sends the task's source file (a notebook, a ``.sql`` file, ``nbflow_tasks.py``)
  with its request (:func:`pack`). The request names the environment variables of its
  secrets and connections, never their values: the worker must have them set;
* the worker runs the attempt in a fresh temporary folder holding that file and an
  ``nbflow.toml`` that names the project's connections (so ``nbflow.connect`` finds them):
  the kernel's working directory. A notebook that reads a sibling file by a relative path
  finds nothing there. The executed notebook and the logs are written beside that folder,
  read back into the result, and the whole temporary folder is removed (:func:`run_shipped`);
* the runner writes them where the request said, in the run folder (:func:`write_back`).

So a task's products must be URIs (``s3://``, ``table://``) or absolute paths on storage the
workers share: :func:`local_products` names the others, which the executor refuses before a
run (:func:`pipeline_local_products` reads them from the folder).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from nbflow.execution.base import AttemptOutcome, TaskRequest, kernel_log_path
from nbflow.paths import is_inside
from nbflow.project.specs import Product
from nbflow.project.targets import is_remote

#: what a shipped attempt's folder on the worker is called (``<tmp>/nbflow-attempt-XXXX``)
TEMP_PREFIX = "nbflow-attempt-"


@dataclass(frozen=True)
class ShippedTask:
    """A request and its source file's bytes: everything a worker without the folder needs."""

    request: TaskRequest
    source: bytes


@dataclass(frozen=True)
class AttemptFiles:
    """The files an attempt wrote on the worker (None: it wrote none)."""

    notebook: bytes | None = None
    log: bytes | None = None
    kernel_log: bytes | None = None


@dataclass(frozen=True)
class ShippedOutcome:
    """What a shipped attempt returns: its outcome and its files."""

    outcome: AttemptOutcome
    files: AttemptFiles


# -- which products cannot work without a shared folder (pure) ---------------------------------


def _values(product: Product) -> tuple[str, ...]:
    if product is None:
        return ()
    return (product,) if isinstance(product, str) else tuple(product.values())


def local_products(product: Product, root: Path) -> list[str]:
    """The declared values of ``product`` that are files in the pipeline folder ``root``:
    relative paths, and absolute ones inside it (URIs and paths elsewhere are fine)."""
    return [
        value
        for value in _values(product)
        if not is_remote(value) and (not os.path.isabs(value) or is_inside(Path(value), root))
    ]


def pipeline_local_products(root: Path) -> dict[str, list[str]]:
    """Every task of the pipeline in ``root`` (its files and what ``nbflow_tasks.py`` declares,
    read without running anything) whose products are files in the folder, with those products."""
    from nbflow.kinds import code_kinds
    from nbflow.kinds.discovery import discover
    from nbflow.project.code import read_declarations

    root = root.resolve()
    products: dict[str, Product] = {spec.name: spec.product for spec in discover(root, save_cache=False).specs}
    tasks_file = root / "nbflow_tasks.py"
    if tasks_file.is_file():
        source = tasks_file.read_text(encoding="utf-8", errors="replace")
        for task in read_declarations(source, [kind.reader() for kind in code_kinds().values()]).tasks:
            products[task.name] = task.product
    found = {name: local_products(product, root) for name, product in sorted(products.items())}
    return {name: local for name, local in found.items() if local}


def request_local_products(request: TaskRequest, root: Path) -> list[Path]:
    """The request's product files inside the pipeline folder ``root`` (resolved: absolute)."""
    return [p for p in request.products if is_inside(p, root.resolve())]


# -- the runner's side ------------------------------------------------------------------------


def pack(request: TaskRequest) -> ShippedTask:
    """The request with its source file's bytes.

    Raises
    ------
    OSError
        The source file cannot be read here.
    """
    return ShippedTask(request, request.source.read_bytes())


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_back(request: TaskRequest, files: AttemptFiles) -> None:
    """Write the files of a shipped attempt where ``request`` (the runner's) says they go.

    Raises
    ------
    OSError
        One cannot be written (a full disk, ...).
    """
    for path, data in (
        (request.output_notebook, files.notebook),
        (request.log_path, files.log),
        (kernel_log_path(request), files.kernel_log),
    ):
        if data is not None:
            _write(path, data)


# -- the worker's side ------------------------------------------------------------------------


def connections_toml(connections: Mapping[str, str]) -> str:
    """An ``nbflow.toml`` naming ``connections`` (name -> environment variable), nothing else."""
    lines = ["# written by nbflow for one attempt: the project's connections, by variable name", "[connections]"]
    lines += [f"{json.dumps(name)} = {json.dumps(variable)}" for name, variable in sorted(connections.items())]
    return "\n".join(lines) + "\n"


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _translated(outcome: AttemptOutcome, moves: Iterable[tuple[str, str]]) -> AttemptOutcome:
    """The outcome with the worker's temporary paths in its texts replaced by the runner's."""

    def text(value: str | None) -> str | None:
        if value:
            for old, new in moves:
                value = value.replace(old, new)
        return value

    return replace(outcome, error=text(outcome.error), traceback=text(outcome.traceback), log=text(outcome.log) or "")


def run_shipped(shipped: ShippedTask, run: Callable[[TaskRequest], AttemptOutcome]) -> ShippedOutcome:
    """Run ``shipped`` with ``run`` in a fresh temporary folder here, and bring back its files.

    The folder holds the source file (the working directory) and, beside it, the attempt's
    files; it is removed before this returns. Never raises for what the task does.
    """
    original = shipped.request
    base = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    try:
        cwd, out = base / "task", base / "attempt"
        cwd.mkdir()
        out.mkdir()
        source = cwd / original.source.name
        source.write_bytes(shipped.source)
        (cwd / "nbflow.toml").write_text(connections_toml(original.connections), encoding="utf-8")
        here = replace(
            original,
            source=source,
            cwd=cwd,
            output_notebook=out / original.output_notebook.name,
            log_path=out / original.log_path.name,
        )
        outcome = run(here)
        files = AttemptFiles(
            notebook=_read(here.output_notebook), log=_read(here.log_path), kernel_log=_read(kernel_log_path(here))
        )
        # the attempt's files are where the runner writes them; the working folder is nowhere else
        return ShippedOutcome(_translated(outcome, [(str(out), str(original.log_path.parent))]), files)
    finally:
        shutil.rmtree(base, ignore_errors=True)
