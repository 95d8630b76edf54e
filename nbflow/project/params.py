"""Parameter overrides: parse ``-p NAME=VALUE`` / ``-p TASK.NAME=VALUE`` and resolve them per task.

Values are parsed as YAML/JSON literals (``3``, ``0.5``, ``true``, ``[1, 2]``, ``{a: 1}``),
anything else stays a string. They reach a notebook as data through papermill's injected
parameters cell, never as code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbflow.errors import NbflowError, ParameterError, PipelineValidationError
from nbflow.project.specs import RESERVED_NAMES, TaskSpec

if TYPE_CHECKING:
    from datetime import datetime

_PLAIN = (str, int, float, bool, type(None))

#: the parameter a scheduled run passes to the notebooks that declare it
LOGICAL_DATE = "logical_date"


def logical_date_text(when: datetime) -> str:
    """A logical date as runs record it and tasks receive it (ISO, to the second)."""
    return when.isoformat(timespec="seconds")


def with_logical_date(
    params: Mapping[str, Any] | None, logical_date: str | None, specs: Iterable[TaskSpec]
) -> Mapping[str, Any] | None:
    """``params`` with ``logical_date`` passed as :data:`LOGICAL_DATE` when a task declares
    that parameter (an override of it wins)."""
    if logical_date is not None and any(LOGICAL_DATE in s.params.defaults for s in specs):
        return {LOGICAL_DATE: logical_date, **(params or {})}
    return params


def _is_plain_data(value: Any) -> bool:
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, list):
        return all(_is_plain_data(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain_data(v) for k, v in value.items())
    return False


_loader: Any = None


def _yaml_loader() -> Any:
    """PyYAML's safe loader with YAML 1.2's booleans and floats: ``no`` stays a string, ``1e-3`` is a float."""
    global _loader
    if _loader is None:
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        Loader.yaml_implicit_resolvers = {
            first: [
                (tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:float")
            ]
            for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
        }
        Loader.add_implicit_resolver(
            "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
        )
        Loader.add_implicit_resolver(
            "tag:yaml.org,2002:float",
            re.compile(
                r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
            ),
            list("-+0123456789."),
        )
        _loader = Loader
    return _loader


def parse_value(text: str) -> Any:
    """``"3"`` -> 3, ``"1e-3"`` -> 0.001, ``"[1, 2]"`` -> [1, 2], ``"no"`` -> "no"; dates stay text."""
    import yaml

    try:
        value = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        return text
    if text.strip() == "" or not _is_plain_data(value):
        return text
    return value


@dataclass(frozen=True)
class Overrides:
    """Parameter overrides for a run: for every task that declares the name, or for one task."""

    everywhere: dict[str, Any] = field(default_factory=dict)
    per_task: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any] | None) -> Overrides:
        """``{"n": 3, "train.lr": 0.1}``: keys with a dot set one task's parameter."""
        everywhere: dict[str, Any] = {}
        per_task: dict[str, dict[str, Any]] = {}
        for key, value in (params or {}).items():
            task, dot, name = key.rpartition(".")
            if dot:
                per_task.setdefault(task, {})[name] = value
            else:
                everywhere[name] = value
        return cls(everywhere, per_task)

    def as_dict(self) -> dict[str, Any]:
        """The flat ``{"name": v, "task.name": v}`` form stored with a run."""
        flat = dict(self.everywhere)
        for task, values in self.per_task.items():
            flat.update({f"{task}.{k}": v for k, v in values.items()})
        return flat

    def for_task(self, spec: TaskSpec) -> dict[str, Any]:
        """The overrides that reach ``spec``: global ones it declares, then its own."""
        values = {k: v for k, v in self.everywhere.items() if k in spec.params.defaults}
        values.update(self.per_task.get(spec.name, {}))
        return values


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``NAME=VALUE`` strings from the command line.

    Raises
    ------
    ParameterError
        An item has no ``=`` or no name.
    """
    params: dict[str, Any] = {}
    for item in items:
        name, eq, text = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise ParameterError(f"-p {item!r} is not NAME=VALUE (or TASK.NAME=VALUE).")
        params[name] = parse_value(text)
    return params


def validate_overrides(
    overrides: Overrides, specs: Mapping[str, TaskSpec], secrets: Mapping[str, str] | None = None
) -> None:
    """Check every override against what the notebooks declare.

    Raises
    ------
    PipelineValidationError
        Listing each override that no notebook declares, names a missing task, or sets
        ``upstream``/``product``.
    """
    problems: list[NbflowError] = []
    secret_names = set(secrets or {})
    for name in sorted(
        (set(overrides.everywhere) | {n for v in overrides.per_task.values() for n in v}) & secret_names
    ):
        problems.append(
            ParameterError(
                f"-p {name}=... : {name!r} is a secret; it comes only from the environment variable "
                f"{(secrets or {})[name]}, so that it is never written down."
            )
        )
    for name, value in overrides.everywhere.items():
        if name in secret_names:
            continue
        if name in RESERVED_NAMES:
            problems.append(
                ParameterError(f"-p {name}=... : {name!r} is set by nbflow from the graph, not by a parameter.")
            )
        elif not name.isidentifier():
            problems.append(ParameterError(f"-p {name}=... : {name!r} is not a valid parameter name."))
        elif not any(name in s.params.defaults for s in specs.values()):
            declared = sorted({p for s in specs.values() for p in s.params.defaults})
            problems.append(
                ParameterError(
                    f"-p {name}=... : no notebook declares a parameter {name!r} in its parameters cell. "
                    f"Declared: {', '.join(declared) or '(none)'}."
                )
            )
        if not _is_plain_data(value):
            problems.append(ParameterError(f"-p {name}: the value must be plain data (got {type(value).__name__})."))
    for task, values in overrides.per_task.items():
        spec = specs.get(task)
        if spec is None:
            from nbflow.errors import UnknownTaskError

            names = ", ".join(f"{task}.{name}" for name in values)
            problems.append(UnknownTaskError(task, list(specs), context=f"-p {names}=..."))
            continue
        for name in values:
            if name in RESERVED_NAMES:
                problems.append(ParameterError(f"-p {task}.{name}=... : {name!r} is set by nbflow from the graph."))
            elif name not in spec.params.defaults:
                problems.append(
                    ParameterError(
                        f"-p {task}.{name}=... : {spec.relpath} declares no parameter {name!r}. "
                        f"Declared: {', '.join(sorted(spec.params.defaults)) or '(none)'}."
                    )
                )
    if problems:
        raise PipelineValidationError(problems)
