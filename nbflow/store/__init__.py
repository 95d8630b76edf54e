"""The state store: runs, task states, attempts and logs.

:class:`~nbflow.store.base.RunStore` is the interface; :class:`DuckDBRunStore` is the
default (an embedded DuckDB file in the pipeline folder), :class:`MemoryRunStore` keeps
everything in memory (tests, throwaway runs).
"""

from nbflow.store.base import AttemptRecord, RunRecord, RunStore, TaskRecord

__all__ = ["AttemptRecord", "RunRecord", "RunStore", "TaskRecord", "DuckDBRunStore", "MemoryRunStore"]


def __getattr__(name: str):  # keep `import nbflow.store` free of duckdb until it is used
    if name == "DuckDBRunStore":
        from nbflow.store.duckdb import DuckDBRunStore

        return DuckDBRunStore
    if name == "MemoryRunStore":
        from nbflow.store.memory import MemoryRunStore

        return MemoryRunStore
    raise AttributeError(name)
