"""Operational settings: retries, timeouts, trigger rules, alerts, secrets, connections, output limits.

Two places, the notebook winning: project-wide in ``nbflow.toml`` (top level) or
``pyproject.toml`` (``[tool.nbflow]``) in the pipeline folder, with per-task sections
(``[tool.nbflow.tasks."etl/clean"]``); and in a notebook's own metadata (``"nbflow": {...}``,
editable in JupyterLab's property inspector). Invalid settings name their file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from nbflow.errors import InvalidSettingsError
from nbflow.project.connections import parse_connections_table

TRIGGER_RULES = ("all_success", "all_done", "one_failed", "one_success", "none_failed", "all_failed")
ALERT_EVENTS = ("failure", "retry", "success", "run_end")
RULE_ACTIONS = ("retry", "fail", "default")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
#: what a cell keeps of its output by default: a notebook JupyterLab opens with ease
MAX_CELL_OUTPUT = 5 * 10**6


def parse_duration(value: Any, where: str, key: str) -> float:
    """``30``, ``"30s"``, ``"5m"``, ``"1.5h"`` -> seconds."""
    if isinstance(value, bool):
        raise InvalidSettingsError(where, key, f'must be a duration like 30, "30s" or "5m" (got {value!r})')
    if isinstance(value, (int, float)) and 0 <= value < float("inf"):
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise InvalidSettingsError(where, key, f'must be a duration like 30, "30s" or "5m" (got {value!r})')
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_size(value: Any, where: str, key: str) -> int:
    """``5000000``, ``"5MB"``, ``"512 KiB"`` -> bytes (kB, MB, GB are powers of 1000; KiB, MiB, GiB of 1024)."""
    size: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        size = float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
    if size is None or not 1 <= size < float("inf"):
        raise InvalidSettingsError(
            where, key, f'must be a size like 5000000, "5MB" or "512KiB", above 0 (got {value!r})'
        )
    return int(size)


@dataclass(frozen=True)
class RetryRule:
    """Matches a failed attempt by exception name (a glob) or a pattern of its error; says what to do."""

    action: str
    match: str | None = None
    pattern: str | None = None
    delay: float | None = None

    def matches(self, ename: str | None, error: str | None) -> bool:
        import fnmatch

        if self.match is not None and not (ename and fnmatch.fnmatchcase(ename, self.match)):
            return False
        return not (self.pattern is not None and not re.search(self.pattern, error or ""))


@dataclass(frozen=True)
class EmailSettings:
    host: str
    to: tuple[str, ...]
    sender: str
    port: int = 25
    security: str = "none"  # none | starttls | ssl
    username_env: str | None = None
    password_env: str | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    timeout: float = 10.0
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DaskSettings:
    """Where ``executor = "dask"`` runs tasks (the ``[dask]`` table)."""

    #: a running scheduler's address; None: a LocalCluster on this machine
    scheduler: str | None = None
    #: where the workers see the pipeline folder, if not at the same path
    worker_root: str | None = None
    #: whether the workers see the pipeline folder (at its path or ``worker_root``); false: each
    #: task's source goes to the worker with it, its executed notebook and log come back, and
    #: its products must be URIs (``s3://``, ``table://``) or absolute paths outside the folder
    shared_folder: bool = True


@dataclass(frozen=True)
class TaskSettings:
    """The settings that apply to one task (project defaults, then its own)."""

    retries: int = 0
    #: retries for an attempt that could not reach a connection's system (ename ``ConnectionError``),
    #: even when ``retries`` is 0: a server that is down for a moment is not the task's fault
    connection_retries: int = 2
    retry_delay: float = 30.0
    #: Airflow's multiplier: delay x multiplier^(attempt-1); 1 keeps the delay constant
    retry_backoff: float = 1.0
    max_retry_delay: float | None = None
    #: spread each delay randomly over [delay/2, delay] (as Airflow's jitter does)
    retry_jitter: bool = False
    retry_on_timeout: bool = True
    retry_rules: tuple[RetryRule, ...] = ()
    timeout: float | None = None
    trigger_rule: str = "all_success"
    alert_on: tuple[str, ...] = ("failure",)
    #: characters of output a cell keeps in the executed notebook; the rest is counted, and a note says so
    max_cell_output: int = MAX_CELL_OUTPUT


@dataclass(frozen=True)
class ProjectSettings:
    """Everything from the project file: task defaults, per-task sections, alert channels, secrets."""

    source: str | None = None
    defaults: TaskSettings = field(default_factory=TaskSettings)
    tasks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    email: EmailSettings | None = None
    webhook: WebhookSettings | None = None
    #: parameter name -> the environment variable that holds its value
    secrets: Mapping[str, str] = field(default_factory=dict)
    #: connection name -> the environment variable that holds its URI (:mod:`nbflow.project.connections`)
    connections: Mapping[str, str] = field(default_factory=dict)
    #: a cron line or preset (``@daily``) for ``nbflow scheduler``
    schedule: str | None = None
    #: runs of this pipeline running or waiting at once under the scheduler
    max_active_runs: int = 1
    #: kernels started ahead of time for the tasks expected next (0: none)
    warm_kernels: int = 2
    #: how notebook kernels start: ``fork`` (from a template that imported ipykernel once) or ``fresh``
    kernel_start: str = "fork"
    #: modules the kernel template imports once for every forked kernel (``preload = ["pandas"]``)
    preload: tuple[str, ...] = ()
    #: where tasks execute by default: ``local`` or ``dask`` (``--executor`` overrides)
    executor: str = "local"
    dask: DaskSettings = field(default_factory=DaskSettings)

    def for_task(self, name: str, notebook: Mapping[str, Any] | None = None, notebook_path: str = "") -> TaskSettings:
        """Project defaults, then the project's section for ``name``, then the notebook's metadata."""
        settings = self.defaults
        if name in self.tasks:
            settings = _apply(settings, self.tasks[name], f"{self.source} [tasks.{name!r}]")
        if notebook:
            settings = _apply(settings, notebook, f"{notebook_path} (metadata 'nbflow')")
        return settings


#: a dotted module name (what ``preload`` lists)
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_TASK_KEYS = {f.name for f in fields(TaskSettings)} | {"alerts"}
_PROJECT_ONLY = {
    "tasks",
    "email",
    "webhook",
    "secrets",
    "connections",
    "schedule",
    "max_active_runs",
    "warm_kernels",
    "kernel_start",
    "preload",
    "executor",
    "dask",
}


def _apply(base: TaskSettings, raw: Mapping[str, Any], where: str) -> TaskSettings:
    """``base`` with the settings in ``raw`` (a TOML table or a notebook's metadata) applied."""
    if not isinstance(raw, Mapping):
        raise InvalidSettingsError(where, "nbflow", f"must be a table of settings (got {type(raw).__name__})")
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _PROJECT_ONLY:
            continue
        if key == "task":  # a notebook's own opt-out; discovery leaves out those set to false
            if not isinstance(value, bool):
                raise InvalidSettingsError(where, key, f"must be true or false (got {value!r})")
            continue
        if key not in _TASK_KEYS:
            import difflib

            close = difflib.get_close_matches(key, sorted(_TASK_KEYS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise InvalidSettingsError(where, key, f"is not an nbflow setting.{hint}")
        changes.update(_task_setting(key, value, where))
    return replace(base, **changes)


def _task_setting(key: str, value: Any, where: str) -> dict[str, Any]:
    def fail(expected: str) -> InvalidSettingsError:
        return InvalidSettingsError(where, key, f"must be {expected} (got {value!r})")

    if key in ("retries", "connection_retries"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise fail("a whole number of retries, 0 or more")
        return {key: value}
    if key in ("retry_delay", "max_retry_delay", "timeout"):
        if value is None and key != "retry_delay":
            return {key: None}
        seconds = parse_duration(value, where, key)
        if key == "timeout" and seconds <= 0:
            raise fail("a positive duration")
        return {key: seconds}
    if key == "retry_backoff":
        if value is True:  # Airflow 3.3: True means a constant delay
            return {key: 1.0}
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value < float("inf"):
            raise fail("a multiplier of 1 or more (1: constant delay, 2: doubling)")
        return {key: float(value)}
    if key in ("retry_jitter", "retry_on_timeout"):
        if not isinstance(value, bool):
            raise fail("true or false")
        return {key: value}
    if key == "trigger_rule":
        if value not in TRIGGER_RULES:
            raise fail("one of " + ", ".join(TRIGGER_RULES))
        return {key: value}
    if key in ("alert_on", "alerts"):
        events = [value] if isinstance(value, str) else value
        if not isinstance(events, list) or any(e not in ALERT_EVENTS for e in events):
            raise fail("a list of events among " + ", ".join(ALERT_EVENTS))
        return {"alert_on": tuple(events)}
    if key == "max_cell_output":
        return {key: parse_size(value, where, key)}
    if key == "retry_rules":
        if not isinstance(value, list):
            raise fail('a list of rules like {match = "ConnectionError", action = "retry"}')
        return {key: tuple(_rule(r, where) for r in value)}
    raise AssertionError(key)


def _rule(raw: Any, where: str) -> RetryRule:
    key = "retry_rules"
    if not isinstance(raw, Mapping):
        raise InvalidSettingsError(where, key, f"each rule must be a table (got {raw!r})")
    unknown = set(raw) - {"match", "pattern", "action", "delay"}
    if unknown:
        raise InvalidSettingsError(where, key, f"a rule has unknown keys: {', '.join(sorted(unknown))}")
    if raw.get("action") not in RULE_ACTIONS:
        raise InvalidSettingsError(where, key, f"a rule's action must be one of {', '.join(RULE_ACTIONS)}")
    for text_key in ("match", "pattern"):
        if raw.get(text_key) is not None and not isinstance(raw[text_key], str):
            raise InvalidSettingsError(where, key, f"a rule's {text_key!r} must be text (got {raw[text_key]!r})")
    if raw.get("match") is None and raw.get("pattern") is None:
        raise InvalidSettingsError(where, key, "a rule needs 'match' (an exception name) or 'pattern' (a regex)")
    pattern = raw.get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except (re.error, TypeError) as e:
            raise InvalidSettingsError(where, key, f"pattern {pattern!r} is not a valid regex ({e})") from None
    delay = raw.get("delay")
    return RetryRule(
        action=raw["action"],
        match=raw.get("match"),
        pattern=pattern,
        delay=None if delay is None else parse_duration(delay, where, f"{key}.delay"),
    )


def _email(raw: Any, where: str) -> EmailSettings:
    if not isinstance(raw, Mapping):
        raise InvalidSettingsError(where, "email", "must be a table")
    for required in ("host", "to", "sender"):
        if not raw.get(required):
            raise InvalidSettingsError(where, f"email.{required}", "is required")
    for secret in ("password", "username"):
        if secret in raw:
            raise InvalidSettingsError(
                where, f"email.{secret}", f"credentials come only from the environment: set {secret}_env instead"
            )
    for text_key in ("host", "sender", "username_env", "password_env"):
        if raw.get(text_key) is not None and not isinstance(raw[text_key], str):
            raise InvalidSettingsError(where, f"email.{text_key}", f"must be text (got {raw[text_key]!r})")
    to = raw["to"]
    if not (isinstance(to, str) or (isinstance(to, list) and all(isinstance(t, str) for t in to))):
        raise InvalidSettingsError(where, "email.to", f"must be an address or a list of addresses (got {to!r})")
    to = (to,) if isinstance(to, str) else tuple(to)
    security = raw.get("security", "none")
    if security not in ("none", "starttls", "ssl"):
        raise InvalidSettingsError(where, "email.security", "must be none, starttls or ssl")
    port = raw.get("port", {"ssl": 465, "starttls": 587}.get(security, 25))
    if isinstance(port, bool) or not isinstance(port, int):
        raise InvalidSettingsError(where, "email.port", f"must be a port number (got {port!r})")
    return EmailSettings(
        host=raw["host"],
        to=to,
        sender=raw["sender"],
        port=port,
        security=security,
        username_env=raw.get("username_env"),
        password_env=raw.get("password_env"),
        timeout=parse_duration(raw.get("timeout", 10), where, "email.timeout"),
    )


def _webhook(raw: Any, where: str) -> WebhookSettings:
    if isinstance(raw, str):
        raw = {"url": raw}
    if not isinstance(raw, Mapping) or not isinstance(raw.get("url"), str):
        raise InvalidSettingsError(where, "webhook", "needs a 'url'")
    headers = raw.get("headers", {})
    if not isinstance(headers, Mapping):
        raise InvalidSettingsError(where, "webhook.headers", "must be a table")
    return WebhookSettings(
        url=raw["url"],
        timeout=parse_duration(raw.get("timeout", 10), where, "webhook.timeout"),
        headers=tuple((str(k), str(v)) for k, v in headers.items()),
    )


def _dask(raw: Any, where: str) -> DaskSettings:
    if not isinstance(raw, Mapping):
        raise InvalidSettingsError(where, "dask", "must be a table, like [dask] (or [tool.nbflow.dask])")
    unknown = sorted(set(raw) - {"scheduler", "worker_root", "shared_folder"})
    if unknown:
        raise InvalidSettingsError(
            where, f"dask.{unknown[0]}", "is not a setting (scheduler, worker_root, shared_folder)"
        )
    for key in ("scheduler", "worker_root"):
        if key in raw and not (isinstance(raw[key], str) and raw[key]):
            raise InvalidSettingsError(where, f"dask.{key}", f"must be a non-empty string (got {raw[key]!r})")
    shared = raw.get("shared_folder", True)
    if not isinstance(shared, bool):
        raise InvalidSettingsError(where, "dask.shared_folder", f"must be true or false (got {shared!r})")
    if not shared and "worker_root" in raw:
        raise InvalidSettingsError(
            where,
            "dask.shared_folder",
            "is false but worker_root says where the workers see the folder: remove one of them",
        )
    return DaskSettings(scheduler=raw.get("scheduler"), worker_root=raw.get("worker_root"), shared_folder=shared)


def parse_project(raw: Mapping[str, Any], source: str) -> ProjectSettings:
    """Validate a project table (``[tool.nbflow]`` or a whole ``nbflow.toml``)."""
    defaults = _apply(TaskSettings(), raw, source)
    tasks = raw.get("tasks", {})
    if not isinstance(tasks, Mapping) or not all(isinstance(v, Mapping) for v in tasks.values()):
        raise InvalidSettingsError(source, "tasks", "must hold one table per task, like [tool.nbflow.tasks.train]")
    for name, table in tasks.items():
        _apply(defaults, table, f"{source} [tasks.{name!r}]")  # validate now, apply per task later
    secrets = raw.get("secrets", {})
    if not isinstance(secrets, Mapping) or not all(isinstance(v, str) and v for v in secrets.values()):
        raise InvalidSettingsError(source, "secrets", "must map parameter names to environment variable names")
    try:
        connections = parse_connections_table(raw.get("connections", {}))
    except ValueError as e:
        raise InvalidSettingsError(source, "connections", str(e)) from None
    schedule = raw.get("schedule")
    if schedule is not None:
        from croniter import croniter

        if not isinstance(schedule, str) or not croniter.is_valid(schedule):
            raise InvalidSettingsError(
                source, "schedule", f'must be a cron line like "0 6 * * *" or a preset like "@daily" (got {schedule!r})'
            )
    max_active = raw.get("max_active_runs", 1)
    if isinstance(max_active, bool) or not isinstance(max_active, int) or max_active < 1:
        raise InvalidSettingsError(source, "max_active_runs", f"must be 1 or more (got {max_active!r})")
    warm = raw.get("warm_kernels", 2)
    if isinstance(warm, bool) or not isinstance(warm, int) or warm < 0:
        raise InvalidSettingsError(source, "warm_kernels", f"must be 0 or more (got {warm!r})")
    kernel_start = raw.get("kernel_start", "fork")
    if kernel_start not in ("fork", "fresh"):
        raise InvalidSettingsError(source, "kernel_start", f'must be "fork" or "fresh" (got {kernel_start!r})')
    preload = raw.get("preload", [])
    if not isinstance(preload, list) or not all(isinstance(m, str) and _MODULE.fullmatch(m) for m in preload):
        raise InvalidSettingsError(
            source, "preload", f'must be a list of module names like ["numpy", "pandas"] (got {preload!r})'
        )
    executor = raw.get("executor", "local")
    if executor not in ("local", "dask"):
        raise InvalidSettingsError(source, "executor", f'must be "local" or "dask" (got {executor!r})')
    return ProjectSettings(
        executor=executor,
        dask=_dask(raw.get("dask", {}), source),
        warm_kernels=warm,
        kernel_start=kernel_start,
        preload=tuple(preload),
        schedule=schedule,
        max_active_runs=max_active,
        source=source,
        defaults=defaults,
        tasks=dict(tasks),
        email=_email(raw["email"], source) if "email" in raw else None,
        webhook=_webhook(raw["webhook"], source) if "webhook" in raw else None,
        secrets=dict(secrets),
        connections=connections,
    )


def load_project(root: Path) -> ProjectSettings:
    """The project settings of the pipeline folder ``root`` (defaults when it has none).

    Raises
    ------
    InvalidSettingsError
        The file is not valid TOML or holds an invalid setting.
    """
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    for name, table in (("nbflow.toml", None), ("pyproject.toml", ("tool", "nbflow"))):
        path = root / name
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise InvalidSettingsError(name, "", f"is not valid TOML ({e})") from None
        if table:
            for part in table:
                data = data.get(part, {}) if isinstance(data, dict) else {}
            if not data:
                continue
            return parse_project(data, f"{name} [tool.nbflow]")
        return parse_project(data, name)
    return ProjectSettings()
