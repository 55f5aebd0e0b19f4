"""What the skip rule trusts about a file, and the byte helpers every reader and decoder shares; pure.

``FileStat`` is the one type for a file's identity: the scan's stat, what a checkpoint counted and what
the manifest vouches for are all a ``FileStat`` (it is a msgspec Struct so that the manifest stores it
as it is, with the field order of the format-2 files).
"""

from __future__ import annotations

import hashlib
import mmap
import zlib
from typing import Final

import msgspec

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


def crc_range(buf: Buf, start: int, end: int, crc: int = 0) -> int:
    """CRC-32 of ``buf[start:end]`` continuing ``crc``: proves the counted prefix unchanged (~7 GB/s)."""
    with memoryview(buf) as view, view[start:end] as part:
        return zlib.crc32(part, crc)
