"""Alerts reach a real SMTP server and a real HTTP server started here; a dead channel harms nothing."""

from __future__ import annotations

import email
import email.policy
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from nbflow.pipeline import Pipeline
from tests.conftest import free_port, http_server, write_notebook


@pytest.fixture
def webhook_server():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's hook name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    with http_server(Handler) as base:
        yield f"{base}/hook", received


def test_failure_retry_and_run_end_alerts_arrive_by_email_and_webhook(
    tmp_path: Path, smtp_server, webhook_server
) -> None:
    host, port, inbox = smtp_server
    url, received = webhook_server
    (tmp_path / "nbflow.toml").write_text(
        f'alert_on = ["failure", "retry", "run_end"]\n'
        f'[email]\nhost = "{host}"\nport = {port}\nsender = "nbflow@example.test"\nto = ["team@example.test"]\n'
        f'[webhook]\nurl = "{url}"\n'
        "[tasks.train]\nretries = 1\nretry_delay = 0\n"
    )
    write_notebook(tmp_path, "train", "upstream = None", "x = 1", "raise ValueError('loss is nan')")
    write_notebook(tmp_path, "ok", "upstream = None", "print('fine')")
    result = Pipeline.from_dir(tmp_path).run(workers=2)
    assert result.states == {"train": "failed", "ok": "success"}

    events = [(m["event"], m["task"], m["attempt"]) for m in received]
    assert events == [("retry", "train", 1), ("failure", "train", 2), ("run_end", None, None)]
    failure = received[1]
    assert failure["pipeline"] == str(tmp_path) and failure["run_id"] == result.run_id
    assert failure["error"].startswith("ValueError: loss is nan")
    assert "raise ValueError('loss is nan')" in failure["traceback_tail"]
    assert failure["output_notebook"].endswith("train/attempt-2.ipynb")
    assert "Task: train" in failure["text"]

    assert len(inbox.messages) == 3
    sender, recipients, content = inbox.messages[1]
    assert sender == "nbflow@example.test" and recipients == ["team@example.test"]
    mail = email.message_from_string(content, policy=email.policy.default)
    assert mail["Subject"] == f"[nbflow] task train failed in {tmp_path.name} (run {result.run_id})"
    body = mail.get_content()
    assert "Error: ValueError: loss is nan" in body and "Executed notebook:" in body

    with Pipeline.from_dir(tmp_path).open_store() as store:
        deliveries = store.get_notifications(result.run_id)
    assert len(deliveries) == 6 and all(d.ok for d in deliveries)


def test_a_channel_that_is_down_is_recorded_and_harms_nothing(tmp_path: Path, caplog) -> None:
    (tmp_path / "nbflow.toml").write_text(
        f'alert_on = ["failure", "success"]\n[webhook]\nurl = "http://127.0.0.1:{free_port()}/down"\ntimeout = 2\n'
    )
    write_notebook(tmp_path, "a", "upstream = None", "print('a')")
    result = Pipeline.from_dir(tmp_path).run(workers=1)
    assert result.ok
    with Pipeline.from_dir(tmp_path).open_store() as store:
        [delivery] = store.get_notifications(result.run_id)
    assert not delivery.ok and "refused" in delivery.error.lower()
    assert "could not send the success alert by webhook" in caplog.text  # the nbflow.alerts logger (the CLI prints it)
    from click.testing import CliRunner

    from nbflow.cli import cli

    status = json.loads(CliRunner().invoke(cli, ["status", str(tmp_path), "--json"]).stdout)
    assert status["alerts"][0]["ok"] is False and status["alerts"][0]["event"] == "success"
    assert "alerts: 0 sent, 1 failed" in CliRunner().invoke(cli, ["status", str(tmp_path)]).stdout
