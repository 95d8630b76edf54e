"""What a run would inject into a notebook now: its injected cell, for a live kernel.

Nothing here runs a task or changes a file: the caller (the ``%nbflow`` magic, the
panel, ``nbflow inputs``) runs :attr:`TaskInputs.code` in a kernel the user already has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError


def find_task(notebook: Path, stop: Path | None = None) -> tuple[Path, str]:
    """The pipeline folder (nearest settings file at or above the notebook's folder, not above
    ``stop``; else the notebook's folder) and the task name of ``notebook``."""
    raise NotImplementedError


def task_inputs(folder: Path, task: str, overrides: Mapping[str, Any] | None = None) -> TaskInputs:
    """The inputs of ``task`` of the pipeline in ``folder``, with ``-p``-style overrides."""
    raise NotImplementedError
