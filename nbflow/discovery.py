"""Find the notebooks of a pipeline folder and read each into a spec.

A pipeline is a folder: every ``*.ipynb`` below it is a task, except in hidden folders,
``.ipynb_checkpoints`` and nbflow's own output folder. A task's name is its path relative
to the folder, without ``.ipynb``, with ``/`` separators.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nbflow.errors import DuplicateTaskError, NbflowError, PipelineNotFoundError
from nbflow.notebook import NotebookSpec, read_task_spec

#: nbflow's own folder inside a pipeline: the state store and every run's executed notebooks
STATE_DIR_NAME = "_nbflow"
#: the files that are tasks: notebooks, and SQL run by DuckDB
TASK_SUFFIXES = (".ipynb", ".sql")
SKIPPED_DIRS = frozenset({".ipynb_checkpoints", STATE_DIR_NAME, "__pycache__", "node_modules"})


@dataclass
class Discovery:
    """The notebooks found under a folder, and every problem met while reading them."""

    root: Path
    specs: list[NotebookSpec] = field(default_factory=list)
    problems: list[NbflowError] = field(default_factory=list)


def iter_notebook_paths(root: Path) -> Iterator[Path]:
    """Yield every task notebook below ``root``, in a stable (sorted) order."""
    stack = [root]
    seen: set[tuple[int, int]] = set()  # folders by (device, inode): a symlink loop is walked once
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
                is_notebook = not is_dir and entry.name.endswith(TASK_SUFFIXES) and entry.is_file()
            except OSError:  # a broken or looping link
                continue
            if is_dir and entry.name not in SKIPPED_DIRS:
                subdirs.append(Path(entry.path))
            elif is_notebook:
                yield Path(entry.path)
        stack.extend(reversed(subdirs))


def task_name(root: Path, path: Path) -> str:
    """``etl/clean.ipynb`` (or ``etl/clean.sql``) below ``root`` is the task ``etl/clean``."""
    return path.relative_to(root).with_suffix("").as_posix()


def discover(root: str | os.PathLike[str]) -> Discovery:
    """Read every notebook below ``root``; gather (not raise) per-file problems.

    Raises
    ------
    PipelineNotFoundError
        ``root`` is not a folder.
    """
    root_path = Path(root).resolve()
    if not root_path.is_dir():
        raise PipelineNotFoundError(str(root), "is not a folder (a pipeline is a folder of notebooks)")
    found = Discovery(root_path)
    by_folded_name: dict[str, str] = {}
    for path in iter_notebook_paths(root_path):
        name = task_name(root_path, path)
        relpath = path.relative_to(root_path).as_posix()
        folded = name.casefold()
        if folded in by_folded_name:
            found.problems.append(DuplicateTaskError(name, [by_folded_name[folded], relpath]))
            continue
        by_folded_name[folded] = relpath
        try:
            found.specs.append(read_task_spec(path, name, relpath))
        except NbflowError as e:
            found.problems.append(e)
    found.specs.sort(key=lambda s: s.name)
    return found
