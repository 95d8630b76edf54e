"""papermill's notebook client, made to withstand output floods (however much a cell prints).

nbflow subclasses papermill's client (itself nbclient's) because three of its behaviours
cannot be configured away:

* after a cell's ``execute_reply``, nbclient waits at most ``iopub_timeout`` (4 s) *in
  all* for the rest of the cell's output, and papermill makes the overrun an error: a
  cell that printed faster than its output could be read fails with "Timeout waiting for
  IOPub output". Here the wait lasts while output keeps coming, and ends after
  ``iopub_timeout`` of silence or when the kernel has died;
* papermill logs each stream output with ``"".join(output.text)``, which over a string
  builds a list of one pointer per character (1 GB and seconds for 120 MB of text), and
  nbclient keeps every output. Here outputs are capped as they arrive
  (``max_cell_output``, see ``outputs.py``), a stream's text is kept in pieces (appended,
  never concatenated), and the log gets the text as it is;
* jupyter_client decodes every message whole; a large one is decoded here only as far
  as it is kept (``iopub.py``).

Per message the work is proportional to what is kept or logged, and memory is bounded by
the limit and the largest single message as the kernel sent it.
"""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import Any

from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete, CellTimeoutError
from nbclient.util import run_sync
from nbformat import NotebookNode
from nbformat.v4 import new_output, output_from_msg
from papermill.clientwrap import PapermillNotebookClient

from nbflow.execution.logs import CappedLog
from nbflow.kinds.notebook import iopub
from nbflow.kinds.notebook.outputs import ENVELOPE, OutputBudget, content_size, log_note, size_of
from nbflow.project.secrets import Redactor

#: what a cell says when its output stopped coming before its end (its ``idle``) was seen
LOST_NOTE = "[nbflow: the kernel's output for this cell stopped before its end was seen; some of it may be missing]"


#: cells tagged so (exploration, plots for people) are not run in pipeline runs
SKIP_TAG = "nbflow-skip"


def skipped(cell: NotebookNode) -> NotebookNode:
    """A code cell as a run leaves it unexecuted: no outputs but a note that says why, and
    ``metadata.nbflow.skipped``."""
    from nbformat.v4 import new_output

    cell.outputs = [new_output("stream", name="stdout", text=f"[nbflow: not run in pipeline runs (tag {SKIP_TAG})]\n")]
    cell.execution_count = None
    cell.setdefault("metadata", {}).setdefault("nbflow", {})["skipped"] = True
    return cell


