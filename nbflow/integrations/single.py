"""Run one task of a pipeline, outside a run: what another orchestrator (Airflow) calls.

The task gets exactly what it gets in ``nbflow run``: the same injected parameters
(overrides, ``upstream`` = its upstreams' products, ``product``), its own folder as
working directory, a fresh kernel, the same product check and secrets. Ordering, retries
and records are the calling orchestrator's: nothing is written to nbflow's state store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbflow.engine.requests import task_request
from nbflow.errors import UnknownTaskError
from nbflow.execution.base import AttemptControl, AttemptOutcome, TaskRequest
from nbflow.executors.attempt import needs_kernel, run_attempt
from nbflow.pipeline import Pipeline
from nbflow.project.params import with_logical_date
from nbflow.validation import check_connections, check_kernels, check_secrets


def run_one(
    pipeline: Pipeline,
    name: str,
    *,
    run_id: str,
    run_dir: str | os.PathLike[str],
    attempt: int = 1,
    params: Mapping[str, Any] | None = None,
    logical_date: str | None = None,
) -> tuple[TaskRequest, AttemptOutcome]:
    """Run attempt ``attempt`` of task ``name``; its executed notebook and log go in
    ``run_dir/name/``. Returns the request and how it went (never raises for the task).

    Raises
    ------
    UnknownTaskError
        ``name`` is not a task of the pipeline.
    PipelineValidationError
        A bad parameter, or a kernel or secret the task needs is missing.
    """
    pipeline.load_code()  # running: the folder's nbflow_tasks.py runs
    if name not in pipeline.specs:
        raise UnknownTaskError(name, list(pipeline.specs))
    overrides = pipeline.validate_params(with_logical_date(params, logical_date, pipeline.specs.values()))
    check_kernels(pipeline.specs, [name])
    check_secrets(pipeline.specs, [name], pipeline.project.secrets)
    check_connections(pipeline.specs, [name], pipeline.project.connections)
    request = task_request(
        pipeline.specs,
        pipeline.dag,
        pipeline.settings,
        pipeline.project.secrets,
        Path(run_dir),
        run_id,
        name,
        attempt,
        overrides,
        pipeline.project.connections,
    )
    launcher = None
    if needs_kernel(request):
        from nbflow.execution.kernels import KernelLauncher

        launcher = KernelLauncher(max_concurrent_starts=1, warm=0)
    try:
        outcome = run_attempt(request, launcher, AttemptControl())
    finally:
        if launcher is not None:
            launcher.close()
    return request, outcome
