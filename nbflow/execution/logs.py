"""Captured output: a file writer with a size cap, and the tail kept for the store."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import IO

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

#: the most a log file grows to on disk before the rest is cut (a marker says so)
LOG_FILE_CAP = 10 * 1024 * 1024
#: the most of a log kept in the state store (its tail)
LOG_STORE_CAP = 64 * 1024


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython colours its tracebacks)."""
    return _ANSI.sub("", text)


def tail(text: str, cap: int = LOG_STORE_CAP) -> str:
    """The last ``cap`` characters of ``text``, with a marker where it was cut."""
    if len(text) <= cap:
        return text
    return f"[nbflow: {len(text) - cap} earlier characters cut; the log file has them]\n" + text[-cap:]


class CappedLog:
    """A text file that stops growing at ``cap`` bytes, with a marker where it stops.

    Passed to papermill as the stdout/stderr file of a notebook's stream outputs.
    """

    def __init__(
        self, path: Path, cap: int = LOG_FILE_CAP, redact: Callable[[str], str] | None = None, holdback: int = 0
    ) -> None:
        self.path = path
        self.cap = cap
        self.redact = redact
        # with redaction, the last ``holdback`` characters wait for the next write, so that a
        # secret written in two pieces is still seen whole
        self.holdback = holdback if redact is not None else 0
        self._pending = ""
        self._size = 0
        self._cut = False
        self._line_start = True
        self._file: IO[str] = open(path, "w", encoding="utf-8", errors="replace")  # noqa: SIM115

    def write(self, text: str) -> int:
        if self._cut:
            return len(text)
        if self.redact is not None:
            combined = self.redact(self._pending + text)
            keep = min(self.holdback, len(combined))
            self._pending = combined[len(combined) - keep :] if keep else ""
            self._write(combined[: len(combined) - keep])
            return len(text)
        return self._write(text)

    def _write(self, text: str) -> int:
        if self._cut:
            return len(text)
        room = self.cap - self._size
        if len(text) > room:
            self._file.write(text[: max(room, 0)])
            self._file.write(f"\n[nbflow: output cut at {self.cap} bytes]\n")
            self._cut = self._line_start = True
        elif text:
            self._file.write(text)
            self._size += len(text)
            self._line_start = text.endswith("\n")
        return len(text)

    @property
    def room(self) -> int:
        """Characters the file takes before it is cut."""
        return 0 if self._cut else self.cap - self._size

    def stop(self) -> None:
        """Cut the file here: the rest of the output was not read (a message too large to decode whole)."""
        if not self._cut:
            self._pending = ""  # it may hold the first characters of a secret whose end was not read
            self._file.write(f"\n[nbflow: output cut at {self._size} bytes]\n")
            self._cut = self._line_start = True

    def note(self, line: str) -> None:
        """Write a line of nbflow's own, past the cap too (one a cell at most: bounded)."""
        if self._pending:
            self._write(self.redact(self._pending) if self.redact else self._pending)
            self._pending = ""
        self._file.write(("" if self._line_start else "\n") + line + "\n")
        self._line_start = True
        self._file.flush()

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if self._pending:
            self._write(self.redact(self._pending) if self.redact else self._pending)
            self._pending = ""
        self._file.close()

    def read_tail(self, cap: int = LOG_STORE_CAP) -> str:
        """The tail of what was written, for the store."""
        self.flush()
        return read_log_tail(self.path, cap)


def read_log_tail(path: Path, cap: int = LOG_STORE_CAP) -> str:
    """The last ``cap`` characters of a log file, read without loading all of it."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        start = max(0, size - cap)
        f.seek(start)
        text = f.read().decode("utf-8", errors="replace")
    if start:
        return f"[nbflow: {start} earlier bytes cut; the log file has them]\n" + text
    return text
