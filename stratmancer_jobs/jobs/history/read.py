"""Reading what changed: each elo group is left alone, extended with what was appended, or rebuilt.

Each elo group is an independent unit (match_id deduplication never crosses groups): it is either
unchanged, extended with the records appended to its files, or rebuilt from its files when the cache
is missing / invalid, a file was rewritten rather than appended, or an appended record would have come
first in canonical order (the rules are in ``incremental``). Files are read through ``sources`` only.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec
import xxhash

from stratmancer_jobs.jobs import Progress, ProgressSink
from stratmancer_jobs.jobs.history import cache, sources
from stratmancer_jobs.jobs.history.aggregate import Entry, is_entry
from stratmancer_jobs.jobs.history.counts import GroupState, Reorder
from stratmancer_jobs.jobs.history.filestat import Buf, FileStat
from stratmancer_jobs.jobs.history.incremental import (
    Checkpoint,
    Rebuild,
    Unsplittable,
    decode_array_stream,
    decode_file,
)
from stratmancer_jobs.jobs.history.records import Decoded, RecordsError
from stratmancer_jobs.jobs.history.sources import SourceFile
from stratmancer_jobs.jobs.history.tiers import GROUPS, TIERS, parse_tier_file
from stratmancer_jobs.layout import Layout


@dataclass
class GroupRun:
    """One group after reading: its counts, the checkpoint of each file counted, and its bad files."""

    state: GroupState
    checkpoints: dict[str, Checkpoint]
    errors: dict[str, str] = field(default_factory=dict)
    changed: bool = False
    rebuilt: bool = False


@dataclass
class Reader:
    """Opens one group's input files, counting files and bytes; ``report(files, nbytes)`` after each."""

    report: Callable[[int, int], None] | None = None
    files: int = 0
    nbytes: int = 0
    # invalid records found in each file read by this run (its last pass), to report with the file
    skipped: dict[Path, Counter[str]] = field(default_factory=dict)

    def note(self, source: SourceFile, decoded: Decoded) -> None:
        if decoded.skipped:
            self.skipped[source.path] = Counter(decoded.skipped)
        else:
            self.skipped.pop(source.path, None)

    @contextlib.contextmanager
    def open(self, source: SourceFile) -> Iterator[tuple[Buf, FileStat]]:
        with sources.mapped(source) as (buf, stat):
            try:
                yield buf, stat
            finally:
                self.count(stat.size)

    def count(self, size: int) -> None:
        self.files += 1
        self.nbytes += size
        if self.report is not None:
            self.report(self.files, self.nbytes)


@dataclass
class Tally:
    """Progress of a run whose groups are read by several readers (in any process): their sums."""

    sink: ProgressSink | None
    files_total: int
    bytes_total: int
    parts: dict[str, tuple[int, int]] = field(default_factory=dict)

    def start(self) -> None:
        self._report()

    def update(self, part: str, files: int, nbytes: int) -> None:
        self.parts[part] = (files, nbytes)
        self._report()

    def _report(self) -> None:
        if self.sink is not None:
            files = sum(f for f, _ in self.parts.values())
            nbytes = sum(b for _, b in self.parts.values())
            self.sink(Progress(files, self.files_total, nbytes, self.bytes_total))


