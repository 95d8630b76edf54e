"""One run at a time per pipeline folder: two runs would write the same products.

The lock is an OS file lock on ``_nbflow/run.lock`` (:attr:`nbflow.paths.StateDir.lock`), so it
goes away with the process that holds it, however that process ends.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO

from nbflow.errors import PipelineBusyError, StateFolderError


class RunLock:
    """Hold ``path`` locked for the length of a ``with`` block.

    Raises
    ------
    PipelineBusyError
        Another process holds it.
    """

    def __init__(self, path: Path, pipeline: Path) -> None:
        self.path = path
        self.pipeline = pipeline
        self._file: IO[str] | None = None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # no POSIX file locks (Windows): run without the guard
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until __exit__
        except OSError as e:
            raise StateFolderError(str(self.path.parent), e.strerror or str(e)) from e
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            try:
                holder = json.loads(f.read() or "{}")
                text = f"process {holder.get('pid')} on {holder.get('host')}"
            except ValueError:
                text = "another process"
            f.close()
            raise PipelineBusyError(str(self.pipeline), text) from None
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))
        f.flush()
        self._file = f
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the lock
            self._file = None


def lock_holder(path: Path) -> int | None:
    """The process id holding the run lock at ``path``, or None when no process holds it.

    The pid a store records for a run is only data from the folder; before a signal is
    sent to it, this says whether that process really is the one running the pipeline.
    """
    try:
        import fcntl
    except ImportError:
        return None
    try:
        f = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError:
        return None
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held: by the process the file names
            try:
                pid = json.loads(f.read() or "{}").get("pid")
            except (ValueError, AttributeError):
                return None
            return pid if isinstance(pid, int) and not isinstance(pid, bool) else None
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return None
