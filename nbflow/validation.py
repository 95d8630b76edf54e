"""Checks of a pipeline beyond its graph: where products go, which kernels and secrets a run needs.

Each check takes what it looks at (the folder, the task specs, the project's secrets) and
returns or raises the problems, every one at once: :class:`~nbflow.pipeline.Pipeline`
calls them while it is built and before it runs, :mod:`nbflow.integrations.single` before
one task runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from nbflow.engine.requests import product_paths, product_targets, resolve_product
from nbflow.errors import (
    ConnectionVariableError,
    InvalidDeclarationError,
    NbflowError,
    ParameterError,
    PipelineValidationError,
    UnknownConnectionError,
    UnknownKernelError,
)
from nbflow.kinds import kind_of
from nbflow.paths import StateDir
from nbflow.project.connections import resolve_connection
from nbflow.project.secrets import Redactor
from nbflow.project.specs import TaskSpec
from nbflow.project.targets import ObjectTarget, TableTarget, parse_target


def product_problems(root: Path, spec: TaskSpec) -> list[NbflowError]:
    """A product may be anywhere but in nbflow's own folder of the pipeline at ``root``."""
    own = StateDir(root).path
    return [
        InvalidDeclarationError(
            spec.relpath,
            f"'product' {path} is inside nbflow's own folder {own}; write it elsewhere",
            spec.parameters_cell,
        )
        for path in product_paths(resolve_product(spec))
        if path == own or own in path.parents
    ]


def used_connections(spec: TaskSpec) -> list[str]:
    """The connections a task uses that nbflow can see: those it names, and its tables' (in order, once)."""
    names = list(spec.connections)
    for uri in product_targets(resolve_product(spec)):
        target = parse_target(uri)
        if isinstance(target, TableTarget):
            names.append(target.connection)
    return list(dict.fromkeys(names))


def target_problems(spec: TaskSpec) -> list[NbflowError]:
    """Each product URI must name an object or a table the way nbflow reads them."""
    problems: list[NbflowError] = []
    kind = kind_of(spec.kind)
    for uri in product_targets(resolve_product(spec)):
        try:
            parse_target(uri)
        except ValueError as e:
            problems.append(InvalidDeclarationError(spec.relpath, f"'product' {e}", spec.parameters_cell))
        else:
            if not kind.writes_uri_products:
                problems.append(
                    InvalidDeclarationError(
                        spec.relpath, f"an {kind.noun} writes its product to a file, not to {uri}", spec.parameters_cell
                    )
                )
    return problems


def check_connections(
    specs: Mapping[str, TaskSpec],
    names: Iterable[str],
    declared: Mapping[str, str],
    environ: Mapping[str, str] | None = None,
) -> None:
    """Every connection a named task uses must be defined, its variable set to a URI nbflow knows.

    Raises
    ------
    PipelineValidationError
        Naming each unknown connection (and the known ones) or variable (never its value).
    """
    environ = os.environ if environ is None else environ
    problems: dict[str, NbflowError] = {}
    for name in names:
        spec = specs[name]
        for connection in used_connections(spec):
            if connection in problems:
                continue
            try:
                resolve_connection(connection, declared, environ, used_by=spec.relpath)
            except (UnknownConnectionError, ConnectionVariableError) as e:
                problems[connection] = e
        objects = [uri for uri in product_targets(resolve_product(spec)) if isinstance(parse_target(uri), ObjectTarget)]
        if objects:
            # which S3 connection an object goes through is read from the URIs: a declared
            # connection that cannot be read might be the one, and the environment's
            # credentials must not be used in its place
            for connection in sorted(set(declared) - set(problems)):
                try:
                    resolve_connection(connection, declared, environ, used_by=spec.relpath)
                except ConnectionVariableError as e:
                    problems[connection] = e
    if problems:
        raise PipelineValidationError(list(problems.values()))


def check_secrets(specs: Mapping[str, TaskSpec], names: Iterable[str], secrets: Mapping[str, str]) -> None:
    """Every secret (parameter -> environment variable) a named task declares must be set,
    long enough to mask, and declared by a task of a kind that accepts secrets.

    Raises
    ------
    PipelineValidationError
        Naming each missing environment variable and who needs it.
    """
    names = list(names)
    problems: list[NbflowError] = []
    for parameter, var in sorted(secrets.items()):
        users = [specs[n] for n in names if parameter in specs[n].params.defaults]
        where = ", ".join(s.relpath for s in users)
        others = [s.relpath for s in users if not kind_of(s.kind).accepts_secrets]
        if others:
            problems.append(
                ParameterError(
                    f"the secret parameter {parameter!r} is declared by {', '.join(others)}; secrets reach notebook "
                    "tasks only (through the kernel's environment). Read the variable in the task itself."
                )
            )
        elif users and var not in os.environ:
            problems.append(
                ParameterError(
                    f"the secret parameter {parameter!r} comes from the environment variable {var}, which is not "
                    f"set ({where} declare {parameter!r}). Set it before the run."
                )
            )
        elif users and len(os.environ[var]) < Redactor.MIN_LENGTH:
            problems.append(
                ParameterError(
                    f"the secret in {var} is shorter than {Redactor.MIN_LENGTH} characters: too short to mask in "
                    "outputs without masking ordinary text."
                )
            )
    if problems:
        raise PipelineValidationError(problems)


def check_kernels(specs: Mapping[str, TaskSpec], names: Iterable[str]) -> None:
    """Every named task that runs in a kernel asks for one installed here.

    Raises
    ------
    PipelineValidationError
        Listing each notebook whose kernel is missing.
    """
    in_kernels = [specs[n] for n in names if kind_of(specs[n].kind).uses_kernel]
    if not in_kernels:  # a run of SQL, Python, HTTP or mongo tasks never loads jupyter_client
        return
    from jupyter_client.kernelspec import KernelSpecManager  # heavy: only when a run needs kernels

    installed = set(KernelSpecManager().find_kernel_specs())
    try:  # ipykernel's own kernel is always there when ipykernel is
        from ipykernel.kernelspec import KERNEL_NAME

        installed.add(KERNEL_NAME)
    except ImportError:
        pass
    problems: list[NbflowError] = [
        UnknownKernelError(spec.relpath, spec.kernel_name, sorted(installed))
        for spec in in_kernels
        if spec.kernel_name not in installed
    ]
    if problems:
        raise PipelineValidationError(problems)
