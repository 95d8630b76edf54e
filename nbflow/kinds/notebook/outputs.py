"""What a cell keeps of its output: up to ``max_cell_output``, then only counted.

Sizes are characters of text and data (a byte each for ASCII), plus :data:`ENVELOPE` for
each output, so that a million empty ``display()`` calls are bounded as well as one huge
print. When a cell's output passes the limit, a note (a ``stderr`` stream output) takes
its place and says how much was cut; everything after it is counted, not kept, until the
cell clears its output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nbformat.v4 import new_output

#: what an output costs in a notebook besides its text or data (its keys, its metadata, as
#: written with indentation): about what a ``display()`` of a short HTML string adds on disk
ENVELOPE = 100
SETTING = "max_cell_output"


def format_size(size: float) -> str:
    """``5000000`` -> ``"5 MB"``, ``115234567`` -> ``"115.2 MB"`` (decimal units, as disks count)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{int(size)} bytes"


def cut_note(cut: int, limit: int) -> str:
    """What the executed notebook says where a cell's output was cut."""
    return f"\n[nbflow: {format_size(cut)} of this cell's output was cut (limit {format_size(limit)}, setting {SETTING})]\n"


def log_note(cut: int, limit: int, cell: str) -> str:
    """The line the log gets for a cell whose output was cut."""
    return (
        f"[nbflow: {format_size(cut)} of the output of {cell} was cut from the executed notebook"
        f" (limit {format_size(limit)}, setting {SETTING})]"
    )


def size_of(value: Any) -> int:
    """Characters in a JSON-like value's strings (numbers and the like count 8)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(size_of(v) for v in value)
    if isinstance(value, Mapping):
        return sum(len(str(k)) + size_of(v) for k, v in value.items())
    return 8


def content_size(content: Mapping[str, Any]) -> int:
    """What an output made from a message's ``content`` costs (``display_data``, ``error``, ...)."""
    keys = ("data", "metadata", "ename", "evalue", "traceback")
    return ENVELOPE + sum(size_of(content[k]) for k in keys if k in content)


class OutputBudget:
    """One cell's output: what is kept so far, what was cut, and the note that says so."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = 0
        self.cut = 0
        self.note: Any = None

    @property
    def cutting(self) -> bool:
        """The limit was reached: outputs are counted, not kept, until the cell clears its output."""
        return self.note is not None

    @property
    def room(self) -> int:
        return 0 if self.cutting else max(0, self.limit - self.kept)

    def clear(self) -> None:
        """The cell cleared its output: what was kept and what was cut are gone alike."""
        self.kept = self.cut = 0
        self.note = None

    def drop(self, size: int, outputs: list[Any]) -> None:
        """Count ``size`` as cut; the first cut appends the note to ``outputs``, later ones update it."""
        self.cut += size
        if self.note is None:
            self.note = new_output("stream", name="stderr", text="")
            outputs.append(self.note)
        self.note["text"] = cut_note(self.cut, self.limit)
