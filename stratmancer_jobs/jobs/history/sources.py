"""The one place input files are listed, stat'ed, fingerprinted and read."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from stratmancer_jobs.errors import InputError
from stratmancer_jobs.jobs.history.filestat import (
    EDGE,
    Buf,
    FileStat,
    Hasher,
    fingerprint_bytes,
    fingerprint_of,
)
from stratmancer_jobs.jobs.history.tiers import file_rank, parse_tier_file
from stratmancer_jobs.layout import contained

_log = logging.getLogger(__name__)
CHUNK: Final = 1024 * 1024  # read size when checking a counted prefix
STREAM_CHUNK: Final = 16 * 1024 * 1024  # read size when decoding a large JSON array batch by batch


class ReadError(InputError):
    """A tier file could not be read (permissions, gone, out of memory); the message names it."""


@dataclass(frozen=True)
class SourceFile:
    """One tier file as found by the scan."""

    name: str
    path: Path
    tier: str
    kind: str
    stat: FileStat
    error: str | None = None  # why it cannot be read ("<path>: cannot read it (...)"); its tier is kept

    @property
    def rank(self) -> int:
        return file_rank(self.tier, self.kind)


def _stat(path: Path) -> FileStat:
    with path.open("rb") as handle:
        st = os.fstat(handle.fileno())
        head = handle.read(EDGE)
        tail = b""
        if st.st_size > EDGE:
            handle.seek(st.st_size - EDGE)
            tail = handle.read(EDGE)
    return FileStat(
        st.st_size, st.st_mtime_ns, fingerprint_bytes(head, tail, st.st_size), st.st_ctime_ns, st.st_ino
    )


def read_error(path: Path, exc: BaseException, size: int | None = None) -> str:
    """The message of a file that could not be read, naming it."""
    if isinstance(exc, MemoryError):
        amount = f" ({size:,} bytes)" if size is not None else ""
        return f"{path}: cannot read it: out of memory{amount}"
    if isinstance(exc, OSError):
        return f"{path}: cannot read it ({exc.strerror or exc})"
    return f"{path}: cannot read it ({exc})"


def _lstat(path: Path) -> FileStat:
    """The stat of a file that cannot be opened (zeros when even that fails)."""
    try:
        st = path.lstat()
    except OSError:
        return FileStat(0, 0, "", 0, 0)
    return FileStat(st.st_size, st.st_mtime_ns, "", st.st_ctime_ns, st.st_ino)


def scan(directory: Path, root: Path | None = None) -> tuple[list[SourceFile], list[str]]:
    """Tier files in canonical order, and the names of other files that are ignored.

    A tier file that is a symlink resolving outside ``directory`` and the deployment ``root``
    (``layout.contained``; by default ``directory`` alone) is skipped with a warning.

    InputError when the directory is missing or holds no tier file at all ("no data").
    """
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        raise InputError(
            f"no data: {directory} does not exist (the collector writes matches_<TIER>.json there)"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot list {directory}: {exc.strerror}") from None
    files: list[SourceFile] = []
    ignored: list[str] = []
    for entry in entries:
        parsed = parse_tier_file(entry.name)
        path = Path(entry.path)
        try:
            is_file = entry.is_file()
        except OSError as exc:  # a symlink loop: a tier file that cannot be read, like a corrupt one
            if parsed is not None:
                files.append(
                    SourceFile(entry.name, path, parsed[0], parsed[1], _lstat(path), read_error(path, exc))
                )
                continue
            is_file = False
        if parsed is None or not is_file:
            ignored.append(entry.name)
            continue
        if entry.is_symlink() and not contained(path, directory, root or directory):
            # a planted link must not make the job read (and publish counts of) files elsewhere
            _log.warning(
                "history: ignoring %s: a symlink pointing outside %s and the deployment root", path, directory
            )
            continue
        try:
            stat = _stat(path)
        except OSError as exc:
            # Like a corrupt file: only its own tier keeps its last entry, the others are updated.
            files.append(
                SourceFile(entry.name, path, parsed[0], parsed[1], _lstat(path), read_error(path, exc))
            )
            continue
        files.append(SourceFile(entry.name, path, parsed[0], parsed[1], stat))
    if not files:
        raise InputError(
            f"no data: no matches_<TIER>.json or .jsonl file in {directory} "
            "(TIER is IRON, BRONZE, ..., CHALLENGER)"
        )
    files.sort(key=lambda f: f.rank)
    return files, ignored


@contextlib.contextmanager
def mapped(source: SourceFile) -> Iterator[tuple[Buf, FileStat]]:
    """The file's bytes and the stat that goes with them (taken on the open file).

    Read, not memory-mapped: the collector rewrites tier files in place (truncate, then write), and
    touching a mapped page past the new end of the file kills the whole process with SIGBUS. A read
    racing a rewrite only sees a short or torn file, which the decoder reports as a bad file.
    """
    st: os.stat_result | None = None
    try:
        with source.path.open("rb", buffering=0) as handle:
            st = os.fstat(handle.fileno())
            buf: Buf = handle.read() or b""
    except (OSError, ValueError, MemoryError) as exc:
        raise ReadError(read_error(source.path, exc, st.st_size if st is not None else None)) from None
    yield buf, FileStat(len(buf), st.st_mtime_ns, fingerprint_of(buf), st.st_ctime_ns, st.st_ino)


@contextlib.contextmanager
def streamed(source: SourceFile) -> Iterator[tuple[Callable[[memoryview], int], Callable[[], FileStat]]]:
    """The open file's ``readinto``, and the stat of what was read through it.

    For reading a file a part at a time, never holding it whole (see ``mapped`` for why files are
    read, not mapped). Call the stat after the last read: it fingerprints the first and last bytes of
    the file with the size that was read. ReadError names the file when a read fails.
    """
    try:
        handle = source.path.open("rb", buffering=0)
    except OSError as exc:
        raise ReadError(read_error(source.path, exc)) from None
    with handle:
        fd = handle.fileno()
        st = os.fstat(fd)
        total = 0

        def readinto(view: memoryview) -> int:
            nonlocal total
            try:
                n = handle.readinto(view) or 0
            except (OSError, MemoryError) as exc:
                raise ReadError(read_error(source.path, exc, st.st_size)) from None
            total += n
            return n

        def stat() -> FileStat:
            try:
                head = os.pread(fd, min(EDGE, total), 0)
                last = os.pread(fd, EDGE, total - EDGE) if total > EDGE else b""
            except OSError as exc:
                raise ReadError(read_error(source.path, exc, st.st_size)) from None
            fingerprint = fingerprint_bytes(head, last, total)
            return FileStat(total, st.st_mtime_ns, fingerprint, st.st_ctime_ns, st.st_ino)

        yield readinto, stat


@dataclass(frozen=True)
class Appended:
    """A file read once for the incremental path: XXH3 of its first ``consumed`` bytes and what follows."""

    stat: FileStat
    prefix_digest: int | None  # None when the file is now shorter than the counted prefix
    state: Hasher  # the hash state after the prefix, to continue over the newly counted bytes
    tail: bytes  # bytes [consumed, size)


def read_appended(source: SourceFile, consumed: int) -> Appended:
    """Stream the counted prefix through XXH3 in 1 MiB chunks and return the bytes after it.

    Nothing of the prefix is kept, so memory stays flat however large the file; xxhash (for large
    inputs) and the reads release the GIL, so several files can be checked on several threads.
    """
    try:
        with source.path.open("rb", buffering=0) as handle:
            fd = handle.fileno()
            st = os.fstat(fd)
            chunk = bytearray(CHUNK)
            view = memoryview(chunk)
            state = Hasher()
            short = False
            left = consumed
            while left > 0:
                n = handle.readinto(view[: min(CHUNK, left)])
                if not n:
                    short = True  # shorter than what was counted: rewritten, not appended to
                    break
                state.update(view[:n])
                left -= n
            view.release()
            tail = handle.read() or b"" if not short else b""
            size = consumed + len(tail) if not short else consumed - left
            head = os.pread(fd, EDGE, 0)
            last = os.pread(fd, EDGE, size - EDGE) if size > EDGE else b""
    except (OSError, MemoryError) as exc:
        raise ReadError(read_error(source.path, exc, consumed)) from None
    stat = FileStat(
        size, st.st_mtime_ns, fingerprint_bytes(head[:size], last, size), st.st_ctime_ns, st.st_ino
    )
    return Appended(stat, None if short else int(state.intdigest()), state, tail)
