"""Notice changes to a pipeline's state store cheaply: a few ``stat`` calls per tick.

Any writer (this process, ``nbflow run`` in a terminal, CI, the scheduler) first appends
to its write-ahead file beside ``state.duckdb`` and then writes the file itself, so a
change to either shows in their sizes and modification times. Only then does the watcher
read the store (one short read-only query each).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

Stamp = tuple[tuple[str, int, int], ...]


def store_stamp(path: Path, write_ahead: bool = True) -> Stamp:
    """Size and mtime of the store file and of every file beside it named after it: DuckDB's
    own log and, unless ``write_ahead`` is False, nbflow's write-ahead files.

    The one "did the store change" test: with ``write_ahead=False``, whether the database
    itself changed (what a read of it would find), as :class:`~nbflow.store.reader.StoreReader` asks.
    """
    database = (path.name, path.name + ".wal")
    found = []
    try:
        with os.scandir(path.parent) as entries:
            for entry in entries:
                if entry.name.startswith(path.name) and (write_ahead or entry.name in database):
                    try:
                        st = entry.stat()
                    except OSError:  # gone meanwhile (a WAL being emptied)
                        continue
                    found.append((entry.name, st.st_size, st.st_mtime_ns))
    except OSError:  # no state folder yet
        return ()
    return tuple(sorted(found))


class StoreWatcher:
    """Call ``on_change`` (in a daemon thread) whenever the store at ``path`` changes.

    ``poke()`` asks for a call at once, whether or not the files changed (a listener in
    this process knows about a change before the store does). ``on_idle`` is called on
    the ticks when nothing changed. Exceptions go to ``on_error`` and the watching goes on.
    """

    def __init__(
        self,
        path: Path,
        on_change: Callable[[], None],
        interval: float = 0.2,
        on_error: Callable[[BaseException], None] | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        self.path = path
        self.interval = interval
        self._on_change = on_change
        self._on_error = on_error
        self._on_idle = on_idle
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._stamp: Stamp | None = None
        #: how many times the store was read because something changed
        self.reads = 0
        #: how many times the watcher has looked (read or not)
        self.ticks = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="nbflow-store-watcher", daemon=True)
            self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def check(self) -> bool:
        """Call ``on_change`` if the store changed since the last check; True if it did."""
        stamp = store_stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        self.reads += 1
        self._on_change()
        return True

    def _loop(self) -> None:
        while not self._stopped.is_set():
            poked = self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopped.is_set():
                break
            try:
                if poked:
                    self._stamp = store_stamp(self.path)
                    self.reads += 1
                    self._on_change()
                elif not self.check() and self._on_idle is not None:
                    self._on_idle()
            except Exception as e:  # a bad read must not end the watching
                if self._on_error is not None:
                    self._on_error(e)
            self.ticks += 1

    @property
    def stamp(self) -> Stamp | None:
        """What the store looked like when last seen."""
        return self._stamp
