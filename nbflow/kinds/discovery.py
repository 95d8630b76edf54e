"""Find the task files of a pipeline folder and read each into a spec, by the kind its suffix names.

A pipeline is a folder: every file below it with the suffix of a file kind (``*.ipynb``,
``*.sql``: :func:`nbflow.kinds.file_kinds`) is a task, except in hidden folders,
``.ipynb_checkpoints`` and nbflow's own output folder, except files its kind says are not
(:meth:`~nbflow.kinds.base.FileKind.is_task_file`: a ``.py`` or ``.md`` file without a Jupytext
header), and except notebooks that opt out with
``{"nbflow": {"task": false}}`` in their metadata (a dashboard beside the pipeline). A file is
the kind of the longest suffix it ends with (:func:`nbflow.kinds.file_kind_for`). A task's
name is its path relative to the folder, without that suffix, with ``/`` separators.

What was read from each file is kept in ``_nbflow/discovery.json``, keyed by the
file's size, modification time and inode: an unchanged file is not read again (a
notebook with megabytes of outputs costs milliseconds to parse). The cache is only an
accelerator, and it is data: plain JSON, every field checked on reading; a missing,
stale, damaged or foreign one is ignored (and rewritten by the next discovery that may
write), and a folder nbflow cannot write to is read every time. Views (the panel, the
dashboard, ``nbflow dag``) read it but never write it: looking at a folder writes nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbflow.errors import (
    DuplicateTaskError,
    MalformedNotebookError,
    NbflowError,
    OutsideFolderError,
    PipelineNotFoundError,
)
from nbflow.kinds import FileKind, file_kind_for, file_kinds
from nbflow.paths import STATE_DIR_NAME, StateDir, is_inside
from nbflow.project.specs import ParametersDecl, TaskSpec

_CACHE_FORMAT = "nbflow-discovery"
_CACHE_VERSION = 3  # 3: R notebooks and text notebooks are read
#: a file changed this recently is not cached: another change within the file system's
#: timestamp granularity, keeping the size, would go unseen
_RACY_NS = 2_000_000_000
SKIPPED_DIRS = frozenset({".ipynb_checkpoints", STATE_DIR_NAME, "__pycache__", "node_modules"})


@dataclass
class Discovery:
    """The task files found under a folder (as specs), and every problem met while reading them."""

    root: Path
    specs: list[TaskSpec] = field(default_factory=list)
    problems: list[NbflowError] = field(default_factory=list)


def iter_task_paths(root: Path, outside: list[Path] | None = None, within: Path | None = None) -> Iterator[Path]:
    """Yield every task file below ``root``, in a stable (sorted) order.

    With ``within``, a folder or file whose real path (symlinks followed) is not inside it
    is neither walked nor yielded but added to ``outside``.
    """
    suffixes = tuple(file_kinds())
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
                is_task = not is_dir and entry.name.endswith(suffixes) and entry.is_file()
            except OSError:  # a broken or looping link
                continue
            if not (is_task or (is_dir and entry.name not in SKIPPED_DIRS)):
                continue
            path = Path(entry.path)
            if within is not None and entry.is_symlink() and not is_inside(path, within):
                if outside is not None and not (is_task and _is_checked(path)):
                    outside.append(path)  # one whose suffix may be no task (a .py module) is not looked at
            elif is_dir:
                subdirs.append(path)
            elif not _is_checked(path) or _kind_of_file(path).is_task_file(path):
                yield path
        stack.extend(reversed(subdirs))


def _kind_of_file(path: Path) -> FileKind:
    found = file_kind_for(path)
    if found is None:  # only the files of a file kind are walked
        raise ValueError(f"{path} is no file kind's task file")
    return found[0]


def _is_checked(path: Path) -> bool:
    """Whether ``path``'s suffix makes it a task only if its kind says so (:meth:`~FileKind.is_task_file`)."""
    found = file_kind_for(path)
    return found is not None and found[1] in found[0].checked_suffixes


