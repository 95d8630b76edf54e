"""Reading a growing log file from where a follower stopped, in bounded pieces."""

from __future__ import annotations

from pathlib import Path

from nbflow.execution.logs import LOG_STORE_CAP

#: the most of a log one follower's read returns (it reads the rest next time)
FOLLOW_CAP = 256 * 1024


def _whole_characters(data: bytes) -> bytes:
    """``data`` without a UTF-8 character cut at its end (its bytes come with the next read)."""
    for cut in range(min(3, len(data)) + 1):
        try:
            (data[: len(data) - cut]).decode("utf-8")
        except UnicodeDecodeError as e:
            if e.start < len(data) - cut - 3:  # not a cut character: invalid bytes, shown replaced
                return data
            continue
        return data[: len(data) - cut]
    return data


def read_log_from(path: Path, offset: int, cap: int = FOLLOW_CAP) -> tuple[str, int]:
    """The text of the log file after byte ``offset`` (at most ``cap`` bytes), and the byte offset
    where it ends: the next read's ``offset``. A file shorter than ``offset`` gives nothing."""
    with open(path, "rb") as f:
        f.seek(max(offset, 0))
        data = _whole_characters(f.read(cap))
    return data.decode("utf-8", errors="replace"), max(offset, 0) + len(data)


def read_log_tail_at(path: Path, cap: int = LOG_STORE_CAP) -> tuple[str, int]:
    """The last ``cap`` bytes of the log file as it is now (as ``read_log_tail`` marks a cut),
    and the byte offset where they end."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        start = max(0, size - cap)
        f.seek(start)
        data = _whole_characters(f.read(size - start))
    text = data.decode("utf-8", errors="replace")
    if start:
        text = f"[nbflow: {start} earlier bytes cut; the log file has them]\n" + text
    return text, start + len(data)
