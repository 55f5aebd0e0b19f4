"""The incremental rules: how far a file has been counted, and when new bytes may simply be appended.

Pure (bytes in, records and a checkpoint out). A group is extended only when each changed file still
starts with exactly the bytes that were counted (XXH3 of the prefix) and what follows can be decoded as
a continuation; anything else is a ``Rebuild`` of the group from its files, so that the counts are
always those of a full rebuild.
"""

from __future__ import annotations

from typing import Final

import msgspec

from stratmancer_jobs.jobs.history.filestat import Buf, FileStat, Hasher, prefix_digest
from stratmancer_jobs.jobs.history.records import LINE_ENDS, Decoded, RecordsError, decode_array, decode_lines


class Checkpoint(msgspec.Struct, frozen=True):
    """How far a file has been counted: its stat then, and an XXH3 digest of the counted prefix."""

    stat: FileStat
    consumed: int  # bytes [0, consumed) are counted; for a JSON array: up to its last element
    digest: int  # XXH3-64 of bytes [0, consumed)
    elements: bool = False  # JSON array: it already has at least one element
    unterminated: bool = False  # JSONL: the last counted line had no newline yet


class Rebuild(Exception):
    """A signal: this group cannot be extended, rebuild it from its files."""


def _rstrip_at(buf: Buf, end: int) -> int:
    """``len(buf[:end].rstrip())`` without copying the buffer."""
    while end > 0 and buf[end - 1] in b" \t\r\n":
        end -= 1
    return end


# What may follow a complete array element: whitespace, ``,``, ``]`` (or nothing yet).
_AFTER_ELEMENT: Final = frozenset((b"", b" ", b"\t", b"\r", b"\n", b",", b"]"))


def _array_end(buf: Buf) -> int:
    """Offset just past the array's last element (or its ``[``): new elements go after it."""
    return _rstrip_at(buf, _rstrip_at(buf, len(buf)) - 1)


def decode_file(
    kind: str,
    name: str,
    buf: Buf,
    stat: FileStat,
    previous: Checkpoint | None,
    base: int = 0,
    state: Hasher | None = None,
) -> tuple[Decoded, Checkpoint]:
    """Decode the records after ``previous`` (all of them when None) and the new checkpoint.

    ``buf`` holds the file from offset ``base`` (0: the whole file; ``previous.consumed``: the part
    after the checkpoint; ``state`` is then the hash state of the bytes before it). RecordsError when
    the file is not valid JSON (the collector caught mid-write); Rebuild when the new bytes cannot simply
    be appended to what was counted.
    """
    start = (previous.consumed if previous is not None else 0) - base
    if kind == "jsonl":
        follows = buf[start : start + 1]
        if previous is not None and previous.unterminated and follows not in (b"", *LINE_ENDS):
            raise Rebuild(f"{name}: text appended to an unterminated line")
        lines = decode_lines(buf, start)
        checkpoint = Checkpoint(
            stat,
            base + lines.end,
            prefix_digest(buf, start, lines.end, state),
            unterminated=lines.unterminated,
        )
        return lines.decoded, checkpoint
    if previous is None:
        decoded = decode_array(buf)
    else:
        # The checkpoint sits just past the old last element; a number (``5``) or a literal there may
        # have been extended in place by the rewrite (``567``): only a delimiter proves it complete.
        if previous.elements and buf[start : start + 1] not in _AFTER_ELEMENT:
            raise Rebuild(f"{name}: its last counted element was extended")
        rest = buf[start:].lstrip()
        if rest[:1] == b"]":
            if rest[1:].strip():
                raise RecordsError("not valid JSON (trailing characters after the array)")
            decoded = Decoded()
        elif previous.elements:
            if rest[:1] != b",":
                raise RecordsError("not valid JSON (expected ',' or ']' after the last element)")
            decoded = decode_array(b"[" + rest[1:])
        else:
            decoded = decode_array(b"[" + rest)
    end = _array_end(buf)
    had = previous is not None and previous.elements
    elements = had or bool(decoded.records) or any(decoded.skipped.values())
    return decoded, Checkpoint(stat, base + end, prefix_digest(buf, start, end, state), elements=elements)
