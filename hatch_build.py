"""Refuse to build a wheel without the JupyterLab panel (it would install silently without it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name == "wheel" and not (Path(self.root) / "nbflow" / "labextension" / "package.json").is_file():
            raise RuntimeError(
                "nbflow's JupyterLab panel is not built (nbflow/labextension is missing). Run "
                "`NBFLOW_PYTHON=<a python with jupyterlab> scripts/build-extension` first (it needs Node.js), "
                "or scripts/setup, which does everything."
            )
