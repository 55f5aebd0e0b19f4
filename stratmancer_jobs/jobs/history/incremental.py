"""The incremental rules: how far a file has been counted, and when new bytes may simply be appended.

Pure (bytes in, records and a checkpoint out). A group is extended only when each changed file still
starts with exactly the bytes that were counted (XXH3 of the prefix) and what follows can be decoded as
a continuation; anything else is a ``Rebuild`` of the group from its files, so that the counts are
always those of a full rebuild.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec

from stratmancer_jobs.jobs.history.filestat import Buf, FileStat, Hasher, prefix_digest
from stratmancer_jobs.jobs.history.records import (
    LINE_ENDS,
    Decoded,
    RecordsError,
    decode_array,
    decode_lines,
    keep_distinct,
)


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
            # nothing new after an unterminated last line (a touch, a same-content rewrite of another
            # file): it is still unterminated, and the next append must still start with a line break
            unterminated=lines.unterminated
            or (previous is not None and previous.unterminated and lines.end == start),
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


class Unsplittable(Exception):
    """A batch of a streamed JSON array did not decode on its own: decode the file whole instead."""


def _separator(head: bytes) -> bytes | None:
    """``\n`` + indent + ``},``: how a top-level element ends in this file (as the collector writes it).

    None when the file does not look like an indented array of objects (it is then decoded whole).
    """
    text = head.lstrip()
    if text[:1] != b"[":
        return None
    after = text[1:]
    brace = after.find(b"{")
    if brace < 0 or after[:brace].strip():
        return None
    line = after.rfind(b"\n", 0, brace)
    indent = after[line + 1 : brace]
    if line < 0 or indent.strip(b" \t"):
        return None
    return b"\n" + indent + b"},"


Reader = Callable[[memoryview], int]  # ``readinto``: fills the view, returns the bytes read (0 at the end)


def decode_array_stream(
    readinto: Reader, name: str, size: int, sink: Callable[[Decoded], None] | None = None
) -> tuple[Decoded, int, int]:
    """Decode a whole JSON array read ``size`` bytes at a time: ``(decoded, consumed, digest)`` as
    ``decode_file`` finds them for the whole file, holding one batch of bytes at a time.

    With a ``sink``, each batch's valid records and skip counts go to it as soon as they are decoded
    (in file order) and the returned ``decoded`` holds the skip counts only: the file's records are
    never all in memory. An Unsplittable raised after some batches went to the sink means they must
    be forgotten (the caller starts over).

    The bytes are cut after a top-level element's closing line (``_separator``) and each batch is
    decoded as ``[batch]`` (the ``,`` on each side of it overwritten in place). Every batch decoding on
    its own proves the cuts fall between top-level elements (a cut inside a string or a nested value
    leaves it unbalanced, hence invalid), so the records and skip counts are exactly those of the whole
    file; otherwise Unsplittable, and the caller decodes the file whole (which also reports a file
    caught mid-write exactly as before). One buffer is reused for every batch (no page faults).
    """
    hasher = Hasher()
    out = Decoded()
    buf = bytearray(size)
    fill = 0  # bytes of the file held in buf, from file offset ``offset``
    offset = 0
    sep: bytes | None = None
    while True:
        if len(buf) < fill + size:
            buf.extend(bytes(fill + size - len(buf)))
        with memoryview(buf) as view:
            n = readinto(view[fill : fill + size])
        if not n:
            break
        searched, fill = fill, fill + n
        if sep is None:
            sep = _separator(bytes(buf[: min(fill, 1 << 20)]))
            if sep is None:
                if offset or searched:  # not the collector's layout, and large: decode it whole
                    raise Unsplittable(name)
                continue
        cut = buf.rfind(sep, max(0, searched - len(sep)), fill)
        if cut < 0:
            continue
        stop = cut + len(sep) - 1  # the ``,`` after the element's ``}``
        with memoryview(buf) as view:
            hasher.update(view[:stop])
        if offset:
            buf[0] = ord("[")  # was the ``,`` before this batch (hashed with the batch before)
        buf[stop] = ord("]")
        with memoryview(buf) as view, view[: stop + 1] as batch:
            _merge(out, batch, name, sink)
        buf[stop] = ord(",")
        offset += stop
        buf[: fill - stop] = buf[stop:fill]  # the rest (a part of one element) starts with that ``,``
        fill -= stop
    rest = bytes(buf[:fill])
    del buf
    if offset == 0:  # never cut: a small file, read in one go
        decoded = decode_array(rest)
        end = _array_end(rest)
        hasher.update(rest[:end])
        if sink is not None:
            sink(decoded)
            decoded = Decoded(skipped=decoded.skipped, counted=len(decoded.records))
        return decoded, end, int(hasher.intdigest())
    end = _array_end(rest)
    if end <= 0:
        raise Unsplittable(name)
    hasher.update(rest[:end])
    _merge(out, memoryview(b"[" + rest[1:]), name, sink)
    if sink is None:
        keep_distinct(out)
    return out, offset + end, int(hasher.intdigest())


def _merge(out: Decoded, batch: memoryview, name: str, sink: Callable[[Decoded], None] | None) -> None:
    try:
        decoded = decode_array(batch, distinct=sink is not None)
    except RecordsError:
        raise Unsplittable(name) from None
    out.skipped.update(decoded.skipped)
    if sink is None:
        out.records += decoded.records
    else:
        out.counted += len(decoded.records)
        sink(decoded)
