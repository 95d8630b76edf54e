"""The default state store: one DuckDB file in the pipeline folder (``_nbflow/state.duckdb``).

- :mod:`.schema`: the tables (a public, queryable surface) and their version;
- :mod:`.records`: records and rows, columns derived from the records' fields;
- :mod:`.wal`: write-ahead files, one per writing process, applied after a crash;
- :mod:`.store`: :class:`DuckDBRunStore`, its connections, writer thread and reads.

Only this package imports duckdb.
"""

from nbflow.store.duckdb.store import DuckDBRunStore

__all__ = ["DuckDBRunStore"]
