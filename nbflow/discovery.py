"""Find the notebooks of a pipeline folder and read each into a spec.

A pipeline is a folder: every ``*.ipynb`` below it is a task, except in hidden folders,
``.ipynb_checkpoints`` and nbflow's own output folder, and except notebooks that opt out with
``{"nbflow": {"task": false}}`` in their metadata (a dashboard beside the pipeline). A task's name is its path relative
to the folder, without ``.ipynb``, with ``/`` separators.

What was read from each file is kept in ``_nbflow/discovery.pickle``, keyed by the
file's size, modification time and inode: an unchanged file is not read again (a
notebook with megabytes of outputs costs milliseconds to parse). The cache is only an
accelerator: a missing, stale or unreadable one is ignored, and a folder nbflow cannot
write to is read every time.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nbflow.errors import DuplicateTaskError, NbflowError, PipelineNotFoundError
from nbflow.notebook import NotebookSpec, read_task_spec

#: nbflow's own folder inside a pipeline: the state store and every run's executed notebooks
STATE_DIR_NAME = "_nbflow"
#: the files that are tasks: notebooks, and SQL run by DuckDB
TASK_SUFFIXES = (".ipynb", ".sql")
#: what was read from each file, by (size, mtime, inode); inside the state folder
CACHE_FILE_NAME = "discovery.pickle"
_CACHE_FORMAT = 1
#: a file changed this recently is not cached: another change within the file system's
#: timestamp granularity, keeping the size, would go unseen
_RACY_NS = 2_000_000_000
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


_Stamp = tuple[int, int, int]


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _load_cache(path: Path) -> dict[str, tuple[_Stamp, NotebookSpec]]:
    from nbflow import __version__

    try:
        with open(path, "rb") as f:
            data = pickle.load(f)
        if data.get("format") == (_CACHE_FORMAT, __version__):
            return data["entries"]
    except Exception:  # missing, cut short, or from another version: read the files
        pass
    return {}


def _save_cache(path: Path, entries: dict[str, tuple[_Stamp, NotebookSpec]]) -> None:
    from nbflow import __version__

    try:
        path.parent.mkdir(exist_ok=True)
        ignore = path.parent / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# nbflow's state and executed notebooks\n*\n")
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump({"format": (_CACHE_FORMAT, __version__), "entries": entries}, f, pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only folder: no cache, same result


def discover(root: str | os.PathLike[str], cache: bool = True) -> Discovery:
    """Read every notebook below ``root``; gather (not raise) per-file problems.

    With ``cache``, files unchanged since the last discovery are not read again.

    Raises
    ------
    PipelineNotFoundError
        ``root`` is not a folder.
    """
    root_path = Path(root).resolve()
    if not root_path.is_dir():
        raise PipelineNotFoundError(str(root), "is not a folder (a pipeline is a folder of notebooks)")
    found = Discovery(root_path)
    cache_path = root_path / STATE_DIR_NAME / CACHE_FILE_NAME
    cached = _load_cache(cache_path) if cache else {}
    fresh: dict[str, tuple[_Stamp, NotebookSpec]] = {}
    by_folded_name: dict[str, str] = {}
    for path in iter_notebook_paths(root_path):
        name = task_name(root_path, path)
        relpath = path.relative_to(root_path).as_posix()
        folded = name.casefold()
        if folded in by_folded_name:
            found.problems.append(DuplicateTaskError(name, [by_folded_name[folded], relpath]))
            continue
        by_folded_name[folded] = relpath
        stamp = _stamp(path)
        hit = cached.get(relpath)
        if hit is not None and stamp is not None and hit[0] == stamp and hit[1].path == path:
            if hit[1].is_task:
                found.specs.append(hit[1])
            fresh[relpath] = hit
            continue
        try:
            spec = read_task_spec(path, name, relpath)
        except NbflowError as e:
            found.problems.append(e)
            continue
        if spec.is_task:
            found.specs.append(spec)
        if stamp is not None and stamp == _stamp(path) and time.time_ns() - stamp[1] > _RACY_NS:
            fresh[relpath] = (stamp, spec)
    changed = fresh.keys() != cached.keys() or any(fresh[k] is not cached[k] for k in fresh)
    if cache and changed:
        _save_cache(cache_path, fresh)
    found.specs.sort(key=lambda s: s.name)
    return found