def _extend(
    state: GroupState, checkpoints: dict[str, Checkpoint], files: list[SourceFile], reader: Reader
) -> GroupRun:
    run = GroupRun(state, dict(checkpoints))
    changed = [f for f in files if checkpoints[f.name].stat != f.stat]
    if not changed:
        return run
    run.changed = True

    def read(source: SourceFile) -> sources.Appended | str:
        if source.error is not None:
            return source.error
        try:
            return sources.read_appended(source, checkpoints[source.name].consumed)
        except sources.ReadError as exc:
            return str(exc)

    # Checking the counted prefixes reads every byte; reads and xxhash release the GIL: use both cores.
    if len(changed) > 1:
        with ThreadPoolExecutor(max_workers=2) as pool:
            appended = list(pool.map(read, changed))
    else:
        appended = [read(changed[0])]
    for source, found in zip(changed, appended, strict=True):
        if isinstance(found, str):  # unreadable: like a corrupt file, its tier keeps its last entry
            run.errors[source.name] = found
            continue
        reader.count(found.stat.size)
        previous = checkpoints[source.name]
        if found.prefix_digest != previous.digest:
            raise Rebuild(f"{source.name} was rewritten, not appended to")
        try:
            decoded, checkpoint = decode_file(
                source.kind, source.name, found.tail, found.stat, previous, previous.consumed, found.state
            )
        except RecordsError as exc:
            run.errors[source.name] = f"{source.path}: {exc}"
            continue
        except MemoryError:
            run.errors[source.name] = sources.read_error(source.path, MemoryError(), found.stat.size)
            continue
        reader.note(source, decoded)
        try:
            state.add(source.tier, source.kind, decoded.records, decoded.skipped)
        except Reorder as exc:
            raise Rebuild(f"{source.name}: match {exc} was counted from a later file") from None
        run.checkpoints[source.name] = checkpoint
    return run


class _StartOver(Exception):
    """A file failed after some of its batches were counted: the group is read again, whole files."""


def _rebuild(group: str, files: list[SourceFile], reader: Reader) -> GroupRun:
    """Count the group's files from scratch, a large JSON array batch by batch (its records never all in
    memory); should such a file fail half-way, the group is counted again from whole files."""
    files_before, bytes_before = reader.files, reader.nbytes
    try:
        return _rebuild_once(group, files, reader, stream=True)
    except _StartOver:
        reader.files, reader.nbytes = files_before, bytes_before
        return _rebuild_once(group, files, reader, stream=False)


def _rebuild_once(group: str, files: list[SourceFile], reader: Reader, *, stream: bool) -> GroupRun:
    run = GroupRun(GroupState(group), {}, changed=True, rebuilt=True)
    for source in files:
        if source.error is not None:
            run.errors[source.name] = source.error
            continue

        def count(decoded: Decoded, source: SourceFile = source) -> None:
            run.state.add(source.tier, source.kind, decoded.records, decoded.skipped)

        try:
            decoded, checkpoint = _read_whole(source, reader, count, stream)
        except RecordsError as exc:
            run.errors[source.name] = f"{source.path}: {exc}"
            continue
        except sources.ReadError as exc:  # unreadable: like a corrupt file, its tier keeps its last entry
            run.errors[source.name] = str(exc)
            continue
        except MemoryError:
            run.errors[source.name] = sources.read_error(source.path, MemoryError(), source.stat.size)
            continue
        reader.note(source, decoded)
        run.checkpoints[source.name] = checkpoint
    return run


def _read_whole(
    source: SourceFile, reader: Reader, count: Callable[[Decoded], None], stream: bool
) -> tuple[Decoded, Checkpoint]:
    """Decode all of a file and hand its records to ``count``: a large JSON array batch by batch
    (``decode_array_stream``, bounded memory), anything else -- or an array that cannot be cut -- whole.
    Returns the file's skip counts and checkpoint."""
    if stream and source.kind == "json" and source.stat.size > sources.STREAM_CHUNK:
        batches = 0

        def batch(decoded: Decoded) -> None:
            nonlocal batches
            batches += 1
            count(decoded)

        try:
            with sources.streamed(source) as (readinto, stat_of):
                decoded, consumed, digest = decode_array_stream(
                    readinto, source.name, sources.STREAM_CHUNK, batch
                )
                stat = stat_of()
        except (Unsplittable, sources.ReadError, MemoryError) as exc:
            if batches:  # some of the file is counted already: start the group over
                raise _StartOver(source.name) from None
            if not isinstance(exc, Unsplittable):
                raise
            # not the collector's layout, or caught mid-write: decode it whole below
        else:
            reader.count(stat.size)
            elements = bool(decoded.counted) or any(decoded.skipped.values())
            return decoded, Checkpoint(stat, consumed, digest, elements=elements)
    with reader.open(source) as (buf, stat):
        decoded, checkpoint = decode_file(source.kind, source.name, buf, stat, None)
    count(decoded)
    return decoded, checkpoint


