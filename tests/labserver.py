"""Helpers for the browser tests: a JupyterLab server on 127.0.0.1, and the machine's Chromium.

The browser is Debian's ``chromium`` (installed by ``scripts/setup`` with
NBFLOW_SETUP_BROWSER=1), driven by Playwright through ``executable_path``; Playwright
never downloads a browser here.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("NBFLOW_TEST_ARTIFACTS", REPO / "test-artifacts"))
#: flags for a headless Chromium on a machine without a network: nothing reaches out
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str:
    found = os.environ.get("NBFLOW_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError(
            "Chromium is not installed; the browser tests need it. Run the test command "
            "(scripts/test), which installs it, or: NBFLOW_SETUP_BROWSER=1 scripts/setup"
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]

    def page_url(self, path: str) -> str:
        return f"{self.url}/lab/tree/{path}?token={self.token}"


@contextmanager
def jupyter_lab(root: Path, home: Path) -> Iterator[Lab]:
    """JupyterLab serving ``root`` on 127.0.0.1 with a token; shut down (kernels too) on exit."""
    port, token = free_port(), secrets.token_hex(16)
    for sub in ("config", "runtime", "settings", "workspaces"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    news = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')  # no pop-up, nothing fetched
    # a notebook's kernel starts without asking, even before JupyterLab has listed the kernels
    tracker = home / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text('{"autoStartDefaultKernel": true}')
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "PYTHONWARNINGS": "ignore",
    }
    log = open(home / "lab.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",  # the default one lists packages from a registry
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lab = Lab(f"http://127.0.0.1:{port}", token, root, process)
    try:
        _wait_until_up(lab, home / "lab.log")
        yield lab
    except BaseException:
        _shut_down(lab)
        log.close()
        keep_artifact(home / "lab.log", "jupyter-server.log")
        raise
    else:
        _shut_down(lab)
        log.close()


def artifact_name(suffix: str) -> str:
    """``<test name>-<suffix>``: what a failing test leaves in ``test-artifacts/``."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "test").split(" ")[0].split("::")[-1]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{test}-{suffix}")[:150]


def keep_artifact(path: Path, suffix: str) -> None:
    """Copy ``path`` (a server's log, say) to ``test-artifacts/`` for the failing test."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with suppress(OSError):
        shutil.copyfile(path, ARTIFACTS / artifact_name(suffix))


def _wait_until_up(lab: Lab, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited ({lab.process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{lab.url}/api/status?token={lab.token}", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"JupyterLab did not start in {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def _shut_down(lab: Lab) -> None:
    try:  # the server stops its kernels on the way out
        req = urllib.request.Request(f"{lab.url}/api/shutdown?token={lab.token}", method="POST")
        urllib.request.urlopen(req, timeout=10).close()
    except OSError:
        pass
    try:
        lab.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(lab.process.pid, signal.SIGKILL)
        lab.process.wait(timeout=10)


@contextmanager
def browser_page(url: str, failure_shot: str, viewport: tuple[int, int] = (1400, 1000)) -> Iterator[object]:
    """A page of the machine's Chromium (Playwright) at ``url``; a screenshot lands in
    ``test-artifacts/<failure_shot>`` if the block fails."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        # a busy 2-core machine can be slow; a broken feature still fails, with its screenshot
        page.set_default_timeout(90_000)
        console: list[str] = []
        page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
        page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
        # should JupyterLab still ask for a kernel on a busy machine, the notebook's own is chosen: accept it
        page.add_locator_handler(
            page.locator(".jp-Dialog", has_text="Select Kernel"),
            lambda dialog: dialog.locator(".jp-mod-accept").click(),
        )
        try:
            page.goto(url)
            yield page
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / failure_shot), full_page=True)
            (ARTIFACTS / artifact_name("browser-console.log")).write_text("\n".join(console) + "\n")
            raise
        finally:
            browser.close()
