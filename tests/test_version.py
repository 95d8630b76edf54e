"""The version is written once: the frontend reads it from extension/package.json, which must match nbflow's."""

from __future__ import annotations

import json
from pathlib import Path

import nbflow

EXTENSION = Path(__file__).resolve().parent.parent / "extension"


def test_the_python_package_and_the_extension_have_one_version() -> None:
    package = json.loads((EXTENSION / "package.json").read_text())
    assert nbflow.__version__ == package["version"]


def test_the_frontend_takes_its_version_from_package_json() -> None:
    tokens = (EXTENSION / "src" / "tokens.ts").read_text()
    assert "from '../package.json'" in tokens
    assert nbflow.__version__ not in tokens, "no version typed in the frontend's source"
