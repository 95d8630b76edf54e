"""Folders a user might be handed: looking at them must run none of their code and write nothing.

Each one, when something does run its code, touches a marker file outside the folder (the
test asserts the marker never appears):

- ``pickle``: ``_nbflow/discovery.pickle`` (the discovery cache of older versions) whose
  unpickling runs ``os.system("touch <marker>")``;
- ``code``: an ``nbflow_tasks.py`` that touches a marker when imported (and another when its
  ``setup`` runs), declaring one task ``double`` the views still list;
- ``wal``: a state store with one run, and a dead writer's write-ahead file holding, beside
  the records of a second run (``r2``), lines whose SQL would write the marker if it were run.
"""

from __future__ import annotations

import json
import os
import pickle
import shlex
from pathlib import Path

from conftest import write_notebook


class _Touch:
    """Unpickling this runs a shell command: what a hostile pickle does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def pickle_folder(folder: Path, marker: Path) -> Path:
    write_notebook(folder, "load", "upstream = None\nrows = 3", "print(rows)")
    state = folder / "_nbflow"
    state.mkdir(parents=True)
    (state / "discovery.pickle").write_bytes(pickle.dumps({"format": (1, "0.1.0"), "entries": _Touch(marker)}))
    return folder


def code_folder(folder: Path, marker: Path) -> Path:
    write_notebook(folder, "load", "upstream = None\nproduct = 'load.txt'", "open(product, 'w').write('21')")
    (folder / "nbflow_tasks.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).touch()  # runs at import\n"
        "\n"
        "def setup(pipeline):\n"
        f"    pathlib.Path({str(marker) + '.setup'!r}).touch()\n"
        "\n"
        "    @pipeline.task(upstream=['load'], product='double.txt')\n"
        "    def double(upstream, product, factor=2):\n"
        "        open(product, 'w').write(str(factor * int(open(upstream['load']).read())))\n"
    )
    return folder


def wal_folder(folder: Path, marker: Path) -> Path:
    from datetime import datetime

    from nbflow.store.base import AttemptRecord, RunRecord, TaskRecord
    from nbflow.store.duckdb import DuckDBRunStore
    from nbflow.store.duckdb.records import INSERT_ATTEMPT, INSERT_LOG, INSERT_RUN, INSERT_TASK

    write_notebook(folder, "load", "upstream = None", "print('hi')")
    store = DuckDBRunStore(folder / "_nbflow" / "state.duckdb")
    started, ended = datetime(2026, 1, 1, 6), datetime(2026, 1, 1, 6, 1)
    store.save_run(RunRecord("r1", str(folder), "success", started, ended, {}, 1, None, "0.1.0", 1, "elsewhere"))
    store.save_task(TaskRecord("r1", "load", "success", 1, started, ended))
    store.save_attempt(AttemptRecord("r1", "load", 1, "success", started, ended))
    store.save_log("r1", "load", 1, "hi\n")
    store.close()
    dead = {"$dt": "2026-01-02T06:00:00"}
    lines = [
        {
            "sql": INSERT_RUN,
            "row": ["r2", str(folder), "failed", dead, dead, 0.0, "{}", 1, None, "0.1.0", 1, "x", None, None, None],
        },
        {"sql": INSERT_TASK, "row": ["r2", "load", "failed", 1, dead, dead, 0.0, "ValueError: x", None, None]},
        {
            "sql": INSERT_ATTEMPT,
            "row": ["r2", "load", 1, "failed", dead, dead, 0.0, "{}", "python3", None, None, None, "ValueError: x"]
            + [None, None, None, None],
        },
        {"sql": INSERT_LOG, "row": ["r2", "load", 1, "from the dead writer\n"]},
        {"sql": f"COPY (SELECT 1 AS x) TO '{marker}' (FORMAT csv)", "row": []},
        {"sql": "INSERT OR REPLACE INTO runs SELECT * FROM runs; COPY (SELECT 1) TO '/dev/null'", "row": []},
    ]
    wal = folder / "_nbflow" / "state.duckdb.wal-1-deadbeef.jsonl"  # no live process holds it
    wal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every file, folder and link below ``root``: kind, size and modification time (links not followed)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = path.lstat()
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            found[path.relative_to(root).as_posix()] = (kind, st.st_size, st.st_mtime_ns)
    return found


def markers_made(markers: Path) -> list[str]:
    """The marker files code from a folder made (empty: none ran)."""
    return sorted(p.name for p in markers.iterdir()) if markers.exists() else []
