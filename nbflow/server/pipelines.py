"""``GET nbflow/pipelines?path=DIR``: whether a folder is a pipeline, and the pipelines below it.

The panel asks this when the folder it shows is not a pipeline (the server's root, typically),
to offer the folders that are. Found cheaply, by looking only: a folder with ``nbflow.toml`` or
``nbflow_tasks.py``, or with a notebook whose text names a ``parameters`` cell tag. Nothing is
run, parsed as code or written; symlinked folders are not entered, and a symlinked file is read
only if it stays inside the server's root.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tornado.web

from nbflow.paths import is_inside
from nbflow.server.handlers import NbflowHandler
from nbflow.server.service import NbflowService

#: files whose presence makes a folder a pipeline
MARKERS = ("nbflow.toml", "nbflow_tasks.py")
#: how deep below the folder asked about the search goes, and how many folders it lists at most
MAX_DEPTH = 3
MAX_FOUND = 50
#: folders visited at most (a huge tree answers with what was found so far)
MAX_VISITED = 2000
#: bytes of a notebook read to find its parameters tag (the tag sits in cell metadata)
HEAD_BYTES = 1 << 20
SKIPPED = {"_nbflow", "node_modules", "__pycache__", "site-packages"}


def _has_parameters_notebook(folder: Path, root: Path, names: list[str]) -> bool:
    for name in names:
        if not name.endswith(".ipynb") or name.startswith("."):
            continue
        path = folder / name
        if path.is_symlink() and not is_inside(path, root):
            continue
        try:
            with open(path, "rb") as f:
                head = f.read(HEAD_BYTES)
        except OSError:
            continue
        if b'"parameters"' in head and b'"tags"' in head:
            return True
    return False


def is_pipeline(folder: Path, root: Path, names: list[str] | None = None) -> bool:
    """Whether ``folder`` looks like a pipeline: a settings or tasks file, or a notebook with a parameters cell."""
    if names is None:
        try:
            names = os.listdir(folder)
        except OSError:
            return False
    if any(marker in names for marker in MARKERS):
        return True
    return _has_parameters_notebook(folder, root, names)


def find_pipelines(service: NbflowService, path: str) -> dict[str, Any]:
    """``path`` (relative to the server's root): whether it is a pipeline, and the pipelines below it."""
    folder = service.resolve(path)
    root = service.root
    found: list[dict[str, str]] = []
    for visited, (current, dirs, files) in enumerate(os.walk(folder, followlinks=False), start=1):
        here = Path(current)
        depth = len(here.relative_to(folder).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED and depth < MAX_DEPTH)
        if here != folder and is_pipeline(here, root, files):
            rel = here.relative_to(root).as_posix()
            found.append({"path": rel, "name": here.relative_to(folder).as_posix()})
        if len(found) >= MAX_FOUND or visited >= MAX_VISITED:
            break
    return {"path": path, "pipeline": is_pipeline(folder, root), "pipelines": found}


class PipelinesHandler(NbflowHandler):
    """Whether a folder is a pipeline, and the pipelines below it: looked at, never run."""

    @tornado.web.authenticated
    async def get(self) -> None:
        await self.call(find_pipelines, self.service, self.arg("path"))


def setup_pipelines_route(web_app: Any) -> None:
    """Add ``GET nbflow/pipelines`` to the server's application (after :func:`setup_handlers`)."""
    from jupyter_server.utils import url_path_join

    base = url_path_join(web_app.settings["base_url"], "nbflow")
    web_app.add_handlers(".*$", [(url_path_join(base, "pipelines"), PipelinesHandler)])
