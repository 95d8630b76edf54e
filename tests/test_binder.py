"""binder/ builds a working environment, as Binder would: its requirements, then postBuild.

Checked without Docker: a fresh virtual environment gets binder/requirements.txt, then
binder/postBuild runs from a copy of the repository with that environment first on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
BINDER = REPO / "binder"


def _pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        found += [Requirement(r) for r in extra]
    return {r.name.lower(): r for r in found}


def test_binder_is_in_step_with_pyproject() -> None:
    ours = _pyproject_requirements()
    lines = [line.strip() for line in (BINDER / "requirements.txt").read_text().splitlines()]
    for line in (x for x in lines if x and not x.startswith("#")):
        req = Requirement(line)
        assert req.name.lower() in ours, (
            f"binder/requirements.txt installs {req.name}, which pyproject.toml does not name"
        )
        assert req.specifier == ours[req.name.lower()].specifier, (
            f"{req.name}: {req.specifier} here, {ours[req.name.lower()].specifier} in pyproject.toml"
        )
    post = (BINDER / "postBuild").read_text()
    assert '".[example]"' in post and "scripts/build-extension" in post
    assert os.access(BINDER / "postBuild", os.X_OK)
    assert "graphviz" in (BINDER / "apt.txt").read_text().split()


def _tracked_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    return dest


@pytest.mark.timeout(1500)
def test_a_binder_environment_runs_the_example_with_the_panel_and_widgets(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs the repository's git checkout to copy what Binder would see")
    repo = _tracked_copy(tmp_path / "repo")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPATH", None)
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "jupyter-config")

    def run(*args: str) -> str:
        proc = subprocess.run(list(args), cwd=repo, env=env, capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, f"{args}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout + proc.stderr

    run(str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "-r", "binder/requirements.txt")
    run("bash", "binder/postBuild")
    assert re.search(r"nbflow v\S+ .*enabled.*OK", run(str(bin_dir / "jupyter"), "labextension", "list"))
    assert re.search(r"nbflow .*enabled", run(str(bin_dir / "jupyter"), "server", "extension", "list"))
    run(str(bin_dir / "python"), "-c", "import nbflow.widgets, anywidget, ipywidgets; nbflow.widgets.Dashboard")
    out = run(str(bin_dir / "nbflow"), "run", "notebooks", "--no-progress")
    assert re.search(r"run \S+ success in .*: 9 success", out)