class NbflowNotebookClient(PapermillNotebookClient):
    """Executes a notebook's cells, keeping at most ``max_cell_output`` of each cell's output.

    ``output_log`` gets every stream's text (it caps itself); ``redactor`` keeps a cut from
    leaving the first characters of a secret behind.
    """

    #: nbclient's: a ``clear_output(wait=True)`` waits for the next output
    clear_before_next_output: bool

    def __init__(
        self,
        nb_man: Any,
        *,
        max_cell_output: int,
        output_log: CappedLog | None = None,
        redactor: Redactor | None = None,
        **kwargs: Any,
    ) -> None:
        # the reply is in when the output is awaited: the cell has run, whatever output is late
        kwargs.setdefault("raise_on_iopub_timeout", False)
        super().__init__(nb_man, **kwargs)
        self.max_cell_output = max_cell_output
        self.output_log = output_log
        self.redactor = redactor if redactor else None
        self._budgets: dict[int, OutputBudget] = {}
        self._heard = 0.0  # when the last iopub message arrived or was handled
        self._reader: iopub.IOPubReader | None = None

    def _budget(self, cell_index: int) -> OutputBudget:
        return self._budgets.setdefault(cell_index, OutputBudget(self.max_cell_output))

    # -- one cell ------------------------------------------------------------------------

    async def async_execute_cell(
        self, cell: NotebookNode, cell_index: int, execution_count: int | None = None, store_history: bool = True
    ) -> NotebookNode:
        if cell.cell_type == "code" and SKIP_TAG in (cell.get("metadata", {}).get("tags") or []):
            return skipped(cell)
        self._budgets[cell_index] = OutputBudget(self.max_cell_output)
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        finally:
            self._finish(cell, cell_index)

    execute_cell = run_sync(async_execute_cell)

    async def _check_raise_for_error(
        self, cell: NotebookNode, cell_index: int, exec_reply: dict[str, Any] | None
    ) -> None:
        """nbclient's, once the cell's streams are text again (its error message quotes them)."""
        _join_streams(cell)
        await super()._check_raise_for_error(cell, cell_index, exec_reply)

    def _finish(self, cell: NotebookNode, cell_index: int) -> None:
        """Join each stream's pieces; tell the log how much of the cell's output was cut."""
        _join_streams(cell)
        budget = self._budgets[cell_index]
        if budget.cut and self.output_log is not None:
            count = cell.get("execution_count")
            where = f"cell In [{count}]" if count else f"cell {cell_index + 1}"
            self.output_log.note(log_note(budget.cut, budget.limit, where))

    async def _async_poll_for_reply(
        self,
        msg_id: str,
        cell: NotebookNode,
        timeout: int | None,
        task_poll_output_msg: asyncio.Future[Any],
        task_poll_kernel_alive: asyncio.Future[Any],
    ) -> dict[str, Any]:
        """nbclient's wait for the reply (handed a settled future in place of its bounded wait
        for the output), then :meth:`_drain`."""
        settled = asyncio.get_running_loop().create_future()
        settled.set_result(None)
        reply: dict[str, Any] = await super()._async_poll_for_reply(
            msg_id, cell, timeout, settled, task_poll_kernel_alive
        )
        await self._drain(task_poll_output_msg, cell)
        return reply

    async def _drain(self, task: asyncio.Future[Any], cell: NotebookNode) -> None:
        """Wait for the cell's remaining output for as long as it keeps coming; after
        ``iopub_timeout`` of silence from a live kernel, stop waiting (the cell's outputs and
        the log say so), or raise with ``raise_on_iopub_timeout``.

        Raises
        ------
        DeadKernelError
            The kernel died.
        CellTimeoutError
            Silence, with ``raise_on_iopub_timeout`` (papermill's default, not nbflow's).
        """
        self._heard = max(self._heard, monotonic())
        while not task.done():
            quiet = self._heard + self.iopub_timeout - monotonic()
            if quiet > 0:
                await asyncio.wait({task}, timeout=quiet)
                continue
            await self._async_check_alive()
            task.cancel()
            if self.raise_on_iopub_timeout:
                raise CellTimeoutError.error_from_timeout_and_cell(
                    "Timeout waiting for IOPub output", self.iopub_timeout, cell
                )
            self.log.warning("Timeout waiting for IOPub output")
            cell.outputs.append(new_output("stream", name="stderr", text=f"\n{LOST_NOTE}\n"))
            if self.output_log is not None:
                self.output_log.note(LOST_NOTE)
            return
        task.result()

    async def _async_poll_output_msg(self, parent_msg_id: str, cell: NotebookNode, cell_index: int) -> None:
        assert self.kc is not None
        socket = self.kc.iopub_channel.socket
        if self._reader is None or self._reader.socket is not socket:
            self._reader = iopub.IOPubReader(socket, self.kc.session)
        reader = self._reader
        while True:
            msg = await reader.receive(lambda msg_type: self._wanted(msg_type, cell_index))
            self._heard = monotonic()
            if msg["parent_header"].get("msg_id") == parent_msg_id:
                try:
                    self.process_message(msg, cell, cell_index)
                except CellExecutionComplete:
                    return
                finally:
                    self._heard = monotonic()

    def _wanted(self, msg_type: str, cell_index: int) -> int:
        """Characters of a large output that may be kept (or logged, for a stream)."""
        budget = self._budget(cell_index)
        room = budget.limit if self.clear_before_next_output else budget.room
        if msg_type == "update_display_data":
            return budget.limit
        if msg_type != "stream":
            return room
        log_room = self.output_log.room if self.output_log is not None else 0
        longest = self.redactor.longest if self.redactor is not None else 0
        return max(room, log_room) + longest + 1

    # -- one message ---------------------------------------------------------------------

    def process_message(self, msg: dict[str, Any], cell: NotebookNode, cell_index: int) -> NotebookNode | None:
        """nbclient's handling, with papermill's autosave; stream text is logged in :meth:`output`."""
        if iopub.DROPPED in msg:  # a rich output too large to keep was not even decoded
            self._clear_if_pending(cell.outputs, cell_index)
            self._budget(cell_index).drop(msg[iopub.DROPPED], cell.outputs)
            return None
        output = NotebookClient.process_message(self, msg, cell, cell_index)
        self.nb_man.autosave_cell()
        return output

    def _clear_if_pending(self, outs: list[NotebookNode], cell_index: int) -> None:
        """A ``clear_output(wait=True)`` takes effect at the next output (as in nbclient)."""
        if self.clear_before_next_output:
            outs[:] = []
            self.clear_display_id_mapping(cell_index)
            self.clear_before_next_output = False
            self._budget(cell_index).clear()

    def output(
        self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None, cell_index: int
    ) -> NotebookNode | None:
        if self.output_hook_stack[msg["parent_header"].get("msg_id")]:  # an Output widget captures it
            return super().output(outs, msg, display_id, cell_index)
        self._clear_if_pending(outs, cell_index)
        budget = self._budget(cell_index)
        if msg["msg_type"] == "stream":
            return self._stream(outs, msg, budget)
        size = content_size(msg["content"])
        if msg["msg_type"] != "error" and size > budget.room:  # errors are always kept: they say why a task failed
            budget.drop(size, outs)
            return None
        budget.kept += size
        return super().output(outs, msg, display_id, cell_index)

    def _stream(self, outs: list[NotebookNode], msg: dict[str, Any], budget: OutputBudget) -> NotebookNode | None:
        """Log the text; append what fits to the cell's last stream output of that name."""
        name, text = msg["content"]["name"], msg["content"]["text"]
        total = len(text) + msg.get(iopub.UNREAD, 0)
        if self.output_log is not None and self.output_log.room:
            self.output_log.write(text)
            if msg.get(iopub.UNREAD):  # the log had all that was read, less than the message
                self.output_log.stop()
            self.output_log.flush()
        last = outs[-1] if outs else None
        joins = last is not None and last.get("output_type") == "stream" and last.get("name") == name
        room = budget.room - (0 if joins else ENVELOPE)
        keep = text if total <= room else self._cut_text(text[: max(room, 0)], last if joins else None)
        created = None
        if keep:
            if joins:
                assert last is not None
                pieces = last["text"]
                if isinstance(pieces, str):
                    last["text"] = pieces = [pieces]
                pieces.append(keep)
            else:
                created = new_output("stream", name=name, text=[keep])
                outs.append(created)
            budget.kept += len(keep) + (0 if joins else ENVELOPE)
        if len(keep) < total:
            budget.drop(total - len(keep), outs)
        return created

    def _cut_text(self, head: str, last: NotebookNode | None) -> str:
        """``head`` without a secret's first characters at its end (the text before it counts too)."""
        if self.redactor is None:
            return head
        longest = self.redactor.longest
        before = last["text"] if last is not None else ""
        before = "".join(before[-4:]) if isinstance(before, list) else before
        partial = self.redactor.partial_end(before[-longest:] + head[-longest:])
        if partial > len(head) and last is not None:  # the secret began in an earlier piece
            joined = "".join(last["text"]) if isinstance(last["text"], list) else last["text"]
            last["text"] = [joined[: len(joined) - (partial - len(head))]]
        return head[: max(0, len(head) - partial)]

    def clear_output(self, outs: list[NotebookNode], msg: dict[str, Any], cell_index: int) -> None:
        hooked = bool(self.output_hook_stack[msg["parent_header"].get("msg_id")])
        super().clear_output(outs, msg, cell_index)
        if not hooked and not msg["content"].get("wait"):
            self._budget(cell_index).clear()

    def _update_display_id(self, display_id: str, msg: dict[str, Any]) -> None:
        """nbclient's update of the outputs showing ``display_id``, within each cell's limit."""
        targets = self._display_id_map.get(display_id)
        if not targets:
            return
        if msg["header"]["msg_type"] == "update_display_data":
            msg["header"]["msg_type"] = "display_data"
        try:
            out = output_from_msg(msg)
        except ValueError:
            self.log.error(f"unhandled iopub msg: {msg['msg_type']}")
            return
        new = size_of(out.get("data", {})) + size_of(out.get("metadata", {}))
        for cell_idx, indices in targets.items():
            outputs = self.nb["cells"][cell_idx]["outputs"]
            budget = self._budget(cell_idx)
            old = sum(size_of(outputs[i].get("data", {})) + size_of(outputs[i].get("metadata", {})) for i in indices)
            growth = new * len(indices) - old
            if growth > 0 and growth > budget.room:
                budget.drop(new * len(indices), outputs)
                continue
            budget.kept += growth
            for i in indices:
                outputs[i]["data"] = out["data"]
                outputs[i]["metadata"] = out["metadata"]


def _join_streams(cell: NotebookNode) -> None:
    """Each stream output's text, kept in pieces while the cell runs, as one string."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and isinstance(output.get("text"), list):
            output["text"] = "".join(output["text"])
