"""A kernel brought to a failed attempt's failure: ``nbflow debug --console``.

Started as a run starts the attempt's kernel (its kernel name, its working directory, its
secrets in the environment; :class:`~nbflow.execution.kernels.KernelLauncher`, whose
kernels exit with the process that started them), then made to run the debug notebook's
``run_cells``: the cells before the failing one. Any console may then attach to it
through its connection file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

from nbflow.authoring.debug import DebugNotebook
from nbflow.execution.kernels import IPCKernelManager, KernelLauncher
from nbflow.project.secrets import kernel_env_name

#: seconds between two looks at the kernel while a cell runs
POLL_S = 0.5


@dataclass(frozen=True)
class CellFailure:
    """A cell of the debug notebook that raised while being run again."""

    index: int
    ename: str
    evalue: str
    traceback: tuple[str, ...]


class _KernelDied(Exception):
    """The kernel stopped while a cell ran (told as a :class:`CellFailure`)."""


def kernel_env(secrets: dict[str, str], environ: dict[str, str] | None = None) -> dict[str, str]:
    """The kernel's environment: this process's, with each secret parameter's value under the
    variable a run's injected cell reads (those whose project variable is set)."""
    env = dict(os.environ if environ is None else environ)
    env.update({kernel_env_name(p): env[var] for p, var in secrets.items() if var in env})
    return env


class DebugKernel:
    """The kernel of a debug notebook; a context manager that shuts it down on exit."""

    def __init__(self, debug: DebugNotebook) -> None:
        self.debug = debug
        self._launcher = KernelLauncher(1)
        self._km: IPCKernelManager | None = None
        self._client: Any = None

    @property
    def log(self) -> Path:
        """The kernel process's own output: beside the debug notebook."""
        return self.debug.path.with_name(f"{self.debug.path.stem}.kernel.log")

    def __enter__(self) -> DebugKernel:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def start(self) -> None:
        """Start the kernel and wait until it answers.

        Raises
        ------
        KernelStartError
        """
        self._km, self._client = self._launcher.start(
            self.debug.kernel_name, str(self.debug.cwd), self.log, env=kernel_env(self.debug.secrets)
        )

    @property
    def connection_file(self) -> str:
        """The file a console attaches with (``jupyter console --existing FILE``)."""
        assert self._km is not None, "start() first"
        return str(self._km.connection_file)

    @property
    def pid(self) -> int | None:
        process = self._km.process if self._km is not None else None
        return None if process is None else process.pid

    def alive(self) -> bool:
        process = self._km.process if self._km is not None else None
        return process is not None and process.poll() is None

    def run_cells(self) -> CellFailure | None:
        """Run the debug notebook's ``run_cells`` in order; the first that raises stops them
        and is returned (``KernelDied``: the kernel stopped while it ran)."""
        import nbformat
        from jupyter_core.utils import run_sync  # the loop the client's channels were opened in

        nb = nbformat.read(self.debug.path, as_version=4)
        for index in self.debug.run_cells:
            try:
                reply = run_sync(self._execute)(nb.cells[index].source)
            except _KernelDied:
                return CellFailure(
                    index, "KernelDied", f"the kernel stopped while running the cell; see {self.log}", ()
                )
            if reply.get("status") == "error":
                return CellFailure(
                    index, str(reply.get("ename", "")), str(reply.get("evalue", "")), tuple(reply.get("traceback", ()))
                )
        return None

    async def _execute(self, code: str) -> dict[str, Any]:
        """The ``execute_reply`` content of ``code``; its output is read and dropped as it comes."""
        client = self._client
        msg_id = client.execute(code, allow_stdin=False, stop_on_error=True)
        while True:
            await self._drain()
            try:
                msg = await client.get_shell_msg(timeout=POLL_S)
            except Empty:
                if not self.alive():
                    raise _KernelDied from None
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                await self._drain()
                return dict(msg["content"])

    async def _drain(self) -> None:
        channel = self._client.iopub_channel
        while True:
            try:
                await channel.get_msg(timeout=0)
            except Empty:
                return

    def wait(self, stop: Any) -> None:
        """Return once ``stop`` (a ``threading.Event``) is set or the kernel has exited."""
        while not stop.wait(POLL_S) and self.alive():
            pass

    def shutdown(self) -> None:
        """Stop the kernel and wait until it is gone (SIGTERM, then SIGKILL if it lingers)."""
        if self._client is not None:
            self._client.stop_channels()
            self._client = None
        if self._km is not None:
            self._launcher.shutdown(self._km)
            self._km = None
        self._launcher.close()