def read_task_spec(path: Path, name: str, relpath: str) -> TaskSpec:
    """The spec of the task file ``path``, read by the kind its suffix names (a malformed file's
    error is worded with the kind's :attr:`~nbflow.kinds.base.FileKind.noun`)."""
    kind = _kind_of_file(path)
    try:
        return kind.read(path, name, relpath)
    except MalformedNotebookError as e:
        if e.what is None:
            e.what = kind.noun
        raise


def _is_text(name: str) -> bool:
    """Whether a file name decoded from the disk is real text (not bytes kept as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def task_name(root: Path, path: Path) -> str:
    """``etl/clean.ipynb`` (or ``etl/clean.sql``, any file kind's suffix) below ``root`` is the task ``etl/clean``."""
    found = file_kind_for(path)
    relative = path.relative_to(root)
    return relative.as_posix()[: -len(found[1])] if found is not None else relative.with_suffix("").as_posix()


_Stamp = tuple[int, int, int]


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _spec_to_json(spec: TaskSpec) -> dict[str, Any]:
    p = spec.params
    return {
        "kind": spec.kind,
        "kernel_name": spec.kernel_name,
        "language": spec.language,
        "parameters_cell": spec.parameters_cell,
        "source_hash": spec.source_hash,
        "settings": spec.settings,
        "defaults": p.defaults,
        "upstream": list(p.upstream),
        "declares_upstream": p.declares_upstream,
        "product": p.product,
        "declares_product": p.declares_product,
        "connections": list(spec.connections),
    }


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_product(value: Any) -> bool:
    if value is None or isinstance(value, str):
        return True
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _spec_from_json(data: Any, path: Path, name: str, relpath: str) -> TaskSpec | None:
    """The spec a cache entry holds, or None when anything in it is not what nbflow writes."""
    if not isinstance(data, dict):
        return None
    kind = _kind_of_file(path).name
    cell = data.get("parameters_cell")
    defaults = data.get("defaults") or {}
    checks = (
        data.get("kind") == kind,
        isinstance(data.get("kernel_name"), str),
        isinstance(data.get("language"), str),
        cell is None or (isinstance(cell, int) and not isinstance(cell, bool) and cell >= 0),
        isinstance(data.get("source_hash"), str),
        isinstance(defaults, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in defaults.items()),
        _is_str_list(data.get("upstream")),
        isinstance(data.get("declares_upstream"), bool),
        _is_product(data.get("product")),
        isinstance(data.get("declares_product"), bool),
        data.get("settings") is None or isinstance(data.get("settings"), dict),
        _is_str_list(data.get("connections")),
    )
    if not all(checks):
        return None
    params = ParametersDecl(
        dict(defaults), tuple(data["upstream"]), data["declares_upstream"], data["product"], data["declares_product"]
    )
    return TaskSpec(
        name=name,
        path=path,
        relpath=relpath,
        kernel_name=data["kernel_name"],
        language=data["language"],
        params=params,
        parameters_cell=cell,
        source_hash=data["source_hash"],
        settings=data["settings"],
        kind=kind,
        connections=tuple(data["connections"]),
    )


def _is_stamp(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    )


def _load_cache(path: Path) -> dict[str, tuple[_Stamp, Any]]:
    """The cache's entries by relative path: (stamp, the spec as JSON, checked when used).

    JSON only: whatever the file holds, reading it runs nothing. A file that is not
    this version's format is ignored as a whole, an entry that is not well formed alone.
    """
    from nbflow import __version__

    try:
        if path.is_symlink() or path.stat().st_size > _CACHE_MAX_BYTES:
            return {}  # nbflow writes neither
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError):  # missing, cut short, not JSON
        return {}
    if not (
        isinstance(data, dict)
        and data.get("format") == _CACHE_FORMAT
        and data.get("version") == _CACHE_VERSION
        and data.get("nbflow") == __version__
        and isinstance(data.get("entries"), dict)
    ):
        return {}
    entries: dict[str, tuple[_Stamp, Any]] = {}
    for relpath, entry in data["entries"].items():
        if isinstance(entry, dict) and _is_stamp(entry.get("stamp")):
            stamp = entry["stamp"]
            entries[relpath] = ((stamp[0], stamp[1], stamp[2]), entry.get("spec"))
    return entries


