"""The layout of nbflow's own folder in a pipeline folder: every name in it, written once.

::

    _nbflow/
      .gitignore                 ``*``: nothing in the folder is committed
      state.duckdb               the state store (its write-ahead files beside it)
      run.lock                   held by the process running the pipeline
      discovery.json             what discovery read from each task file
      runs/<run_id>/<task>/      one folder per task of a run:
        attempt-<n>.ipynb          the executed notebook of attempt n
        attempt-<n>.log            its output
        attempt-<n>.kernel.log     the kernel process's own output
      panel-runs/                the output of the runs the server started
      debug/<run_id>/<task>.ipynb  a failed attempt made ready to debug (``nbflow debug``)
      airflow/                   an Airflow task's notebooks and logs, by default

Only paths: nothing here touches the disk except :meth:`StateDir.ensure`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: nbflow's own folder inside a pipeline: the state store and every run's executed notebooks
STATE_DIR_NAME = "_nbflow"
#: the state store, inside the state folder
STORE_FILE_NAME = "state.duckdb"
#: the run lock, inside the state folder
LOCK_FILE_NAME = "run.lock"
#: every run's folder of attempt files, inside the state folder
RUNS_DIR_NAME = "runs"
#: the output of the runs the server started, inside the state folder
PANEL_RUNS_DIR_NAME = "panel-runs"
#: the debug notebooks of failed attempts, inside the state folder
DEBUG_DIR_NAME = "debug"
#: an Airflow task's output (when no other folder is given), inside the state folder
AIRFLOW_DIR_NAME = "airflow"
#: what was read from each file, by (size, mtime, inode); inside the state folder
CACHE_FILE_NAME = "discovery.json"
#: the cache of older versions: never read (unpickling runs code); removed when the new one is written
LEGACY_CACHE_FILE_NAME = "discovery.pickle"
#: the state folder's ``.gitignore``: nothing in it is committed
GITIGNORE_NAME = ".gitignore"
GITIGNORE_TEXT = "# nbflow's state and executed notebooks\n*\n"


@dataclass(frozen=True)
class AttemptPaths:
    """The files of one attempt of a task: ``<base>.ipynb``, ``<base>.log``, ``<base>.kernel.log``."""

    #: the attempt's files without their suffix: ``<run folder>/<task>/attempt-<n>``
    base: Path

    @classmethod
    def in_run_dir(cls, run_dir: str | os.PathLike[str], task: str, attempt: int) -> AttemptPaths:
        """Attempt ``attempt`` of ``task`` in the run folder ``run_dir``: one folder per task, so no
        task name can make two tasks' files collide."""
        return cls(Path(run_dir) / task / f"attempt-{attempt}")

    @classmethod
    def of_log(cls, log: str | os.PathLike[str]) -> AttemptPaths:
        """The attempt whose log is ``log`` (its other files are beside it)."""
        return cls(Path(log).with_suffix(""))

    def _with(self, suffix: str) -> Path:
        return self.base.with_name(self.base.name + suffix)

    @property
    def notebook(self) -> Path:
        """The executed notebook."""
        return self._with(".ipynb")

    @property
    def log(self) -> Path:
        """The attempt's output."""
        return self._with(".log")

    @property
    def kernel_log(self) -> Path:
        """The output of the attempt's kernel process."""
        return self._with(".kernel.log")

    @property
    def result(self) -> Path:
        """What a ``python`` task's forked process hands back (its return value, or its error)."""
        return self._with(".result.json")


@dataclass(frozen=True)
class StateDir:
    """nbflow's own folder in the pipeline folder ``root``, and every path in it."""

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def path(self) -> Path:
        """The folder itself: ``<root>/_nbflow``."""
        return self.root / STATE_DIR_NAME

    @property
    def store(self) -> Path:
        """The DuckDB file holding the pipeline's runs."""
        return self.path / STORE_FILE_NAME

    @property
    def lock(self) -> Path:
        """The run lock's file."""
        return self.path / LOCK_FILE_NAME

    @property
    def runs(self) -> Path:
        """The folder of every run's attempt files."""
        return self.path / RUNS_DIR_NAME

    def run(self, run_id: str) -> Path:
        """The folder of run ``run_id``'s attempt files."""
        return self.runs / run_id

    def attempt(self, run_id: str, task: str, attempt: int) -> AttemptPaths:
        """The files of attempt ``attempt`` of ``task`` in run ``run_id``."""
        return AttemptPaths.in_run_dir(self.run(run_id), task, attempt)

    @property
    def discovery_cache(self) -> Path:
        """What discovery read from each task file."""
        return self.path / CACHE_FILE_NAME

    @property
    def legacy_discovery_cache(self) -> Path:
        """Older versions' discovery cache (never read; removed when the new one is written)."""
        return self.path / LEGACY_CACHE_FILE_NAME

    @property
    def panel_runs(self) -> Path:
        """The output of the runs the server started."""
        return self.path / PANEL_RUNS_DIR_NAME

    @property
    def debug(self) -> Path:
        """The debug notebooks of failed attempts: ``debug/<run_id>/<task>.ipynb``."""
        return self.path / DEBUG_DIR_NAME

    @property
    def airflow(self) -> Path:
        """Where an Airflow task writes its notebooks and logs when it is given no other folder."""
        return self.path / AIRFLOW_DIR_NAME

    @property
    def gitignore(self) -> Path:
        """The folder's ``.gitignore``."""
        return self.path / GITIGNORE_NAME

    def own_paths(self) -> tuple[Path, ...]:
        """What nbflow reads or writes in the folder (and the folder itself): a server checks
        that none of them leads outside the folder it serves."""
        return (self.path, self.store, self.lock, self.runs, self.panel_runs, self.discovery_cache)

    def ensure(self) -> Path:
        """Create the folder and its ``.gitignore``, unless they exist; returns the folder.

        Raises
        ------
        OSError
            The folder or its ``.gitignore`` cannot be written (a read-only pipeline folder).
        """
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.gitignore.exists():
            self.gitignore.write_text(GITIGNORE_TEXT)
        return self.path


def is_inside(path: Path, folder: Path) -> bool:
    """Whether ``path``'s real location (every symlink followed) is ``folder`` or below it."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return False
    return real == folder or folder in real.parents
