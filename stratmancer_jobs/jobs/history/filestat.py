"""What the skip rule trusts about a file, and the byte helpers every reader and decoder shares; pure.

``FileStat`` is the one type for a file's identity: the scan's stat, what a checkpoint counted and what
the manifest vouches for are all a ``FileStat`` (it is a msgspec Struct so that the manifest stores it
as it is, with the field order of the format-2 files).
"""

from __future__ import annotations

import hashlib
import mmap
from typing import Final

import msgspec
import xxhash

EDGE: Final = 64 * 1024  # bytes hashed at each end of a file for its fingerprint

Buf = bytes | mmap.mmap  # file contents (read, not mapped: see ``sources.mapped``); decoders accept both


class FileStat(msgspec.Struct, frozen=True):
    """What the skip rule compares: size, mtime, ctime, inode and a hash of the first and last bytes.

    ``ctime_ns`` and ``ino`` cannot be set back by a user (``touch -r`` / ``os.utime`` restore only
    the mtime): any write, truncate, chmod or rename-over changes one of them. A file with the same
    five values is taken as unchanged.
    """

    size: int
    mtime_ns: int
    fingerprint: str
    ctime_ns: int = 0
    ino: int = 0


def fingerprint_bytes(head: bytes, tail: bytes, size: int) -> str:
    """Hash of a file's first and last ``EDGE`` bytes and its size: catches same-size, same-mtime rewrites."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(size.to_bytes(8, "little"))
    digest.update(head)
    digest.update(tail)
    return digest.hexdigest()


def fingerprint_of(buf: Buf) -> str:
    return fingerprint_bytes(buf[:EDGE], buf[-EDGE:] if len(buf) > EDGE else b"", len(buf))


Hasher = xxhash.xxh3_64  # the streaming state of a prefix digest


def prefix_digest(buf: Buf, start: int, end: int, state: Hasher | None = None) -> int:
    """XXH3-64 of the counted prefix: ``state`` (the prefix up to ``start``) continued by ``buf[start:end]``.

    With no ``state``, ``buf`` holds the file from offset 0 and ``start`` must be 0. XXH3 runs at memory
    speed (~25 GB/s here, CRC-32 ~2-3 GB/s), which is what makes checking every counted byte cheap.
    """
    with memoryview(buf) as view, view[start:end] as part:
        if state is None:
            return int(xxhash.xxh3_64_intdigest(part))
        hasher = state.copy()
        hasher.update(part)
        return int(hasher.intdigest())
