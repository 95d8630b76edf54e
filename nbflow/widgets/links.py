"""Links that open a file in the JupyterLab serving this kernel, when there is one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote


def _servers() -> list[dict]:
    """Running Jupyter servers of this user (their runtime files), newest first."""
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:
        return []
    found = []
    try:
        files = sorted(Path(jupyter_runtime_dir()).glob("jpserver-*.json"), key=os.path.getmtime, reverse=True)
    except OSError:
        return []
    for f in files:
        try:
            info = json.loads(f.read_text())
            os.kill(int(info["pid"]), 0)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.append(info)
    return found


def lab_url(path: str | os.PathLike[str]) -> str | None:
    """``{base_url}lab/tree/<path>`` for the server whose root holds ``path``, else None."""
    target = Path(path).resolve()
    for info in _servers():
        root = Path(info.get("root_dir") or info.get("notebook_dir") or "").expanduser()
        try:
            rel = target.relative_to(root.resolve())
        except ValueError:
            continue
        base = info.get("base_url") or "/"
        return f"{base.rstrip('/')}/lab/tree/{quote(rel.as_posix())}"
    return None
