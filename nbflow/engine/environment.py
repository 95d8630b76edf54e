"""What a run needs to be reproduced, and what differs between two runs. Pure, but :func:`capture`.

A run records its Python, platform, nbflow version and installed distributions (of the
environment that runs nbflow; a notebook's kernel may live elsewhere, so each task's
kernel name is recorded too), every task's source hash and the folder its outputs went to.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbflow import __version__


def installed_distributions() -> dict[str, str]:
    """Name -> version of the distributions on ``sys.path`` (from their metadata folders' names: no file is read)."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as items:
                names = [e.name for e in items if e.name.endswith((".dist-info", ".egg-info"))]
        except OSError:
            continue
        for folder in names:
            name, _, version = folder.rsplit(".", 1)[0].partition("-")
            found.setdefault(name.lower().replace("_", "-").replace(".", "-"), version)
    return dict(sorted(found.items()))


def capture(sources: Mapping[str, str | None], kernels: Mapping[str, str], outputs: Path) -> dict[str, Any]:
    """This process's environment, with the pipeline's task sources and kernels."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "nbflow": __version__,
        "packages": installed_distributions(),
        "sources": dict(sources),
        "kernels": dict(kernels),
        "outputs": str(outputs),
    }


#: products bigger than this are recorded by size and modification time, not read
CHECKSUM_LIMIT = 256 * 1024 * 1024


def checksums(paths: Sequence[Path]) -> dict[str, str]:
    """``{path: "sha256:<hex>"}`` of product files (``size:<n> mtime:<ns>`` past CHECKSUM_LIMIT;
    a folder: the checksum of its files' relative paths and checksums)."""
    import hashlib

    def of_file(path: Path) -> str:
        st = path.stat()
        if st.st_size > CHECKSUM_LIMIT:
            return f"size:{st.st_size} mtime:{st.st_mtime_ns}"
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return "sha256:" + digest.hexdigest()

    found = {}
    for path in paths:
        try:
            if path.is_dir():
                listing = "\n".join(
                    f"{p.relative_to(path).as_posix()} {of_file(p)}" for p in sorted(path.rglob("*")) if p.is_file()
                )
                found[str(path)] = "sha256:" + hashlib.sha256(listing.encode()).hexdigest()
            elif path.is_file():
                found[str(path)] = of_file(path)
        except OSError:
            continue
    return found


def changed(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """``{"added": {k: v}, "removed": {k: v}, "changed": {k: [old, new]}}`` between two mappings."""
    return {
        "added": {k: b[k] for k in sorted(b.keys() - a.keys())},
        "removed": {k: a[k] for k in sorted(a.keys() - b.keys())},
        "changed": {k: [a[k], b[k]] for k in sorted(a.keys() & b.keys()) if a[k] != b[k]},
    }


def environment_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """How two recorded environments differ: Python and nbflow, packages, task sources and kernels."""
    scalars = {
        key: [before.get(key), after.get(key)]
        for key in ("python", "implementation", "platform", "nbflow")
        if before.get(key) != after.get(key)
    }
    return {
        **scalars,
        "packages": changed(before.get("packages", {}), after.get("packages", {})),
        "sources": changed(before.get("sources", {}), after.get("sources", {})),
        "kernels": changed(before.get("kernels", {}), after.get("kernels", {})),
    }


def is_empty(changes: Mapping[str, Any]) -> bool:
    """Whether :func:`environment_changes` found nothing."""
    for value in changes.values():
        if isinstance(value, list) or any(value.get(k) for k in ("added", "removed", "changed")):
            return False
    return True
