"""Executed notebooks kept on disk, not in memory, as they run.

papermill keeps the whole executed notebook in memory and serializes all of it at every
save. nbflow moves each finished cell's outputs to a spool file beside the executed
notebook and writes the notebook cell by cell, reading spooled outputs back one cell at a
time. So the orchestrator holds at most the running cell's outputs per task, however
much a notebook prints or plots. Error outputs (small) also stay in memory, to find the
failing cell.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from papermill.exceptions import PapermillExecutionError


class OutputSpool:
    """Outputs of finished cells, in a file: appended once, read back when the notebook is written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] = open(path, "w+b")  # noqa: SIM115 - kept for the attempt's length
        self._where: dict[int, tuple[int, int]] = {}  # id(cell) -> (offset, length)
        #: id(cell) -> its error outputs, kept in memory
        self.errors: dict[int, list[Any]] = {}

    def stash(self, cell: Any) -> None:
        """Move ``cell``'s outputs to the spool (the cell keeps an empty list)."""
        outputs = cell.get("outputs")
        if not outputs:
            return
        data = json.dumps(outputs, ensure_ascii=False).encode("utf-8")
        self._file.seek(0, os.SEEK_END)
        self._where[id(cell)] = (self._file.tell(), len(data))
        self._file.write(data)
        self.errors[id(cell)] = [o for o in outputs if o.get("output_type") == "error"]
        cell.outputs = []

    def outputs(self, cell: Any) -> Any:
        """The cell's outputs, from the spool if they were moved there."""
        where = self._where.get(id(cell))
        if where is None:
            return cell.get("outputs")
        self._file.seek(where[0])
        return json.loads(self._file.read(where[1]).decode("utf-8"))

    def close(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


def write_notebook(nb: Any, path: Path, spool: OutputSpool | None = None) -> None:
    """Write ``nb`` as nbformat JSON one cell at a time (spooled outputs put back), atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write('{\n "cells": [')
            for i, cell in enumerate(nb.cells):
                node = dict(cell)
                if spool is not None and "outputs" in node:
                    node["outputs"] = spool.outputs(cell)
                f.write(("," if i else "") + "\n  " + _dumps(node).replace("\n", "\n  "))
            f.write("\n ],\n")
            f.write(' "metadata": ' + _dumps(nb.metadata).replace("\n", "\n ") + ",\n")
            f.write(f' "nbformat": {nb.nbformat},\n "nbformat_minor": {nb.nbformat_minor}\n}}\n')
        os.replace(tmp, path)
    except BaseException:  # a full disk, say: the last whole notebook stays, no half-written file
        tmp.unlink(missing_ok=True)
        raise


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False)


def first_error(nb: Any, spool: OutputSpool | None = None) -> PapermillExecutionError | None:
    """The first failing cell's error, as papermill reports it (``sys.exit(0)`` is not an error)."""
    for index, cell in enumerate(nb.cells):
        outputs = spool.errors.get(id(cell)) if spool is not None and id(cell) in spool.errors else None
        if outputs is None:
            outputs = cell.get("outputs", [])
        clean_exit = False
        for output in outputs:
            if output.get("output_type") != "error":
                continue
            if output.get("ename") == "SystemExit" and output.get("evalue") in ("", "0"):
                clean_exit = True
                continue
            return PapermillExecutionError(
                cell_index=index,
                exec_count=cell.get("execution_count"),
                source=cell.get("source"),
                ename=output.get("ename"),
                evalue=output.get("evalue"),
                traceback=output.get("traceback", []),
            )
        if not clean_exit and cell.get("metadata", {}).get("papermill", {}).get("exception") is True:
            return PapermillExecutionError(
                cell_index=index,
                exec_count=cell.get("execution_count"),
                source=cell.get("source"),
                ename="CellExecutionError",
                evalue="",
                traceback=[],
            )
    return None
