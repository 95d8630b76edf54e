"""A notebook that reproduces a failed attempt: its injected values, its working directory,
the cells before the failing one ready to run, the failing cell marked.

Built from the attempt's executed notebook (which holds the injected cell's literal
values); written under the pipeline's ``_nbflow/debug/``, never over the task's file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


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

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError


def prepare_debug(folder: Path, task: str, run_id: str | None = None) -> DebugNotebook:
    """Write the debug notebook of ``task``'s latest failed attempt (in ``run_id``, or the
    latest run where it failed) and say where it is and which cell failed."""
    raise NotImplementedError
