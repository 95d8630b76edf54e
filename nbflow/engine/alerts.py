"""Alerts: email (SMTP) and webhooks (JSON POST), sent in the background.

A :class:`Notifier` is a run listener. It turns task events into :class:`Alert` messages
for the events each task's settings ask for (``failure``, ``retry``, ``success``) and the
project's ``run_end``. It sends them from a background thread, so a channel that is slow
or down never slows or breaks a run. Each delivery, good or bad, is recorded in the store.
Credentials come only from environment variables.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import smtplib
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from typing import Any, Protocol

from nbflow import states
from nbflow.execution.base import AttemptOutcome, utcnow
from nbflow.project.settings import EmailSettings, ProjectSettings, TaskSettings, WebhookSettings
from nbflow.store.base import NotificationRecord, RunRecord, RunStore, TaskRecord
from nbflow.views.text import counts_text

log = logging.getLogger("nbflow.alerts")

TRACEBACK_LINES = 20
_EVENT_OF_STATE = {states.FAILED: "failure", states.UP_FOR_RETRY: "retry", states.SUCCESS: "success"}


@dataclass(frozen=True)
class Alert:
    """One message about a task (or a whole run, when ``task`` is None)."""

    event: str
    pipeline: str
    run_id: str
    task: str | None
    attempt: int | None
    state: str
    error: str | None = None
    traceback_tail: str | None = None
    output_notebook: str | None = None

    @property
    def subject(self) -> str:
        what = f"task {self.task} {self.state}" if self.task else f"run {self.state}"
        return f"[nbflow] {what} in {os.path.basename(self.pipeline) or self.pipeline} (run {self.run_id})"

    @property
    def text(self) -> str:
        lines = [self.subject, "", f"Pipeline: {self.pipeline}", f"Run: {self.run_id}"]
        if self.task:
            lines += [f"Task: {self.task}", f"Attempt: {self.attempt}", f"State: {self.state}"]
        if self.error:
            lines.append(f"Error: {self.error}")
        if self.output_notebook:
            lines.append(f"Executed notebook: {self.output_notebook}")
        if self.task:
            lines.append(f"Log: nbflow logs {self.pipeline} {self.task} --run {self.run_id}")
        if self.traceback_tail:
            lines += ["", "Traceback (last lines):", self.traceback_tail]
        return "\n".join(lines) + "\n"


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver, or raise."""


class EmailChannel:
    """SMTP through smtplib: plain, STARTTLS or SSL; login only with credentials from the environment."""

    name = "email"

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings

    def send(self, alert: Alert) -> None:
        s = self.settings
        message = EmailMessage()
        message["Subject"] = alert.subject
        message["From"] = s.sender
        message["To"] = ", ".join(s.to)
        message.set_content(alert.text)
        if s.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        with smtp:
            if s.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            username = os.environ.get(s.username_env) if s.username_env else None
            if username:
                smtp.login(username, os.environ.get(s.password_env or "", ""))
            smtp.send_message(message)


class WebhookChannel:
    """A JSON POST; the ``text`` field makes chat incoming webhooks show the message as is."""

    name = "webhook"

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings

    def send(self, alert: Alert) -> None:
        body = json.dumps({"text": alert.text, **asdict(alert)}).encode()
        headers = {"Content-Type": "application/json", **dict(self.settings.headers)}
        request = urllib.request.Request(self.settings.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.settings.timeout) as response:  # noqa: S310 - a configured URL
            if not 200 <= response.status < 300:
                raise urllib.error.HTTPError(
                    self.settings.url, response.status, "not a 2xx answer", response.headers, None
                )


def channels_for(project: ProjectSettings) -> list[Channel]:
    channels: list[Channel] = []
    if project.email is not None:
        channels.append(EmailChannel(project.email))
    if project.webhook is not None:
        channels.append(WebhookChannel(project.webhook))
    return channels


class Notifier:
    """A run listener that sends alerts in the background and records each delivery."""

    #: seconds the end of a run waits for alerts still being sent
    DRAIN_TIMEOUT = 30.0

    def __init__(
        self,
        channels: Sequence[Channel],
        settings: Mapping[str, TaskSettings],
        run_events: Sequence[str],
        store: RunStore | None = None,
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.channels = list(channels)
        self.settings = settings
        self.run_events = set(run_events)
        self.store = store
        self.redact = redact
        self._queue: queue.Queue[Alert | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def _enqueue(self, alert: Alert) -> None:
        if not self.channels:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._send_loop, name="nbflow-alerts", daemon=True)
            self._thread.start()
        self._queue.put(alert)

    def on_task(self, *, run: RunRecord, task: TaskRecord, outcome: AttemptOutcome | None = None, **_: Any) -> None:
        event = _EVENT_OF_STATE.get(task.state)
        settings = self.settings.get(task.task)
        if event is None or settings is None or event not in settings.alert_on:
            return
        tb = outcome.traceback if outcome is not None else None
        tail = "\n".join(tb.rstrip().splitlines()[-TRACEBACK_LINES:]) if tb else None
        self._enqueue(
            Alert(
                event=event,
                pipeline=run.pipeline,
                run_id=run.run_id,
                task=task.task,
                attempt=task.attempts,
                state=task.state,
                error=self.redact(task.error) if task.error else None,
                traceback_tail=self.redact(tail) if tail else None,
                output_notebook=task.output_notebook,
            )
        )

    def on_run_end(self, *, run: RunRecord, tasks: Mapping[str, TaskRecord], **_: Any) -> None:
        if "run_end" in self.run_events:
            self._enqueue(Alert("run_end", run.pipeline, run.run_id, None, None, run.state, error=counts_text(tasks)))
        self.close()

    def close(self) -> None:
        """Wait (bounded) for the alerts being sent."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(self.DRAIN_TIMEOUT)
        if self._thread.is_alive():
            log.warning("nbflow: warning: alerts are still being sent; giving up on them")
        self._thread = None

    def _send_loop(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            for channel in self.channels:
                error = None
                try:
                    channel.send(alert)
                except Exception as e:  # a channel that is down must not break the run
                    error = f"{type(e).__name__}: {e}"
                    log.warning(
                        "nbflow: warning: could not send the %s alert by %s: %s", alert.event, channel.name, error
                    )
                if self.store is not None:
                    self.store.save_notification(
                        NotificationRecord(
                            alert.run_id,
                            alert.task,
                            alert.attempt,
                            alert.event,
                            channel.name,
                            error is None,
                            error,
                            utcnow(),
                        )
                    )
