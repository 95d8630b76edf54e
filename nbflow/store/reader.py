"""Read a pipeline's state store the way a live view needs: cheaply, and as fresh as it gets.

The database is read again only when its file changed, in one connection; the records
that writers have made but not yet applied (their write-ahead files) are laid over it on
every read. Used by the dashboard; nothing here knows about widgets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nbflow.store.base import RunRecord, RunStore, TaskRecord
from nbflow.store.watch import Stamp, store_stamp


@dataclass
class Snapshot:
    """The runs (newest first), and the run shown with its tasks' states."""

    runs: list[RunRecord] = field(default_factory=list)
    run: RunRecord | None = None
    tasks: dict[str, TaskRecord] = field(default_factory=dict)


class StoreReader:
    """Snapshots of the store at ``path``; never writes anything.

    ``store`` is what is read (default: the DuckDB file at ``path``, opened read-only); any
    :class:`RunStore` will do. ``path`` tells when the database changed (a new read is due).
    """

    def __init__(self, path: Path, history_limit: int = 50, store: RunStore | None = None) -> None:
        self.path = path
        if store is None:
            from nbflow.store.duckdb import DuckDBRunStore  # duckdb only when it is the store read

            store = DuckDBRunStore(path, lock_timeout=10.0, read_only=True)
        self.store = store
        self.history_limit = history_limit
        self._stamp: Stamp | None = None
        self._runs: list[RunRecord] = []
        self._tasks: dict[str, dict[str, TaskRecord]] = {}  # run id -> tasks, as last read

    def read(
        self, run_id: str | None = None, reread: bool = False, early: Callable[[Snapshot], None] | None = None
    ) -> Snapshot:
        """The store now, showing ``run_id`` (default: the newest run).

        When the database must be read again, ``early`` first gets what the write-ahead
        files already tell, over the previous read (a read may wait for a writer's lock).
        """
        stamp = store_stamp(self.path, write_ahead=False)
        ahead_runs, ahead_tasks = self.store.written_ahead()
        if reread or stamp != self._stamp:
            if self._stamp is not None and early is not None:
                early(self._merge(run_id, ahead_runs, ahead_tasks, read=False))
            self._stamp = stamp
            self._runs, tasks = self.store.runs_and_tasks(run_id, self.history_limit)
            self._tasks = {}
            if run_id or self._runs:
                self._tasks[run_id or self._runs[0].run_id] = tasks
            ahead_runs, ahead_tasks = self.store.written_ahead()
        return self._merge(run_id, ahead_runs, ahead_tasks)

    def _merge(
        self,
        run_id: str | None,
        ahead_runs: Mapping[str, RunRecord],
        ahead_tasks: Mapping[tuple[str, str], TaskRecord],
        read: bool = True,
    ) -> Snapshot:
        by_id = {r.run_id: r for r in self._runs} | dict(ahead_runs)
        runs = sorted(by_id.values(), key=lambda r: (r.started_at, r.run_id), reverse=True)[: self.history_limit]
        run_id = run_id or (runs[0].run_id if runs else None)
        if run_id is None:
            return Snapshot(runs)
        run = by_id.get(run_id) or (self.store.get_run(run_id) if read else None)
        if run_id not in self._tasks and read:
            self._tasks[run_id] = self.store.get_tasks(run_id) if run is not None else {}
        tasks = dict(self._tasks.get(run_id, {}))
        tasks.update({name: t for (rid, name), t in ahead_tasks.items() if rid == run_id})
        return Snapshot(runs, run, tasks)
