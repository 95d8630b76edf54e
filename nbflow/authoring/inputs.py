"""What a run would inject into a notebook now: its injected cell, for a live kernel.

Nothing here runs a task or changes a file: the caller (the ``%nbflow`` magic, the
panel, ``nbflow inputs``) runs :attr:`TaskInputs.code` in a kernel the user already has.
Looking writes nothing either: the folder is discovered without saving the discovery
cache, ``nbflow_tasks.py`` is read (never run), and the store is opened read-only.

An upstream is *missing* when the store holds no successful attempt of it, or when one of
its product files is not there. Its objects and tables (``s3://``, ``table://``) are not
probed (that would reach the network): its latest success vouches for them, and they are
listed in :attr:`TaskInputs.unchecked`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbflow.errors import NotATaskError, UnknownTaskError

#: the settings files that make a folder a pipeline's (pyproject.toml only with [tool.nbflow])
SETTINGS_FILES = ("nbflow.toml", "pyproject.toml")


@dataclass(frozen=True)
class MissingUpstream:
    """An upstream whose products a run would inject but that are not there (yet)."""

    task: str
    reason: str  # e.g. "it has not run successfully", "its product out/clean.csv is missing"


@dataclass(frozen=True)
class TaskInputs:
    """A notebook task's inputs as a run would inject them now."""

    task: str
    folder: Path  # the pipeline folder
    notebook: Path  # the task's source file
    cwd: Path  # the working directory a run gives the kernel
    language: str
    kernel_name: str
    parameters: dict[str, Any]  # what papermill injects: parameters, upstream, product
    secrets: tuple[str, ...]  # secret parameters, read from the environment by `code`
    code: str  # the injected cell a run would execute, in the notebook's language
    upstreams: tuple[str, ...]  # the task's direct upstreams
    missing: tuple[MissingUpstream, ...]
    #: the upstreams' object and table products, which are not probed (their success vouches)
    unchecked: tuple[str, ...] = ()
    #: each secret parameter's environment variable (the project's ``[secrets]``)
    secret_variables: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """The names ``code`` sets, in order."""
        return (*self.parameters, *sorted(self.secrets))

    def unset_secrets(self, environ: Mapping[str, str]) -> list[tuple[str, str]]:
        """``(parameter, variable)`` of each secret whose variable ``environ`` lacks: ``code``
        would fail to read it there."""
        return [(p, v) for p, v in sorted(self.secret_variables.items()) if v not in environ]

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "folder": str(self.folder),
            "notebook": str(self.notebook),
            "cwd": str(self.cwd),
            "language": self.language,
            "kernel_name": self.kernel_name,
            "parameters": self.parameters,
            "secrets": list(self.secrets),
            "secret_variables": dict(self.secret_variables),
            "code": self.code,
            "upstreams": list(self.upstreams),
            "missing": [{"task": m.task, "reason": m.reason} for m in self.missing],
            "unchecked": list(self.unchecked),
        }


def _is_settings_folder(folder: Path) -> bool:
    if (folder / "nbflow.toml").is_file():
        return True
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        return False
    import tomllib

    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    tool = data.get("tool")
    return isinstance(tool, dict) and "nbflow" in tool


