"""What one attempt of a task is given: its parameters, its products, where its files go.

Pure but for resolving paths: the runner, the planner (``incremental``) and
``single.run_one`` build the same :class:`~nbflow.execution.base.TaskRequest` from here.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbflow.core.dag import DAG
from nbflow.execution.base import TaskRequest
from nbflow.kinds import kind_of
from nbflow.paths import AttemptPaths
from nbflow.project.params import Overrides
from nbflow.project.settings import TaskSettings
from nbflow.project.specs import Product, TaskSpec
from nbflow.project.targets import is_remote


def _resolve(folder: Path, value: str) -> str:
    return value if is_remote(value) else str((folder / value).resolve())


def resolve_product(spec: TaskSpec) -> Product:
    """The task's declared product with each path made absolute (relative to its file's
    folder); URIs (``s3://``, ``table://``) as they are."""
    product = spec.product
    if product is None:
        return None
    if isinstance(product, str):
        return _resolve(spec.folder, product)
    return {key: _resolve(spec.folder, path) for key, path in product.items()}


def _values(product: Product) -> tuple[str, ...]:
    if product is None:
        return ()
    return (product,) if isinstance(product, str) else tuple(product.values())


def product_paths(product: Product) -> tuple[Path, ...]:
    """The local files of a (resolved) product."""
    return tuple(Path(p) for p in _values(product) if not is_remote(p))


def product_targets(product: Product) -> tuple[str, ...]:
    """The URIs of a (resolved) product: objects and tables."""
    return tuple(p for p in _values(product) if is_remote(p))


def injected_parameters(
    spec: TaskSpec, dag: DAG, specs: Mapping[str, TaskSpec], overrides: Overrides
) -> dict[str, Any]:
    """What a task is given: overrides (after its declared defaults, for a kind that injects
    them), then ``upstream`` and ``product``; a notebook's are injected by papermill."""
    params = overrides.for_task(spec)
    if kind_of(spec.kind).injects_defaults:
        params = {**{k: ast.literal_eval(v) for k, v in spec.params.defaults.items()}, **params}
    ups = dag.upstreams[spec.name]
    if ups or spec.params.declares_upstream:
        params["upstream"] = {up: resolve_product(specs[up]) for up in ups}
    if spec.params.declares_product:
        params["product"] = resolve_product(spec)
    return params


def task_request(
    specs: Mapping[str, TaskSpec],
    dag: DAG,
    settings: Mapping[str, TaskSettings],
    secrets: Mapping[str, str],
    run_dir: Path,
    run_id: str,
    name: str,
    attempt: int,
    overrides: Overrides,
    connections: Mapping[str, str] | None = None,
) -> TaskRequest:
    """What an executor needs to run attempt ``attempt`` of task ``name``; its files go in ``run_dir/name/``."""
    spec = specs[name]
    files = AttemptPaths.in_run_dir(run_dir, name, attempt)
    return TaskRequest(
        run_id=run_id,
        task=name,
        attempt=attempt,
        source=spec.path,
        cwd=spec.folder,
        kernel_name=spec.kernel_name,
        parameters=injected_parameters(spec, dag, specs, overrides),
        output_notebook=files.notebook,
        log_path=files.log,
        products=product_paths(resolve_product(spec)),
        targets=product_targets(resolve_product(spec)),
        connections=dict(connections or {}),
        timeout=settings[name].timeout,
        max_cell_output=settings[name].max_cell_output,
        kind=spec.kind,
        target=spec.target,
        secrets={p: var for p, var in secrets.items() if p in spec.params.defaults},
    )
