"""Shared fixtures: notebooks built in temporary pipeline folders, and CLI helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from click.testing import CliRunner
from nbformat.v4 import new_code_cell, new_notebook

from nbflow.cli import cli

HERE = Path(__file__).parent
REPO = HERE.parent


def notebook_path(name: str) -> Path:
    """A fixture notebook from ``tests/notebooks/``, named for what it triggers."""
    return HERE / "notebooks" / name


def write_notebook(
    folder: Path,
    name: str,
    parameters: str | None = None,
    *cells: str,
    kernel: str = "python3",
) -> Path:
    """Write ``folder/name.ipynb``: a tagged parameters cell (if given), then code cells."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "language": "python", "display_name": kernel}
    if parameters is not None:
        cell = new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells.extend(new_code_cell(src) for src in cells)
    path = folder / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def make_notebook(tmp_path: Path):
    """``make_notebook("clean", 'upstream = ["load"]', "print(1)")`` writes into ``tmp_path``."""

    def make(name: str, parameters: str | None = None, *cells: str, **kwargs: Any) -> Path:
        return write_notebook(tmp_path, name, parameters, *cells, **kwargs)

    return make


class CliResult:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"<exit {self.exit_code}\nstdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}>"


@pytest.fixture
def nbflow_cli():
    """Run the CLI in-process (click's runner) and return exit code, stdout and stderr."""

    def invoke(*args: str) -> CliResult:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return invoke


def nbflow_process(*args: str, cwd: Path | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``nbflow`` as a real separate process."""
    return subprocess.run(
        [sys.executable, "-m", "nbflow", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=300,
        **kwargs,
    )


def rendezvous(folder: Path, me: str, *others: str, timeout: float = 240) -> str:
    """Notebook code that says ``me`` is running, then waits until every one of ``others`` is.

    Tasks that must overlap meet here instead of sleeping and hoping: if they never run
    at the same time, the code raises (after a generous ``timeout``) and the task fails.
    """
    return (
        "import pathlib, time\n"
        f"_here = pathlib.Path({str(folder)!r})\n"
        f"(_here / {me + '.running'!r}).touch()\n"
        f"_deadline = time.monotonic() + {timeout}\n"
        f"while not all((_here / f'{{o}}.running').exists() for o in {list(others)!r}):\n"
        "    assert time.monotonic() < _deadline, 'the other tasks never ran at the same time'\n"
        "    time.sleep(0.05)\n"
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def smtp_server():
    """A real SMTP server on 127.0.0.1: (host, port, inbox)."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.hostname, controller.port, inbox
    finally:
        controller.stop()


def live_kernels(pid: int | None = None) -> list[Any]:
    """The kernel processes below ``pid`` (default: this process) that are still alive.

    A zombie (a kernel that has exited and waits for its parent to reap it) is not one.
    """
    import psutil

    found = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "ipykernel" in " ".join(p.cmdline()):
                found.append(p)
        except psutil.Error:  # gone, or a zombie, meanwhile
            continue
    return found