def pipeline_folder(start: Path, stop: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (not above ``stop``) with nbflow's settings; else ``start``."""
    start = start.resolve()
    chain = [start, *start.parents]
    if stop is not None:
        stop = stop.resolve()
        if stop not in chain:
            raise NotATaskError(str(start), str(stop), f"it is outside {stop}")
        chain = chain[: chain.index(stop) + 1]
    return next((folder for folder in chain if _is_settings_folder(folder)), start)


def find_task(notebook: Path, stop: Path | None = None) -> tuple[Path, str]:
    """The pipeline folder (nearest settings file at or above the notebook's folder, not above
    ``stop``; else the notebook's folder) and the task name of ``notebook``.

    Reads the notebook's declarations (never runs it) to tell whether it is a task.

    Raises
    ------
    NotATaskError
        No such file, not a task file, in a folder discovery skips, or opted out.
    MalformedNotebookError
        The notebook cannot be read.
    """
    from nbflow.kinds import file_kind_for, file_kinds
    from nbflow.kinds.discovery import SKIPPED_DIRS, read_task_spec, task_name

    given = Path(notebook).absolute()
    path = given.parent.resolve() / given.name
    folder = pipeline_folder(path.parent, stop)
    shown = str(notebook)
    if not path.is_file():
        raise NotATaskError(shown, str(folder), "there is no such file")
    if file_kind_for(path) is None:
        suffixes = ", ".join(f"*{s}" for s in file_kinds())
        raise NotATaskError(shown, str(folder), f"tasks are {suffixes} files")
    relative = path.relative_to(folder)
    hidden = next((p for p in (folder.name, *relative.parts) if p.startswith(".")), None)
    skipped = hidden or next((p for p in path.parent.parts if p in SKIPPED_DIRS), None)
    if skipped is not None:
        raise NotATaskError(shown, str(folder), f"discovery skips {skipped} (hidden files and nbflow's own folders)")
    name = task_name(folder, path)
    spec = read_task_spec(path, name, relative.as_posix())
    if not spec.is_task:
        raise NotATaskError(shown, str(folder), 'its metadata says {"nbflow": {"task": false}}')
    return folder, name


def _missing(
    folder: Path, ups: tuple[str, ...], products: Mapping[str, Any]
) -> tuple[list[MissingUpstream], list[str]]:
    """Which upstreams have not produced what a run would inject; the URIs left unprobed."""
    from nbflow.engine.requests import product_paths, product_targets
    from nbflow.history import open_store

    if not ups:
        return [], []
    with open_store(folder, read_only=True) as store:
        last = store.last_successes()
    missing: list[MissingUpstream] = []
    unchecked: list[str] = []
    for up in ups:
        if up not in last:
            missing.append(MissingUpstream(up, "it has not run successfully"))
            continue
        gone = next((p for p in product_paths(products[up]) if not p.exists()), None)
        if gone is not None:
            shown = gone.relative_to(folder).as_posix() if gone.is_relative_to(folder) else str(gone)
            missing.append(MissingUpstream(up, f"its product {shown} is missing"))
        unchecked += product_targets(products[up])
    return missing, unchecked


def task_inputs(
    folder: Path, task: str, overrides: Mapping[str, Any] | None = None, *, within: Path | None = None
) -> TaskInputs:
    """The inputs of ``task`` of the pipeline in ``folder``, with ``-p``-style overrides.

    Raises
    ------
    UnknownTaskError
        The pipeline has no such task.
    NotATaskError
        The task does not run in a kernel (a SQL task, a Python task).
    PipelineValidationError
        The pipeline or an override is invalid, as a run would say.
    """
    from nbflow.engine.requests import injected_parameters
    from nbflow.kinds import kind_of
    from nbflow.kinds.notebook.inject import injected_source
    from nbflow.pipeline import Pipeline

    # looking: nothing runs, nothing is written; with ``within`` (a server's root), no notebook
    # is read through a symlink that leads outside it
    pipeline = Pipeline.from_dir(folder, save_cache=False, within=within)
    spec = pipeline.specs.get(task)
    if spec is None:
        raise UnknownTaskError(task, list(pipeline.specs))
    if not kind_of(spec.kind).uses_kernel:
        what = kind_of(spec.kind).noun
        raise NotATaskError(task, str(pipeline.root), f"it is a {what}; only notebooks take their inputs in a kernel")
    checked = pipeline.validate_params(overrides)
    parameters = injected_parameters(spec, pipeline.dag, pipeline.specs, checked)
    variables = {p: v for p, v in pipeline.project.secrets.items() if p in spec.params.defaults}
    ups = tuple(pipeline.dag.upstreams[task])
    upstream = parameters.get("upstream", {})
    missing, unchecked = _missing(pipeline.root, ups, upstream)
    code = injected_source(
        parameters, kernel_name=spec.kernel_name, language=spec.language, secrets=variables, variables=variables
    )
    return TaskInputs(
        task=task,
        folder=pipeline.root,
        notebook=spec.path,
        cwd=spec.folder,
        language=spec.language,
        kernel_name=spec.kernel_name,
        parameters=parameters,
        secrets=tuple(sorted(variables)),
        code=code,
        upstreams=ups,
        missing=tuple(missing),
        unchecked=tuple(unchecked),
        secret_variables=variables,
    )
