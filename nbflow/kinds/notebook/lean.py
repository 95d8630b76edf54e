"""papermill without the remote-storage clients nbflow never uses.

``papermill.iorw`` imports, at its own import, every storage client it finds installed:
boto3 (and botocore), pyarrow (and NumPy), Azure's, gcsfs, PyGithub, to register handlers
for ``s3://``, ``hdfs://``, ... notebook paths. nbflow hands papermill local paths only
(it reads and writes notebooks itself), so in a runner those imports cost memory and
start-up for nothing: about 47 MiB and a few hundred milliseconds where they are installed
(``nbflow[etl]`` installs two of them).

:func:`install` hides those packages while ``papermill.iorw`` itself is executed, and
only then: papermill finds them missing and skips their handlers, as it does where they
are not installed; any later ``import boto3`` (nbflow's own S3 products) imports them as
usual. It is called by the ``nbflow`` command's own process only (``nbflow.cli.main``),
never in a process of the user's (a kernel calling the Python API, a Dask worker), where
papermill may be asked for an ``s3://`` notebook.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

#: the module whose import pulls the storage clients in, and the packages it looks for
TARGET = "papermill.iorw"
HIDDEN = ("boto3", "botocore", "pyarrow", "azure", "gcsfs", "github")


class _Loader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        hidden = [name for name in HIDDEN if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
        try:
            self._loader.exec_module(module)
        finally:
            for name in hidden:
                if sys.modules.get(name, 0) is None:
                    del sys.modules[name]


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Loader(spec.loader)
                return spec
        return None


def install() -> None:
    """Hide the storage clients from ``papermill.iorw`` when it is imported (once per process)."""
    if TARGET not in sys.modules and not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
