"""Whether a failed attempt is tried again, and after how long. Pure: no clock, no I/O.

Backoff is Airflow's: ``retry_delay x retry_backoff^(attempt-1)``, capped at
``max_retry_delay``, optionally spread over ``[delay/2, delay]`` (jitter). Rules are read
in order; the first that matches the attempt's exception name (a glob) and/or its error
(a regex) decides: ``retry`` (optionally with its own delay), ``fail`` at once, or
``default`` (what the settings say). An attempt that could not reach a database or an
object store (``ConnectionError``) is retried ``connection_retries`` times (default 2)
even when ``retries`` is 0.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from nbflow.project.settings import RetryRule, TaskSettings

#: the exception name of an attempt that could not reach a connection's system (retried by
#: ``connection_retries`` even when ``retries`` is 0)
CONNECTION_ERROR = "ConnectionError"
#: no wait is longer than a day, whatever the backoff computes
MAX_DELAY = 86400.0


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0
    reason: str = ""


def backoff_delay(settings: TaskSettings, attempt: int, rng: random.Random | None = None) -> float:
    """The wait before attempt ``attempt + 1``."""
    try:
        delay = settings.retry_delay * settings.retry_backoff ** (attempt - 1)
    except OverflowError:
        delay = math.inf
    if settings.max_retry_delay is not None:
        delay = min(delay, settings.max_retry_delay)
    delay = min(delay, MAX_DELAY)
    if settings.retry_jitter:
        delay = (rng or random).uniform(delay / 2, delay)
    return delay


def matching_rule(settings: TaskSettings, ename: str | None, error: str | None) -> RetryRule | None:
    """The first of the task's ``retry_rules`` that matches this failure (it alone decides)."""
    return next((rule for rule in settings.retry_rules if rule.matches(ename, error)), None)


def decide(
    settings: TaskSettings,
    attempt: int,
    ename: str | None,
    error: str | None,
    rng: random.Random | None = None,
) -> RetryDecision:
    """After failed attempt number ``attempt`` (1-based): try again, and when?"""
    allowed = settings.retries
    if ename == CONNECTION_ERROR:
        allowed = max(allowed, settings.connection_retries)
    if attempt > allowed:
        return RetryDecision(False, reason=f"no retries left ({allowed} allowed)")
    if ename == "TaskTimeout" and not settings.retry_on_timeout:
        return RetryDecision(False, reason="timeouts are not retried (retry_on_timeout = false)")
    rule = matching_rule(settings, ename, error)
    if rule is not None and rule.action == "fail":
        return RetryDecision(False, reason=f"a rule says {ename or 'this error'} fails at once")
    if rule is not None and rule.action == "retry" and rule.delay is not None:
        return RetryDecision(True, rule.delay, "a rule's own delay")
    return RetryDecision(True, backoff_delay(settings, attempt, rng), "backoff")