#: a cache larger than this is not one nbflow wrote for a folder of notebooks
_CACHE_MAX_BYTES = 256 * 1024 * 1024


def _save_cache(state: StateDir, entries: dict[str, tuple[_Stamp, TaskSpec]]) -> None:
    from nbflow import __version__

    data = {
        "format": _CACHE_FORMAT,
        "version": _CACHE_VERSION,
        "nbflow": __version__,
        "entries": {rel: {"stamp": list(stamp), "spec": _spec_to_json(spec)} for rel, (stamp, spec) in entries.items()},
    }
    try:
        text = json.dumps(data, separators=(",", ":"))
    except (TypeError, ValueError):
        return  # a notebook's metadata JSON cannot hold: nothing to cache
    path = state.discovery_cache
    try:
        state.ensure()
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        state.legacy_discovery_cache.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only folder: no cache, same result


def discover(
    root: str | os.PathLike[str], cache: bool = True, *, save_cache: bool = True, within: Path | None = None
) -> Discovery:
    """Read every task file below ``root``; gather (not raise) per-file problems.

    With ``cache``, files unchanged since the last discovery are not read again; with
    ``save_cache`` too, what was read is kept for the next one (in ``_nbflow/``). A view
    passes ``save_cache=False``: then nothing is written. With ``within`` (a server's
    root), a notebook or folder reached through a symlink leading outside it is not read:
    it is an :class:`~nbflow.errors.OutsideFolderError` problem.

    Raises
    ------
    PipelineNotFoundError
        ``root`` is not a folder.
    """
    root_path = Path(root).resolve()
    if not root_path.is_dir():
        raise PipelineNotFoundError(str(root), "is not a folder (a pipeline is a folder of notebooks)")
    found = Discovery(root_path)
    state = StateDir(root_path)
    cache_path = state.discovery_cache
    if within is not None and not is_inside(cache_path, within):
        cache = False
    cached = _load_cache(cache_path) if cache else {}
    fresh: dict[str, tuple[_Stamp, TaskSpec]] = {}
    outside: list[Path] = []
    by_folded_name: dict[str, str] = {}
    for path in iter_task_paths(root_path, outside, within):
        name = task_name(root_path, path)
        relpath = path.relative_to(root_path).as_posix()
        if not _is_text(relpath):
            shown = relpath.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            reason = "its path is not valid UTF-8 text; rename it (task names are text)"
            found.problems.append(MalformedNotebookError(shown, reason, what=_kind_of_file(path).noun))
            continue
        folded = name.casefold()
        if folded in by_folded_name:
            found.problems.append(DuplicateTaskError(name, [by_folded_name[folded], relpath]))
            continue
        by_folded_name[folded] = relpath
        stamp = _stamp(path)
        hit = cached.get(relpath)
        spec = _spec_from_json(hit[1], path, name, relpath) if hit is not None and hit[0] == stamp else None
        if spec is None:
            try:
                spec = read_task_spec(path, name, relpath)
            except NbflowError as e:
                found.problems.append(e)
                continue
            if stamp is None or stamp != _stamp(path) or time.time_ns() - stamp[1] <= _RACY_NS:
                stamp = None  # changing now: not cached
        if spec.is_task:
            found.specs.append(spec)
        if stamp is not None:
            fresh[relpath] = (stamp, spec)
    for path in outside:
        found.problems.append(OutsideFolderError(path.relative_to(root_path).as_posix(), str(within)))
    if cache and save_cache and _changed(fresh, cached):
        _save_cache(state, fresh)
    found.specs.sort(key=lambda s: s.name)
    return found


def _changed(fresh: dict[str, tuple[_Stamp, TaskSpec]], cached: dict[str, tuple[_Stamp, Any]]) -> bool:
    if fresh.keys() != cached.keys():
        return True
    return any(fresh[k][0] != cached[k][0] or _spec_to_json(fresh[k][1]) != cached[k][1] for k in fresh)