def process_group(
    group: str, files: list[SourceFile], cache_file: Path, full: bool, reader: Reader, log: logging.Logger
) -> GroupRun:
    """Extend the group from its cache when the rules allow it, otherwise rebuild it from its files."""
    if not full:
        loaded = cache.load_group(cache_file, group)
        if loaded is None:
            if cache_file.exists():
                log.warning("history: the cache of group %s is invalid, rebuilding the group", group)
            else:
                log.debug("history: no cache for group %s yet, building it", group)
        elif set(loaded[1]) != {f.name for f in files}:
            log.info("history: the files of group %s changed, rebuilding it", group)
        else:
            try:
                return _extend(loaded[0], loaded[1], files, reader)
            except Rebuild as why:
                log.info("history: rebuilding group %s: %s", group, why)
    return _rebuild(group, files, reader)


def unchanged(
    manifest: cache.Manifest, files: list[SourceFile], thresholds: list[int], layout: Layout
) -> bool:
    """Nothing to do: every input has the stats the manifest vouches for and both outputs are there."""
    index = layout.history_index
    current = {f.name: f.stat for f in files}
    if any(f.error is not None for f in files):
        return False
    if manifest.thresholds != thresholds or manifest.files != current:
        return False
    try:
        st = index.stat()
        layout.history_sidecar.stat()
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) == (manifest.index_size, manifest.index_mtime_ns)


class Previous:
    """The index as the last run left it (for tiers whose file is bad), loaded only when needed."""

    def __init__(self, path: Path, log: logging.Logger):
        self.path, self.log = path, log
        self._data: dict[str, Any] | None = None

    def entry(self, key: str) -> Entry | None:
        if self._data is None:
            try:
                data = msgspec.json.decode(cache.read_regular(self.path, follow=True))
            except FileNotFoundError:
                data = {}
            except (OSError, msgspec.DecodeError) as exc:
                self.log.warning("history: cannot load the previous index %s (%s)", self.path, exc)
                data = {}
            self._data = data if isinstance(data, dict) else {}
        value = self._data.get(key)
        return value if is_entry(value) else None


_RAW_INDEX: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])


def carried(
    manifest: cache.Manifest | None, files: list[SourceFile], thresholds: list[int], layout: Layout
) -> dict[str, bytes | None]:
    """Entries of the previous index that a full rebuild would write again byte for byte.

    A tier's entry depends only on its own files, a group's only on its tiers' files (and both on
    the thresholds). When every one of those files has exactly the stat the manifest vouches for (the
    manifest is only written after a run without errors, for the index whose XXH3 digest it holds),
    the entry's bytes are taken from that index as they are: no counting, no rates, no rendering.
    Maps the key to its raw entry, or to None when that index had no entry for it (no valid record).
    """
    if manifest is None or manifest.thresholds != thresholds:
        return {}
    now = {f.name: f for f in files}
    keys: list[str] = []
    for key, members in (*((t, (t,)) for t in TIERS), *GROUPS.items()):
        mine = {name for name, f in now.items() if f.tier in members}
        before = {name for name in manifest.files if (parse_tier_file(name) or ("",))[0] in members}
        if (
            mine
            and mine == before
            and all(now[name].error is None and now[name].stat == manifest.files[name] for name in mine)
        ):
            keys.append(key)
    if not keys:
        return {}
    try:
        data = cache.read_regular(layout.history_index, follow=True)
    except OSError:
        return {}
    if len(data) != manifest.index_size or xxhash.xxh3_64_intdigest(data) != manifest.index_digest:
        return {}
    try:
        raw = _RAW_INDEX.decode(data)
    except msgspec.MsgspecError:
        return {}
    return {key: bytes(raw[key]) if key in raw else None for key in keys}
