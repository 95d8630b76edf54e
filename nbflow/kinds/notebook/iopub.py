"""IOPub messages read at the kernel's pace, with bounded memory: a large output is decoded
only as far as it is kept.

jupyter_client decodes a message whole: a 120 MB ``stream`` message becomes the bytes
received, their decoded JSON text and the output's string, three copies at once. Here a
message whose content is large is read where it lies (zmq's buffer): its signature is
checked over the frames, a stream's text is decoded up to what can be kept and the rest
only counted, a chunk at a time; a rich output (``display_data``, ...) that cannot be
kept is not decoded at all.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from hmac import compare_digest
from typing import Any, cast

import zmq
from jupyter_client.jsonutil import extract_dates
from jupyter_client.session import Session

#: content frames larger than this are read lazily
LARGE = 1 << 20
#: bytes decoded or counted at a time
CHUNK = 1 << 20
#: a message's key: characters of its stream text that were counted, not decoded
UNREAD = "nbflow_unread"
#: a message's key: the size of a rich output that was not decoded (it could not be kept)
DROPPED = "nbflow_dropped"
#: outputs whose data is kept whole or not at all
RICH = ("display_data", "execute_result", "update_display_data")

# what a stream's content looks like as ipykernel sends it; other layouts take the usual path
_STREAM_HEAD = re.compile(rb'\A\s*\{\s*"name"\s*:\s*"(stdout|stderr)"\s*,\s*"text"\s*:\s*"')
_STREAM_TAIL = re.compile(rb"\A\s*\}\s*\Z")


class IOPubReader:
    """Reads a kernel's IOPub socket (zmq.asyncio SUB) into messages shaped as jupyter_client's.

    While messages are waiting they are read without asyncio's machinery (a flood of small
    messages is read at the pace the kernel writes them), yielding to the event loop now and
    then; when none are, it awaits one. Version 5 messages without buffers are decoded here,
    with the same signature checks as jupyter_client, but dates parsed only in the headers
    nbclient reads them from (``status``, ``execute_input``): a third of the time per message.
    """

    def __init__(self, socket: Any, session: Session) -> None:
        self.socket = socket
        self.session = session
        self._sync: zmq.Socket[bytes] = zmq.Socket.shadow(socket.underlying)
        self._streak = 0

    async def receive(self, wanted: Callable[[str], int]) -> dict[str, Any]:
        """The next message. ``wanted(msg_type)`` says how many characters of a large output's
        text or data could be kept: a large stream message then carries only those in
        ``content["text"]`` and the count of the others under :data:`UNREAD`; a large rich
        output that cannot be kept carries its size under :data:`DROPPED`, not its content.

        Raises
        ------
        ValueError
            The message is unsigned, replayed or its signature is wrong (as jupyter_client).
        """
        try:
            frames = self._sync.recv_multipart(zmq.NOBLOCK, copy=False)
            self._streak += 1
            if self._streak % 256 == 0:
                await asyncio.sleep(0)  # the reply, the timers and the kernel's liveness check run too
        except zmq.Again:
            self._streak = 0
            frames = await self.socket.recv_multipart(copy=False)
        return self._message(frames, wanted)

    def _message(self, received: list[Any], wanted: Callable[[str], int]) -> dict[str, Any]:
        session = self.session
        frames = cast("list[zmq.Frame]", session.feed_identities(received, copy=False)[1])
        header = session.unpack(frames[1].bytes) if len(frames) == 5 else {}
        if not str(header.get("version", "")).startswith("5"):
            return session.deserialize(frames, copy=False)
        signature = _verified_signature(session, frames)
        msg_type = str(header.get("msg_type"))
        content: dict[str, Any] | None = None
        extra: dict[str, int] = {}
        if len(frames[4]) > LARGE:
            content, extra = _read_large(msg_type, frames[4].buffer, wanted)
        if content is None:
            content = session.unpack(frames[4].bytes)
        if signature:
            session._add_digest(signature)  # as jupyter_client: kept against replays, culled when many
        return {
            "header": extract_dates(header) if msg_type in ("status", "execute_input") else header,
            "msg_id": header["msg_id"],
            "msg_type": msg_type,
            "parent_header": session.unpack(frames[2].bytes),
            "metadata": session.unpack(frames[3].bytes),
            "content": content,
            "buffers": [],
            **extra,
        }


def _read_large(
    msg_type: str, buf: memoryview, wanted: Callable[[str], int]
) -> tuple[dict[str, Any] | None, dict[str, int]]:
    """A large content frame read lazily: (content, extra keys), or (None, {}) to decode it whole."""
    if msg_type == "stream":
        head = _STREAM_HEAD.match(bytes(buf[:256]))
        if head is None:
            return None, {}
        text, unread, end = read_json_string(buf, head.end(), wanted(msg_type))
        if not _STREAM_TAIL.match(bytes(buf[end + 1 :])):
            return None, {}
        return {"name": head.group(1).decode(), "text": text}, {UNREAD: unread}
    if msg_type in RICH and len(buf) > wanted(msg_type) + 1024:
        return {"data": {}, "metadata": {}}, {DROPPED: len(buf)}
    return None, {}


def _verified_signature(session: Session, frames: list[Any]) -> bytes:
    """jupyter_client's checks (signed, not replayed, the right HMAC), over the frames where they lie.

    Raises
    ------
    ValueError
        As jupyter_client's ``Session.deserialize``.
    """
    if session.auth is None:
        return b""
    signature: bytes = frames[0].bytes
    if not signature:
        raise ValueError("Unsigned Message")
    if signature in session.digest_history:
        raise ValueError(f"Duplicate Signature: {signature!r}")
    if not compare_digest(signature, session.sign([f.buffer for f in frames[1:5]])):
        raise ValueError(f"Invalid Signature: {signature!r}")
    return signature


def read_json_string(buf: memoryview, start: int, keep: int) -> tuple[str, int, int]:
    """Read the JSON string whose characters begin at ``buf[start]`` (after its opening quote).

    Returns its first ``keep`` characters, how many characters follow them, and the index
    of its closing quote. Memory: one chunk at a time, and what is kept.

    Raises
    ------
    ValueError
        The string does not end, or is not valid JSON.
    """
    head: list[str] = []
    have = unread = 0
    pos, n = start, len(buf)
    while True:
        end = min(pos + CHUNK, n)
        data = bytes(buf[pos:end])
        quote = _closing_quote(buf, data, pos)
        if quote < 0:
            if end == n:
                raise ValueError("a JSON string that does not end")
            data = data[: _safe_end(buf, pos, end) - pos]
        else:
            data = data[:quote]
        if have < keep:
            text = _decode(data)
            taken = text[: keep - have]
            head.append(taken)
            have += len(taken)
            unread += len(text) - len(taken)
        else:
            unread += _count(data)
        pos += len(data)
        if quote >= 0:
            return "".join(head), unread, pos


def _backslashes_before(buf: memoryview, i: int) -> int:
    n = 0
    while i - n - 1 >= 0 and buf[i - n - 1] == 0x5C:
        n += 1
    return n


def _closing_quote(buf: memoryview, data: bytes, offset: int) -> int:
    """Where in ``data`` (at ``buf[offset]``) the string ends: a quote not escaped; -1 if not in it."""
    i = data.find(b'"')
    while i >= 0 and _backslashes_before(buf, offset + i) % 2:
        i = data.find(b'"', i + 1)
    return i


def _safe_end(buf: memoryview, start: int, end: int) -> int:
    """``end`` moved back so that ``buf[start:end]`` splits no UTF-8 character and no escape."""
    while end > start and (buf[end] & 0xC0) == 0x80:  # a UTF-8 continuation byte
        end -= 1
    for i in range(end - 1, max(start, end - 6) - 1, -1):
        if buf[i] == 0x5C:
            if _backslashes_before(buf, i + 1) % 2:  # an odd run: buf[i] begins an escape
                length = 6 if i + 1 < len(buf) and buf[i + 1] == 0x75 else 2  # \uXXXX or \n, \", ...
                if i + length > end:
                    end = i
            break
    return end


def _decode(data: bytes) -> str:
    return str(json.loads(b'"' + data + b'"'))


def _count(data: bytes) -> int:
    """How many characters the escaped JSON string text ``data`` stands for."""
    if data.isascii():
        if b"\\" not in data:
            return len(data)
        if b"\\u" not in data:
            # every escape is two bytes for one character; a run of backslashes pairs up from its left
            return len(data) - (data.count(b"\\") - data.count(b"\\\\"))
    return len(_decode(data))
